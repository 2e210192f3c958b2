"""A meta-trained model under the shared evaluation protocol, against a position-by-position loop."""

import jax
import numpy as np
import pytest

from acljax.acl.config import ACLConfig, ModelConfig, PoolConfig
from acljax.acl.in_context import InContextEvaluator
from acljax.acl.trainer import MetaTrainer
from acljax.data.episodes import TaskSpec
from acljax.data.preprocess import normalize
from acljax.data.store import ImageSet
from acljax.data.streams import split_stream
from acljax.eval import evaluate

SHAPE = (8, 8, 1)
STATS = (np.float32(0.5), np.float32(0.25))


def _stream(scenario):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 5).astype(np.int32)
    data = [ImageSet(rng.integers(0, 256, (len(y), *SHAPE), dtype=np.uint8), y) for _ in range(2)]
    return split_stream(*data, num_tasks=2, classes_per_task=2, scenario=scenario)


def _learner():
    config = ACLConfig(pools=(PoolConfig(dataset="unused.npz"),), tasks=(TaskSpec(2, 2, 1, label_offset=2),),
                       model=ModelConfig(encoder="mlp", num_classes=4, mlp_features=(8,), num_features=8, num_heads=2,
                                         hidden_features=8, dropout_rate=0.0, num_blocks=1))
    learner = MetaTrainer(config, SHAPE)
    return learner, learner.params


def _slow_accuracy(learner, params, demos, query_x, query_y, mask):
    """Every query appended alone to the demo sequence (one full forward pass per query, the queries
    stacked as a batch of separate sequences); masked argmax of the query's logits.

    Returns the accuracy and the number of near ties: queries whose two best logits are closer than the
    rounding that separates this path from the evaluator's batched one may go either way there. Bound: a
    logit accumulates about (sequence length x features) float32 products, so two orders of summation
    differ by about that many eps times the largest logit (a first-order estimate)."""
    model = learner.model(params, learner.rest, train=False)
    q = len(query_y)
    images = np.concatenate([np.broadcast_to(demos[0], (q, *demos[0].shape)), normalize(query_x, *STATS)[:, None]], 1)
    feedback = np.concatenate([np.broadcast_to(demos[1], (q, len(demos[1]))), np.full((q, 1), model.num_classes)], 1)
    logits = np.where(mask, np.asarray(model(images, feedback)[0][:, -1]), -np.inf)
    top_two = np.sort(logits, -1)[:, -2:]
    rounding = images.shape[1] * learner.config.model.num_features * np.finfo(np.float32).eps * np.abs(top_two).max()
    near_ties = int(np.sum(top_two[:, 1] - top_two[:, 0] <= 2 * rounding))
    return np.mean(np.argmax(logits, -1) == query_y), near_ties


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_accuracy_matrix_matches_the_slow_loop(scenario):
    stream = _stream(scenario)
    learner, params = _learner()
    evaluator = InContextEvaluator(learner, params, shots=2, statistics=[STATS, STATS])
    report = evaluate(evaluator, stream.tasks, [3], progress=False)

    demos_x, demos_y = [], []  # the demos the evaluator draws for seed 3 (its documented rule)
    for index, task in enumerate(stream.tasks):
        rng = np.random.default_rng([3, index])
        picks = np.concatenate([rng.choice(np.flatnonzero(task.train.y == c), 2, replace=False)
                                for c in np.unique(task.train.y)])
        picks = rng.permutation(picks)
        demos_x.append(normalize(task.train.x[picks], *STATS))
        demos_y.append(task.train.y[picks])
    for i in range(2):
        seen = (np.concatenate(demos_x[:i + 1]), np.concatenate(demos_y[:i + 1]))
        for j, task in enumerate(stream.tasks):
            mask = np.zeros(4, bool)
            mask[:len(task.output_mask)] = task.output_mask
            expected, near_ties = _slow_accuracy(learner, params, seen, task.test.x, task.test.y, mask)
            assert abs(report.matrices[0, i, j] - expected) <= (near_ties + 0.5) / len(task.test.y)


def test_runs_draw_their_own_demos_in_one_batch():
    stream = _stream("class")
    learner, params = _learner()
    both, one = (InContextEvaluator(learner, params, shots=2, statistics=[STATS] * 2) for _ in range(2))
    together = evaluate(both, stream.tasks, [0, 1], progress=False)
    alone = evaluate(one, stream.tasks, [1], progress=False)
    # the same arithmetic batched differently: within one query of a near tie per entry (10 queries a task)
    np.testing.assert_allclose(together.matrices[1], alone.matrices[0], rtol=0, atol=1.5 / 10)
    # and the fast weights run 1 wrote: each entry sums one update per demo read (8) of 8-feature products, so the
    # two orders of evaluation differ by about 8 x 8 eps times the largest entry (a first-order estimate)
    for a, b in zip(jax.tree.leaves(both.states), jax.tree.leaves(one.states)):
        bound = 8 * 8 * np.finfo(np.float32).eps * np.abs(b).max()
        np.testing.assert_allclose(a[1], b[0], rtol=0, atol=bound)


def test_bad_evaluator_input():
    learner, params = _learner()
    with pytest.raises(ValueError, match="shots must be a positive int"):
        InContextEvaluator(learner, params, shots=0, statistics=[STATS])
    evaluator = InContextEvaluator(learner, params, shots=1, statistics=[STATS])
    evaluator.reset(0)
    wrong = _stream("class").tasks[0]
    wrong = wrong._replace(train=ImageSet(np.zeros((4, 4, 4, 1), np.uint8), wrong.train.y[:4]))
    with pytest.raises(ValueError, match="the model reads"):
        evaluator.learn(0, wrong)


def test_a_task_without_test_images_is_an_error_not_nan():
    stream = _stream("domain")
    learner, params = _learner()
    empty = stream.tasks[1]._replace(test=ImageSet(stream.tasks[1].test.x[:0], stream.tasks[1].test.y[:0]))
    evaluator = InContextEvaluator(learner, params, shots=2, statistics=[STATS] * 2)
    with pytest.raises(ValueError, match=r"^task 1 \(classes \[2, 3\]\): the accuracy is \[nan\], not a number"):
        evaluate(evaluator, [stream.tasks[0], empty], [0], progress=False)
