"""The quickstart: ACL on the offline glyph set, 2 tasks of 5-way 5-shot, a small MLP-encoder model (CPU).

    acljax train --config acl_glyphs_quickstart --workdir runs/acl_quickstart
    acljax quickstart --workdir runs/quickstart      # with and without ACL, table and plots

Held-out glyph characters validate (10% of "background") and the "evaluation" split meta-tests.
``use_acl=False`` (set by ``acljax quickstart`` for its second model) drops the backward term.
The head has 10 outputs (5-way tasks use the first 5) so that the Split-MNIST configs can meta-finetune it.
From scratch, ``--set model.feedback_scale=16`` leaves the plateau at chance after 250-300 steps instead of
1,350-2,000+ (experiments/feedback_scale.py); the shipped models were meta-trained with the paper's 1.
"""

from acljax.acl import ACLConfig, ModelConfig, PoolConfig
from acljax.data.episodes import TaskSpec


def get_config() -> ACLConfig:
    return ACLConfig(
        pools=(PoolConfig(dataset="glyphs", split="background", size=32, channels=1, validation_fraction=0.1,
                          test_split="evaluation"),),
        tasks=(TaskSpec(n_way=5, k_shot=5, num_queries=5), TaskSpec(n_way=5, k_shot=5, num_queries=5)),
        use_acl=True,
        model=ModelConfig(encoder="mlp", num_classes=10, mlp_features=(256,), num_features=128, num_heads=8,
                          num_blocks=2, hidden_features=256, dropout_rate=0.1),
        batch_size=16, steps=5000, schedule="constant", learning_rate=1e-3,
        log_every=50, validate_every=500, validation_batches=8, test_batches=16, seed=0)
