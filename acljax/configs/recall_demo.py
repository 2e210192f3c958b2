"""The foundation demo: in-context associative recall with a 2-block SRWM network (CPU, about a minute).

    acljax demo --config recall_demo --workdir runs/demo
"""

from acljax.demo import RecallDemoConfig


def get_config() -> RecallDemoConfig:
    return RecallDemoConfig(num_keys=16, num_values=8, num_pairs=8, num_queries=8, num_features=64, num_heads=4,
                            num_blocks=2, batch_size=64, learning_rate=3e-3, steps=600, seed=0)
