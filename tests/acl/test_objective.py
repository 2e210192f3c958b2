"""The ACL objective against a slow loop that runs the model query by query on whole sequences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from acljax.acl.objective import ACLObjective, Term, acl_terms
from acljax.data.episodes import QUERY, SHOT, ClassPool, TaskSpec, sample_episodes
from acljax.data.store import ImageSet
from acljax.nn import InContextLearner, SRWMOptions

SHAPE = (8, 8, 1)


def _pool(seed=0, classes=12, per_class=8):
    rng = np.random.default_rng(seed)
    return ClassPool(ImageSet(rng.integers(0, 256, (classes * per_class, *SHAPE), dtype=np.uint8),
                              np.repeat(np.arange(classes), per_class).astype(np.int32)), 0.5, 0.25)


FEATURES = 8
EPS = np.finfo(np.float32).eps


def _model(num_classes, seed=0):
    """One block: what the objective does with the model's passes does not depend on its depth (two blocks
    compile in twice the time)."""
    return InContextLearner(SHAPE, num_classes, encoder="mlp", mlp_features=(8,), num_features=FEATURES, num_heads=2,
                            num_blocks=1, hidden_features=8, dropout_rate=0.0, rngs=nnx.Rngs(seed))


def _jitted(fn, model):
    """fn(model, *args) compiled once per shape (eager NNX runs op by op, several times slower)."""
    graphdef, state = nnx.split(model)
    compiled = jax.jit(lambda state, *args: fn(nnx.merge(graphdef, state), *args))
    return lambda *args: compiled(state, *args)


def _log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def slow_terms(model, episodes, tasks):
    """Per term and query: one full forward pass over [earlier tasks' shots and demos, then this task's
    shots (and demos unless first-shot), then the query alone]; the query's own logits are scored.
    The queries of a term go through as separate sequences stacked along the batch axis.

    Returns per term the loss, the accuracy, how far the loss may be from the objective's by rounding, and
    the number of near ties (queries whose answer rounding may flip). Bound: a logit accumulates about
    (episode length x features) float32 products, so two orders of evaluation differ by about that many eps times
    the largest logit (a first-order estimate); a log-softmax moves by at most twice that, plus its own rounding
    (a few eps times the loss)."""
    task, kind = episodes.task, episodes.kind
    batch, length = episodes.x.shape[:2]
    losses, accs, loss_tolerances, near_ties = [], [], [], []
    for term in acl_terms(tasks):
        context = [p for p in range(len(task)) if kind[p] != QUERY and
                   (task[p] < term.after_task or
                    (task[p] == term.after_task and (term.kind != "first_shot" or kind[p] == SHOT)))]
        queries = [p for p in range(len(task)) if task[p] == term.query_task and kind[p] == QUERY]
        idx = np.array([context + [q] for q in queries])  # (Q, len(context) + 1)
        images = episodes.x[:, idx].reshape(batch * len(queries), idx.shape[1], *episodes.x.shape[2:])
        feedback = episodes.feedback[:, idx].reshape(batch * len(queries), idx.shape[1])
        logits = np.asarray(_jitted(lambda m, x, f: m(x, f)[0], model)(images, feedback)[:, -1])
        rounding = length * FEATURES * EPS * np.abs(logits).max()
        logp = _log_softmax(logits)
        target = episodes.target[:, queries].reshape(-1)
        losses.append(-np.mean(logp[np.arange(len(target)), target]))
        accs.append(np.mean(logp.argmax(-1) == target))
        top_two = np.sort(logits, -1)[:, -2:]
        loss_tolerances.append(2 * rounding + 4 * EPS * abs(losses[-1]))
        near_ties.append(np.sum(top_two[:, 1] - top_two[:, 0] <= 2 * rounding) / len(target))
    return np.array(losses), np.array(accs), np.array(loss_tolerances), np.array(near_ties)


ONE_LAYOUT = [TaskSpec(3, 2, 4, first_shot=True), TaskSpec(3, 2, 4, first_shot=True, label_offset=3),
              TaskSpec(3, 2, 4, first_shot=True)]


@pytest.mark.parametrize("tasks, scan_tasks", [
    (ONE_LAYOUT, True), (ONE_LAYOUT, False), ([TaskSpec(2, 3, 3)] * 4, True),
    ([TaskSpec(2, 3, 3), TaskSpec(3, 1, 2, label_offset=2), TaskSpec(2, 2, 5, label_offset=5)], None),
])
def test_terms_match_the_query_by_query_loop(tasks, scan_tasks):
    """Scanned over the tasks (one layout) or looped over them (any layout), every term's loss and accuracy."""
    episodes = sample_episodes(np.random.default_rng(0), [_pool()], tasks, 3)
    model = _model(max(t.label_offset + t.n_way for t in tasks))
    objective = ACLObjective(tuple(tasks), scan_tasks=scan_tasks)
    losses, accs = _jitted(objective.term_losses, model)(episodes.x, episodes.feedback, episodes.target)
    slow_losses, slow_accs, loss_tolerances, near_ties = slow_terms(model, episodes, tasks)
    assert np.all(np.abs(np.asarray(losses) - slow_losses) <= loss_tolerances)
    assert np.all(np.abs(np.asarray(accs) - slow_accs) <= near_ties + 1e-6)  # only near ties may flip


@pytest.mark.parametrize("state_gradient", ["exact", "official"])
def test_the_scan_over_tasks_gives_the_loops_gradient_of_every_term(state_gradient):
    """d(term loss)/d(parameters) for every term, scanned against looped. Tolerance as in test_distributed: a
    gradient entry sums over at most N input values (the meta-batch's), so two orders of summation differ by
    about N eps times the largest entry of that term's gradient (a first-order estimate)."""
    tasks = tuple(ONE_LAYOUT)
    episodes = sample_episodes(np.random.default_rng(3), [_pool()], list(tasks), 2)
    model = InContextLearner(SHAPE, 6, encoder="mlp", mlp_features=(8,), num_features=FEATURES, num_heads=2,
                             num_blocks=1, hidden_features=8, dropout_rate=0.0,
                             options=SRWMOptions(state_gradient=state_gradient),
                             rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def jacobian(scan_tasks):
        objective = ACLObjective(tasks, scan_tasks=scan_tasks)

        def losses(p):
            return objective.term_losses(nnx.merge(graphdef, p, rest), episodes.x, episodes.feedback,
                                         episodes.target)[0]

        return jax.tree.leaves(jax.jit(jax.jacrev(losses))(params))  # each (num_terms, *parameter shape)

    tolerance = episodes.x.size * EPS
    for scanned, looped in zip(jacobian(True), jacobian(False)):
        rows = looped.reshape(len(acl_terms(list(tasks))), -1)
        error = np.abs(scanned.reshape(rows.shape) - rows).max(1)
        assert np.all(error <= tolerance * np.abs(rows).max(1)), (error, tolerance * np.abs(rows).max(1))


def test_dropout_acts_inside_the_scan_over_tasks():
    """In training the scanned passes apply dropout (its RNG count travels in the scan's carry): every term moves
    away from the model's eval-mode value, and two dropout seeds give two results. (The masks are not the loop's,
    which draws other shapes: with dropout the scan and the loop agree in distribution, not in value.)"""
    tasks = (TaskSpec(2, 2, 2),) * 3
    episodes = sample_episodes(np.random.default_rng(4), [_pool()], list(tasks), 2)
    objective = ACLObjective(tasks, scan_tasks=True)

    def losses(train, seed=0):
        model = InContextLearner(SHAPE, 2, encoder="mlp", mlp_features=(8,), num_features=FEATURES, num_heads=2,
                                 hidden_features=8, dropout_rate=0.5, rngs=nnx.Rngs(0))
        nnx.reseed(model, default=seed)
        if not train:
            model.eval()
        return np.asarray(nnx.jit(lambda m: objective.term_losses(m, episodes.x, episodes.feedback,
                                                                  episodes.target)[0])(model))

    evaluated, trained = losses(False), losses(True)
    assert np.all(np.isfinite(trained)) and np.all(trained != evaluated)
    assert not np.array_equal(trained, losses(True, seed=1))


def test_the_objective_scans_past_eight_tasks_of_one_layout():
    assert not ACLObjective((TaskSpec(),) * 8).scanned and ACLObjective((TaskSpec(),) * 9).scanned
    assert not ACLObjective((TaskSpec(2, 3, 3),) * 8 + (TaskSpec(3, 3, 3),)).scanned  # mixed layouts loop
    assert ACLObjective((TaskSpec(),) * 2, scan_tasks=True).scanned
    assert not ACLObjective((TaskSpec(),) * 9, scan_tasks=False).scanned


def test_scan_tasks_needs_one_layout():
    with pytest.raises(ValueError, match="scan_tasks=True needs tasks of one layout"):
        ACLObjective((TaskSpec(2, 3, 3), TaskSpec(3, 3, 3)), scan_tasks=True)
    assert ACLObjective(tuple(ONE_LAYOUT)).one_layout  # label_offset and pool do not change the positions


def test_paper_two_task_weighting():
    """0.2 x [s_A (fs_A + main_A) + s_B (fs_B + main_B) + acl_A], s = (0.1, 1) (the paper's 2-task loss)."""
    tasks = (TaskSpec(3, 2, 2, first_shot=True), TaskSpec(3, 2, 2, first_shot=True))
    objective = ACLObjective(tasks, loss_scale=0.2)
    names = [t.name for t in objective.terms]
    assert names == ["first_shot_0", "within_0", "first_shot_1", "within_1", "backward_0_after_1"]
    np.testing.assert_allclose(objective.weights([0.1, 1.0]), 0.2 * np.array([0.1, 0.1, 1, 1, 1]), rtol=1e-6)
    episodes = sample_episodes(np.random.default_rng(1), [_pool()], list(tasks), 2)
    model = _model(3)
    loss, (losses, _) = _jitted(objective, model)(episodes.x, episodes.feedback, episodes.target, jnp.array([0.1, 1.0]))
    slow_losses, _, loss_tolerances, _ = slow_terms(model, episodes, list(tasks))
    weights = 0.2 * np.array([0.1, 0.1, 1, 1, 1])  # fs_A, main_A, fs_B, main_B, acl_A
    assert abs(loss - weights @ slow_losses) <= weights @ loss_tolerances + 4 * EPS * abs(loss)


def test_uniform_mean_and_no_acl_weights():
    tasks = tuple(TaskSpec(2, 5, 1, label_offset=2 * t) for t in range(5))
    with_acl = ACLObjective(tasks)
    assert len(with_acl.terms) == 15  # 5 within + 10 backward (the paper's Split-MNIST loss)
    np.testing.assert_allclose(with_acl.weights(np.ones(5)), np.full(15, 1 / 15), rtol=1e-6)
    without = ACLObjective(tasks, use_acl=False)
    expected = np.array([0.0 if t.kind == "backward" else 0.2 for t in without.terms])
    np.testing.assert_allclose(without.weights(np.ones(5)), expected, rtol=1e-6)


def test_no_acl_loss_has_no_gradient_from_backward_terms():
    """Without ACL, the loss (and its gradient) equals that of the within-task terms alone: training on
    a single task's sequence. Checked against a one-task objective on the first task's positions."""
    tasks = (TaskSpec(3, 2, 2), TaskSpec(3, 2, 2))
    episodes = sample_episodes(np.random.default_rng(2), [_pool()], list(tasks), 2)
    graphdef, params, rest = nnx.split(_model(3), nnx.Param, ...)
    first = slice(0, tasks[0].length)

    def loss(objective, images, feedback, target, scales):
        return lambda p: objective(nnx.merge(graphdef, p, rest), images, feedback, target, scales)[0]

    g_both = jax.jit(jax.grad(loss(ACLObjective(tasks, use_acl=False, loss_scale=1.0), episodes.x, episodes.feedback,
                           episodes.target, jnp.array([1.0, 0.0]))))(params)
    g_first = jax.jit(jax.grad(loss(ACLObjective(tasks[:1], loss_scale=1.0), episodes.x[:, first],
                                    episodes.feedback[:, first], episodes.target[:, first], jnp.array([1.0]))))(params)
    for a, b in zip(jax.tree.leaves(g_both), jax.tree.leaves(g_first)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bad_objective_input():
    with pytest.raises(ValueError, match="loss_scale must be > 0"):
        ACLObjective((TaskSpec(),), loss_scale=0.0)
    with pytest.raises(ValueError, match="task_scales must have shape"):
        ACLObjective((TaskSpec(), TaskSpec())).weights([1.0])
    model = _model(3)
    with pytest.raises(ValueError, match="positions for these tasks"):
        ACLObjective((TaskSpec(3, 2, 2),)).term_losses(model, jnp.zeros((1, 5, *SHAPE)), jnp.zeros((1, 5), int),
                                                       jnp.zeros((1, 5), int))


def test_term_labels_read_as_the_tables_do():
    from acljax.acl.objective import term_label

    assert term_label("within_0") == "A after A"
    assert term_label("within_1") == "B after A, B"
    assert term_label("backward_0_after_1") == "A after A, B"
    assert term_label("first_shot_2") == "C after 1 shot"
    assert term_label("backward_1_after_4") == "B after A-E"
    assert term_label("loss") == "loss"
    terms = acl_terms([TaskSpec(2, 1, 1, first_shot=True)] * 5)
    assert len({term_label(t.name) for t in terms}) == len(terms) == 20  # 5 + 5 + 10 terms, all told apart
    assert [Term.from_name(t.name) for t in terms] == terms  # a name read back from a file is its term
    assert [Term.from_name(n) for n in ("loss", "within_x", "backward_0_before_1", "first_shot")] == [None] * 4


def test_feedback_scale_multiplies_the_label_feedback_only():
    images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, *SHAPE)), jnp.float32)
    feedback = jnp.asarray([[0, 2, 3], [3, 1, 0]])  # 3: the "unknown" label of a query (3-way)
    plain = _model(3).embed(images, feedback)
    scaled = InContextLearner(SHAPE, 3, encoder="mlp", mlp_features=(8,), num_features=8, num_heads=2,
                              hidden_features=8, dropout_rate=0.0, feedback_scale=4.0, rngs=nnx.Rngs(0)).embed(
        images, feedback)
    np.testing.assert_array_equal(scaled[..., :8], plain[..., :8])  # the image features, as before
    expected = np.zeros((2, 3, 4))
    expected[np.arange(2)[:, None], np.arange(3), np.asarray(feedback)] = 4.0
    np.testing.assert_array_equal(scaled[..., 8:], expected)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="InContextLearner.feedback_scale must be a finite number > 0"):
            InContextLearner(SHAPE, 3, encoder="mlp", feedback_scale=bad, rngs=nnx.Rngs(0))
