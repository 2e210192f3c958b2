"""The sequential trainer on a small synthetic stream: seeds are independent under vmap, nothing
recompiles across tasks, and the scenarios behave as they must (naive forgets in class-IL, joint does not)."""

import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.methods import AGEM, EWC, L2, MAS, SI, LwF, OnlineEWC, Replay
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate

ONE_QUERY = 1.5 / 40  # a tolerance of one flipped query, not two


def learner(method, s, epochs=3, **training):
    config = SequentialConfig(method=method, hidden=(16,), epochs=epochs, batch_size=16, learning_rate=1e-2,
                              **training)
    return SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)


def test_seeds_in_one_program_equal_separate_runs():
    s = stream("class")
    ewc = EWC(strength=10.0, importance_samples=30)
    together = evaluate(learner(ewc, s), s.tasks, [0, 1], progress=False)
    alone = evaluate(learner(ewc, s), s.tasks, [1], progress=False)
    # the same arithmetic batched differently (vmapped seeds): trained parameters differ by rounding, so an
    # entry may differ by a query flipped at a near tie (40 test queries a task); a seed mixed up moves many
    np.testing.assert_allclose(together.matrices[1], alone.matrices[0], rtol=0, atol=ONE_QUERY)
    np.testing.assert_allclose(together.baselines[1], alone.baselines[0], rtol=0, atol=ONE_QUERY)


@pytest.mark.parametrize("method", ["naive", SI(strength=1.0, xi=0.1),
                                    OnlineEWC(strength=1.0, gamma=0.9, importance_samples=30),
                                    Replay(memory_size=24), AGEM(buffer="class_balanced"), LwF(strength=1.0)])
def test_no_recompilation_across_tasks(method):
    s = stream("domain")
    model = learner(method, s)
    evaluate(model, s.tasks, [0, 1], progress=False)
    assert model._step._cache_size() == 1


def test_naive_forgets_in_class_incremental_and_joint_does_not():
    s = stream("class")
    naive = evaluate(learner("naive", s, epochs=10), s.tasks, [0], progress=False).matrices[0]
    joint = evaluate(learner("joint", s, epochs=10), s.tasks, [0], progress=False).matrices[0]
    assert naive[0, 0] > 0.9 and naive[-1, 0] < 0.1  # task 0 learned, then overwritten
    assert joint[-1].min() > 0.9


@pytest.mark.parametrize("buffer", ["reservoir", "class_balanced"])
def test_replay_keeps_what_naive_forgets_in_class_incremental(buffer):
    s = stream("class")
    matrix = evaluate(learner(Replay(memory_size=60, memory_batch=16, buffer=buffer), s, epochs=10), s.tasks, [0],
                      progress=False).matrices[0]
    assert matrix[-1, 0] > 0.6  # naive: < 0.1 (test above)


def test_agem_keeps_task_zero_at_least_as_well_as_naive():
    """Domain-IL: A-GEM keeps task 0 at least as well as naive training does."""
    s = stream("domain")
    naive = evaluate(learner("naive", s, epochs=10), s.tasks, [0, 1, 2], progress=False).matrices[:, -1, 0]
    agem = evaluate(learner(AGEM(memory_size=60, memory_batch=32), s, epochs=10), s.tasks, [0, 1, 2],
                    progress=False).matrices[:, -1, 0]
    assert agem.mean() >= naive.mean()


def test_lwf_with_a_vanishing_weight_is_naive_training():
    s = stream("class")
    naive = evaluate(learner("naive", s), s.tasks, [0], progress=False).matrices
    lwf = evaluate(learner(LwF(strength=1e-12), s), s.tasks, [0], progress=False).matrices
    np.testing.assert_allclose(lwf, naive, rtol=0, atol=ONE_QUERY)  # another sum: rounding, one near tie
    strong = evaluate(learner(LwF(strength=100.0), s), s.tasks, [0], progress=False).matrices
    # a strong weight keeps the previous model's answers: in class-IL, task 0 survives learning task 1, which
    # naive training forgets entirely
    assert strong[0, 1, 0] > 0.9 and naive[0, 1, 0] < 0.1


def test_task_incremental_masks_make_old_tasks_survive():
    s = stream("task")
    matrix = evaluate(learner("naive", s), s.tasks, [0], progress=False).matrices[0]
    assert matrix[-1, 0] > 0.8  # with the task id given, a 2-way choice within task 0


@pytest.mark.parametrize("kw, message", [
    ({"method": "gem_typo"}, r"SequentialConfig.method must be one of \('naive', .*got 'gem_typo'"),
    ({"optimizer": "rmsprop"}, "SequentialConfig.optimizer must be one of"),
    ({"epochs": 0}, "SequentialConfig.epochs must be a positive int, got 0"),
    ({"model": "resnet"}, "SequentialConfig.model must be one of"),
    ({"learning_rate": float("nan")}, r"SequentialConfig.learning_rate must be a finite number > 0, got nan"),
    ({"learning_rate": -1e-3}, "SequentialConfig.learning_rate must be a finite number > 0"),
])
def test_bad_config(kw, message):
    with pytest.raises(ValueError, match=message):
        SequentialConfig(**kw)


@pytest.mark.parametrize("method, kw, message", [
    (LwF, {"strength": 0.0}, r"LwF.strength \(the distillation weight\) must be a finite number > 0, got 0.0"),
    (LwF, {"temperature": -1.0}, "LwF.temperature must be a finite number > 0, got -1.0"),
    (Replay, {"buffer": "fifo"}, "Replay.buffer must be one of"),
    (AGEM, {"memory_size": 0}, "AGEM.memory_size must be a positive int, got 0"),
    (Replay, {"memory_batch": 2.5}, "Replay.memory_batch must be a positive int, got 2.5"),
    (EWC, {"strength": -1.0}, r"EWC.strength must be a non-negative number \(or scalar array\), got -1.0"),
    (L2, {"strength": float("inf")}, "L2.strength must be a non-negative number"),
    (SI, {"strength": float("nan")}, "SI.strength must be a non-negative number"),
    (SI, {"xi": 0.0}, "SI.xi must be a finite number > 0, got 0.0"),
    (MAS, {"importance_samples": 0}, "MAS.importance_samples must be a positive int or None"),
    (OnlineEWC, {"fisher_estimator": "diagonal"}, "OnlineEWC.fisher_estimator must be one of"),
    (OnlineEWC, {"gamma": 1.5}, r"OnlineEWC.gamma must be in \(0, 1\], got 1.5"),
])
def test_bad_method_settings(method, kw, message):
    with pytest.raises(ValueError, match=message):
        method(**kw)


def test_adagrad_follows_pytorch_defaults():
    """PyTorch's Adagrad starts its sum of squares at 0, so the first step is -lr * g / |g| = -lr * sign(g).
    (optax adds eps inside the square root, PyTorch outside: the gradients here make that negligible.)"""
    import jax.numpy as jnp

    from acljax.cl.trainer import OPTIMIZERS

    tx = OPTIMIZERS["adagrad"](0.01)
    g = jnp.array([0.5, -2.0, 0.03])
    updates, state = tx.update(g, tx.init(jnp.zeros(3)))
    np.testing.assert_allclose(updates, [-0.01, 0.01, -0.01], rtol=1e-5)
    updates, _ = tx.update(g, state)  # second step: -lr * g / sqrt(2 g^2)
    np.testing.assert_allclose(updates, -0.01 * np.sign(g) / np.sqrt(2), rtol=1e-5)


def test_a_loss_that_overflows_stops_training_instead_of_reporting_chance():
    from acljax.checks import NonFiniteLoss

    s = stream("class")
    with pytest.raises(NonFiniteLoss, match=r"task 0, epoch 0"):
        evaluate(SequentialLearner(SequentialConfig(hidden=(16,), batch_size=16, learning_rate=1e38), s.num_outputs,
                                   (6, 6, 1), 0.3, 0.3, progress=False), s.tasks, [0], progress=False)


def test_a_task_smaller_than_one_batch_is_a_clear_error():
    s = stream("class")  # 120 training examples per task
    small = SequentialLearner(SequentialConfig(batch_size=200), s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)
    with pytest.raises(ValueError, match="has 120 training examples, fewer than SequentialConfig.batch_size=200"):
        evaluate(small, s.tasks, [0], progress=False)
