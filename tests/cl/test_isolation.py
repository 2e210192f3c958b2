"""Parameter isolation: per-task LoRA deltas on a frozen network and a mixture of per-task experts. What a
task learned stays bit-identical afterwards; the parameters added per task match a hand count."""

import jax
import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.evaluate import sequential_report
from acljax.cl.methods import PNN, Adapters, Experts, LoRA, TaskTokens
from acljax.cl.models import conv_model, mlp_model
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate


def learner(method, s, epochs=4):
    config = SequentialConfig(method=method, hidden=(16,), epochs=epochs, batch_size=16, learning_rate=1e-2)
    return SequentialLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False)


def leaves(tree):
    return [np.asarray(a).copy() for a in jax.tree.leaves(tree)]


def test_lora_freezes_the_network_after_task_0_and_each_delta_after_its_task():
    s = stream("task")
    model = learner(LoRA(rank=2, max_tasks=3), s)
    model.reset([0, 1])
    model.learn(0, s.tasks[0])
    base = leaves(model.params["base"])
    model.learn(1, s.tasks[1])
    delta_1 = [np.asarray(a)[:, 1].copy() for a in jax.tree.leaves((model.params["a"], model.params["b"]))]
    model.learn(2, s.tasks[2])
    for before, after in zip(base, leaves(model.params["base"])):
        np.testing.assert_array_equal(after, before)
    for before, after in zip(delta_1, [np.asarray(a)[:, 1] for a in jax.tree.leaves((model.params["a"],
                                                                                       model.params["b"]))]):
        np.testing.assert_array_equal(after, before)
    trained = [np.asarray(b)[:, 2] for b in jax.tree.leaves(model.params["b"])]
    assert all(not np.allclose(b, 0) for b in trained)  # task 2 trained its own delta


@pytest.mark.parametrize("method, epochs, learned", [
    (LoRA(rank=2, max_tasks=3), 4, [0, 1, 2]), (Experts(max_tasks=3), 4, [0, 1, 2]), (PNN(max_tasks=3), 4, [0, 1, 2]),
    (Adapters(bottleneck=8, max_tasks=3), 4, [0, 1, 2]),
    # a token and the output layer alone do not re-purpose the frozen network for every task: task 1's rows
    # never reach the last position (it stays at chance here), task 2's row is the last one
    (TaskTokens(features=16, heads=2, max_tasks=3), 12, [0, 2])])
def test_task_incremental_accuracy_never_changes_after_a_task_is_learned(method, epochs, learned):
    s = stream("task")
    trained = learner(method, s, epochs)
    matrices = evaluate(trained, s.tasks, [0, 1], progress=False).matrices  # (seeds, after, on)
    for i in range(3):
        np.testing.assert_array_equal(matrices[:, i:, i], matrices[:, i:i + 1, i].repeat(3 - i, 1))  # BWT = 0
    assert matrices[:, learned, learned].min() > 0.8
    assert trained._step._cache_size() == 1


def test_parameters_added_per_task_match_a_hand_count():
    model = mlp_model((6, 6, 1), (16,), 6)  # 36 -> 16 -> 6
    assert LoRA(rank=2).added_parameters(model, 0) == Experts().added_parameters(model, 0) == 0  # the network
    assert LoRA(rank=2).added_parameters(model, 3) == 2 * (36 + 16) + 2 * (16 + 6)
    assert Experts().added_parameters(model, 1) == 36 * 16 + 16 + 16 * 6 + 6
    assert Adapters(bottleneck=3).added_parameters(model, 4) == 2 * 16 * 3  # one hidden layer of 16
    assert PNN().added_parameters(model, 2) == 36 * 16 + 16 + 16 * 6 + 6 + 2 * 16 * 6  # a column, 2 laterals


def test_pnn_column_equals_a_loop_over_columns_and_laterals():
    model = mlp_model((3,), (4, 5), 2)  # 3 -> 4 -> 5 -> 2
    method = PNN(max_tasks=3)
    params = jax.tree.map(np.asarray, method.init_params(model, jax.random.key(0), (3,), 2))
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    for task in range(3):
        hidden = []  # hidden[k][l]: column k's activation after layer l
        for k in range(task + 1):
            h, acts = x, []
            for i in range(3):
                layer = {n: a[k] for n, a in params["columns"][i].items()}
                pre = h @ layer["w"] + layer["b"]
                if i > 0:
                    pre = pre + sum(hidden[j][i - 1] @ params["laterals"][i - 1][k, j] for j in range(k))
                h = np.maximum(pre, 0) if i < 2 else pre
                acts.append(h)
            hidden.append(acts)
        np.testing.assert_allclose(method.apply(model, params, (), x, task, False), hidden[task][-1], rtol=1e-5,
                                   atol=1e-6)


def test_pnn_freezes_every_earlier_column():
    s = stream("task")
    model = learner(PNN(max_tasks=3), s)
    model.reset([0, 1])
    model.learn(0, s.tasks[0])
    column_0 = [np.asarray(a)[:, 0].copy() for a in jax.tree.leaves(model.params["columns"])]
    model.learn(1, s.tasks[1])
    model.learn(2, s.tasks[2])
    for before, after in zip(column_0, [np.asarray(a)[:, 0] for a in jax.tree.leaves(model.params["columns"])]):
        np.testing.assert_array_equal(after, before)
    with pytest.raises(ValueError, match="PNN builds MLP columns: it needs an MLP model"):
        PNN().init_params(conv_model((4, 4, 1), 2, channels=(2,)), jax.random.key(0), (4, 4, 1), 2)


def test_adapters_start_as_the_identity_and_freeze_the_hidden_layers():
    model = mlp_model((6, 6, 1), (16,), 6)
    method = Adapters(bottleneck=3, max_tasks=3)
    params = method.init_params(model, jax.random.key(0), (6, 6, 1), 6)
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype(np.float32)
    plain = model.apply(params["base"], x)
    for task in range(3):  # up-projections start at 0: every task's network is the MLP itself
        np.testing.assert_allclose(method.apply(model, params, (), x, task, False), plain, rtol=1e-6)
    grads = jax.grad(lambda p: method.apply(model, p, (), x, 1, True).sum())(params)
    assert not np.asarray(grads["base"][0]["w"]).any()  # hidden layer frozen for task 1
    assert np.asarray(grads["base"][1]["w"]).any()  # the output layer trains
    assert np.asarray(grads["up"][0][1]).any() and not np.asarray(grads["up"][0][2]).any()  # only task 1's adapter
    with pytest.raises(ValueError, match="Adapters sit between an MLP's layers"):
        method.init_params(conv_model((4, 4, 1), 2, channels=(2,)), jax.random.key(0), (4, 4, 1), 2)


def test_task_tokens_condition_the_network_which_freezes_after_task_0():
    method = TaskTokens(features=16, heads=2, max_tasks=3)
    params = method.init_params(None, jax.random.key(0), (6, 6, 1), 6)
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype(np.float32)
    assert not np.allclose(method.apply(None, params, (), x, 1, False), method.apply(None, params, (), x, 2, False))
    grads = jax.grad(lambda p: method.apply(None, p, (), x, 1, True).sum())(params)
    assert not any(np.asarray(g).any() for g in jax.tree.leaves(grads["net"]["block"]))  # frozen for task 1
    assert np.asarray(grads["tokens"][1]).any() and not np.asarray(grads["tokens"])[[0, 2]].any()
    assert np.asarray(grads["net"]["head"]["kernel"]).any()
    assert method.added_parameters(None, 1) == 16
    with pytest.raises(ValueError, match=r"TaskTokens.features \(10\) must be a multiple of TaskTokens.heads \(4\)"):
        TaskTokens(features=10, heads=4)


def test_experts_routed_by_confidence_keep_old_classes_in_class_incremental():
    s = stream("class")
    naive = evaluate(learner("naive", s, epochs=10), s.tasks, [0], progress=False).matrices[0]
    experts = evaluate(learner(Experts(max_tasks=3, routing="confidence"), s, epochs=10), s.tasks, [0],
                       progress=False)
    assert naive[-1, 0] < 0.1 and experts.matrices[0][-1, 0] > 0.5


def test_task_id_methods_refuse_streams_without_task_ids(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10).astype(np.int32)
    npz = tmp_path / "four.npz"
    x = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    np.savez(npz, x=x, y=y, x_test=x, y_test=y)
    with pytest.raises(ValueError, match="LoRA picks its parameters by the task's index .* is domain-incremental"):
        sequential_report(SequentialConfig(method="lora"), str(npz), scenario="domain", progress=False)


@pytest.mark.parametrize("kw, message", [({"rank": 0}, "LoRA.rank must be a positive int, got 0"),
                                         ({"max_tasks": 0}, "LoRA.max_tasks must be a positive int")])
def test_bad_lora_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        LoRA(**kw)


def test_bad_routing():
    with pytest.raises(ValueError, match=r"Experts.routing must be one of \('task_id', 'confidence'\)"):
        Experts(routing="vote")
