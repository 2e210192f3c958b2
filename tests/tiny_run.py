"""The tiny meta-training run several test files train and damage (imported as ``tiny_run``): 16 classes of 8x8
noise images, two 3-way 2-shot tasks, an 8-feature model of one block (two compile in twice the time);
seconds per run once compiled."""

import dataclasses
import json

import numpy as np

from acljax.acl.config import ACLConfig, ModelConfig, PoolConfig
from acljax.data.episodes import TaskSpec


def write_npz(path) -> str:
    """16 classes x 6 random 8x8 images in each of the train and test splits."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(16), 6).astype(np.int32)
    np.savez(path, x=rng.integers(0, 256, (len(y), 8, 8, 1), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (len(y), 8, 8, 1), dtype=np.uint8), y_test=y)
    return str(path)


def config(npz: str, **overrides) -> ACLConfig:
    """6 steps on ``npz``, validated and checkpointed every 3; ``overrides`` replace any field."""
    base = ACLConfig(
        pools=(PoolConfig(dataset=npz, split="train", size=None, channels=None, validation_fraction=0.4,
                          test_split="test"),),
        tasks=(TaskSpec(3, 2, 2, first_shot=True), TaskSpec(3, 2, 2, first_shot=True, label_offset=0)),
        task_scales=(0.1, 1.0), loss_scale=0.2, cycle_orders=True,
        model=ModelConfig(encoder="mlp", mlp_features=(8,), num_features=8, num_heads=2, hidden_features=8,
                          num_blocks=1),
        batch_size=2, steps=6, warmup_steps=4, log_every=1, validate_every=3, validation_batches=2, test_batches=2)
    return dataclasses.replace(base, **overrides)


def metric_lines(workdir) -> list[dict]:
    """metrics.jsonl without the timings (which differ from run to run)."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "sec_per_step"} for r in rows]
