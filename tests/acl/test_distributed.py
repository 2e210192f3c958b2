"""Data parallelism on 4 fake CPU devices (a subprocess, since the device count is fixed at start-up)."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import dataclasses, json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec as P
    from acljax.acl.config import ACLConfig, ModelConfig, PoolConfig
    from acljax.distributed import local_rows, make_mesh, replicate
    from acljax.acl.pools import build_pools
    from acljax.acl.step import empty_tally
    from acljax.acl.model import image_shape, load_params
    from acljax.acl.trainer import MetaTrainer, meta_train, sample_sharded
    from acljax.data.episodes import TaskSpec

    assert jax.device_count() == 4, jax.devices()
    LR = 1e-2
    npz, workdir = sys.argv[1], sys.argv[2]
    config = ACLConfig(
        pools=(PoolConfig(dataset=npz, split="train", size=None, channels=None, validation_fraction=0.4,
                          test_split="test"),),
        tasks=(TaskSpec(3, 2, 2), TaskSpec(3, 2, 2)),
        model=ModelConfig(encoder="mlp", mlp_features=(8,), num_features=8, num_heads=2, hidden_features=8,
                          num_blocks=1, dropout_rate=0.0),
        batch_size=8, steps=4, schedule="constant", learning_rate=LR, adam_eps=1.0, log_every=1, validate_every=2,
        validation_batches=1, test_batches=1)
    pools = build_pools(config, "train")
    learner = MetaTrainer(config, image_shape(config, pools))

    # Tolerances from the computation, not from a machine. 4 devices sum a gradient entry's terms in another
    # order than 1 device; float32 summation of n terms in any order is within n eps of the sum of their sizes
    # (Higham's first-order bound). Here n is N, the input values a gradient entry depends on (sequences x
    # tokens x pixels), and the largest gradient entry G stands for the terms' size: dg = N eps G. adam_eps=1
    # makes Adam's update Lipschitz in the gradient (at most 2 LR per unit change; with eps 1e-9 it would turn
    # a rounding-sized gradient's sign into a full step of LR), so after s steps parameters differ by at most
    # 2 s LR dg (to first order: with LR = 1e-2 a parameter's rounding barely moves the next gradient).
    EPS = float(np.finfo(np.float32).eps)
    batch0, scales0 = sample_sharded(config, pools, [0, 0], [0, 1], make_mesh(1))
    N = batch0[0].size
    grads = jax.grad(lambda p: learner.eval_steps[0](p, learner.rest, batch0, scales0)[0])(
        learner.params)
    G = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads))
    dg = N * EPS * G

    def params_tol(steps):
        return 2 * steps * LR * dg

    def one_step(num_devices):
        mesh = make_mesh(num_devices)
        batch, scales = sample_sharded(config, pools, [0, 0], [0, 1], mesh)
        params = replicate(mesh, jax.tree.map(jnp.copy, learner.params))  # copies: the step donates them
        params, _, tally = learner.train_steps[0](
            params, replicate(mesh, learner.tx.init(learner.params)), replicate(mesh, learner.rest),
            replicate(mesh, empty_tally(len(learner.objectives[0].terms))), batch, scales, jax.random.key(0),
            jnp.int32(1), jnp.int32(0))
        return batch, (params, tally.loss)

    batch4, (params4, loss4) = one_step(4)
    batch1, (params1, loss1) = one_step(1)
    x = batch4[0]
    assert x.sharding.spec == P("data") and len(x.addressable_shards) == 4, x.sharding
    assert {s.data.shape[0] for s in x.addressable_shards} == {2}  # 8 sequences, 2 per device
    assert len({s.device for s in x.addressable_shards}) == 4
    try:
        local_rows(6, make_mesh(4))
        raise AssertionError("a batch of 6 on 4 devices was accepted")
    except ValueError as e:
        assert "batch_size=6 must be divisible by the number of devices (4)" in str(e)
    np.testing.assert_allclose(loss4, loss1, rtol=N * EPS)  # each loss term depends on at most N input values
    moved_by = max(float(jnp.abs(a - b).max()) for a, b in zip(*map(jax.tree.leaves, (params1, learner.params))))
    assert moved_by > 10 * params_tol(1), (moved_by, params_tol(1))  # the step itself is far above the tolerance
    for a, b in zip(jax.tree.leaves(params4), jax.tree.leaves(params1)):
        np.testing.assert_allclose(a, b, rtol=0, atol=params_tol(1))

    # A run saved on 4 devices resumes on 1 and ends where an uninterrupted 4-device run does.
    whole = meta_train(dataclasses.replace(config, num_devices=4), workdir + "/whole", progress=False)
    meta_train(dataclasses.replace(config, num_devices=4, steps=2), workdir + "/moved", progress=False)
    moved = meta_train(dataclasses.replace(config, num_devices=1), workdir + "/moved", progress=False)
    a = load_params(workdir + "/whole", learner.params)
    b = load_params(workdir + "/moved", learner.params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=0, atol=params_tol(config.steps))
    for key, value in whole["test"].items():  # the same parameters: losses within rounding, answers within one
        if key.startswith("acc"):  # query flipped by a near tie (each term has batch_size x 2 queries)
            np.testing.assert_allclose(moved["test"][key], value, rtol=0, atol=1 / (config.batch_size * 2))
        else:
            np.testing.assert_allclose(moved["test"][key], value, rtol=N * EPS)

    # The sequential baseline trainer: minibatches split over 4 devices, same parameters as on 1.
    from acljax.cl.methods import EWC
    from acljax.cl.trainer import SequentialConfig, SequentialLearner
    from acljax.data.store import ImageSet
    from acljax.data.streams import split_stream
    from acljax.distributed import shard_batch

    xs = shard_batch(make_mesh(4), np.zeros((2, 8, 3)), axis=1)
    assert xs.sharding.spec == P(None, "data") and {s.data.shape for s in xs.addressable_shards} == {(2, 2, 3)}
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 16).astype(np.int32)
    images = [ImageSet(rng.integers(0, 256, (64, 4, 4, 1), dtype=np.uint8), labels) for _ in range(2)]
    stream = split_stream(*images, num_tasks=2, classes_per_task=2, scenario="class")
    finals = []
    for n in (4, 1):  # SGD: an update is LR times the gradient, so rounding is not amplified (as with Adam's eps)
        sequential = SequentialLearner(SequentialConfig(method=EWC(strength=10.0, importance_samples=8), hidden=(16,),
                                                        epochs=2, batch_size=8, num_devices=n, optimizer="sgd",
                                                        learning_rate=LR),
                                       stream.num_outputs, (4, 4, 1), 0.5, 0.25, progress=False)
        sequential.reset([0, 1])
        start = sequential.params
        for i, task in enumerate(stream.tasks):
            sequential.learn(i, task)
        finals.append(sequential.params)
    # Each of the 16 SGD steps sums a gradient entry over ~8 x 16 x 16 products (examples x pixels x hidden) in
    # another order on 4 devices: within that many eps of the step's size, taken as the whole run's movement
    # (steps of SGD at a small rate go mostly one way).
    movement = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(finals[1]), jax.tree.leaves(start)))
    tol = 16 * (8 * 16 * 16) * EPS * movement
    for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1])):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    print("ok")
''')


def test_four_devices_match_one_and_resume_across_device_counts(tmp_path):
    """Meta-training and the sequential baseline trainer on 4 devices = on 1, and N -> M resume."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(16), 6).astype(np.int32)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x=rng.integers(0, 256, (len(y), 8, 8, 1), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (len(y), 8, 8, 1), dtype=np.uint8), y_test=y)
    env = {**os.environ, "JAX_PLATFORMS": "cpu",  # keeps the caller's XLA flags (e.g. --xla_cpu_max_isa)
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(npz), str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]


def test_bad_device_counts():
    from acljax.distributed import make_mesh

    for bad in (0, 10_000):
        with pytest.raises(ValueError, match="num_devices must be between 1 and"):
            make_mesh(bad)
