"""The ACL meta-trainer: a readable loop around one jit-compiled meta-training step.

``meta_train(config, workdir)`` samples a meta-batch of task sequences per step (numpy, seeded by
``(seed, step)``), takes an Adam step on the ACL objective, logs every term's loss and accuracy to
``metrics.jsonl``, meta-validates on held-out classes, keeps the best parameters in ``best/`` and
checkpoints so that a killed run resumes with the numbers it would have had.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from acljax.acl.config import ACLConfig, migrate_config_dict
from acljax.acl.model import build_model, load_params
from acljax.acl.objective import ACLObjective, Term, tasks_read
from acljax.acl.pools import build_pools
from acljax.acl.preflight import check_start
from acljax.acl.step import Tally, empty_tally, make_eval_step, make_train_step, merged_model
from acljax.checks import NonFiniteLoss
from acljax.data.episodes import TaskSpec, sample_episodes
from acljax.distributed import local_rows, make_mesh, replicate, shard_batch
from acljax.nn.learner import InContextLearner
from acljax.prefetch import prefetched
from acljax.recording import provenance
from acljax.workdir import Workdir

VALIDATION_STREAM, TEST_STREAM = 1_000_003, 2_000_003  # seeds of the fixed validation / test episodes
PROFILED_STEPS = 5
PROVENANCE = "provenance.jsonl"  # in the workdir: per start or resume, the code, versions, device and command
# what a resume may change: how far and on what it runs, and how it saves; nothing that changes the numbers
# the SRWM implementation may change too: every one computes the same function (to float rounding)
FREE_ON_RESUME = ("steps", "num_devices", "checkpoint_every", "prefetch", "async_checkpoints", "model.srwm.impl")


def learning_rate_schedule(config: ACLConfig) -> optax.Schedule:
    """The transformer warm-up schedule of the ACL code (peak ~8.8e-4 for D=256, 5000 steps), or a constant."""
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    d_model, warmup = config.model.num_features, config.warmup_steps

    def schedule(count):
        step = jnp.maximum(count + 1, 1).astype(jnp.float32)
        return d_model ** -0.5 * jnp.minimum(step ** -0.5, step * warmup ** -1.5)

    return schedule


def optimizer(config: ACLConfig) -> optax.GradientTransformation:
    return optax.adam(learning_rate_schedule(config), b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)


def task_orders(config: ACLConfig) -> list[list[int]]:
    """The task orders used in turn: the config's order, or all its rotations with ``cycle_orders``."""
    n = len(config.tasks)
    return [[(k + i) % n for i in range(n)] for k in range(n if config.cycle_orders else 1)]


def layout_only(task: TaskSpec) -> TaskSpec:
    """What the objective needs of a task (its positions), so orders of equal shapes share one compile."""
    return TaskSpec(task.n_way, task.k_shot, task.num_queries, task.first_shot)


class MetaTrainer:
    """The model split into (graphdef, params, rest), its optimiser, one objective per task order, and the
    compiled steps (``acljax.acl.step``): ``train_steps[k]`` and ``eval_steps[k]`` for order ``k``; orders
    of one layout share one objective and so one compiled step."""

    def __init__(self, config: ACLConfig, image_shape):
        self.config, self.image_shape = config, tuple(image_shape)
        self.graphdef, self.params, self.rest = nnx.split(build_model(config, image_shape), nnx.Param, ...)
        self.tx = optimizer(config)
        self.objectives = [ACLObjective(tuple(layout_only(config.tasks[i]) for i in order), use_acl=config.use_acl,
                                        loss_scale=config.loss_scale) for order in task_orders(config)]
        steps = {objective: (make_train_step(self.graphdef, self.tx, objective),
                             make_eval_step(self.graphdef, objective)) for objective in self.objectives}
        self.train_steps = [steps[objective][0] for objective in self.objectives]
        self.eval_steps = [steps[objective][1] for objective in self.objectives]

    def model(self, params, rest, *, train: bool, key=None) -> InContextLearner:
        return merged_model(self.graphdef, params, rest, train=train, key=key)


@functools.lru_cache(maxsize=2)
def trainer_for(config: ACLConfig, image_shape: tuple[int, ...]) -> MetaTrainer:
    """``MetaTrainer(config, image_shape)``, kept for the next run of the same configuration in this process (a
    resume after an interruption, a repeated run): its programs are traced once. Nothing in it changes after it
    is built (its params are the starting point of each run, copied before training)."""
    return MetaTrainer(config, image_shape)


def sample(config: ACLConfig, pools, rng: np.random.Generator, order: list[int], batch_size: int):
    episodes = sample_episodes(rng, pools, [config.tasks[i] for i in order], batch_size, config.num_classes)
    return (episodes.x, episodes.feedback, episodes.target), np.asarray([config.scales[i] for i in order], np.float32)


def sample_sharded(config: ACLConfig, pools, seed: list[int], order: list[int], mesh):
    """This process's rows of a global batch (seeded by ``seed``, plus the process index on multi-host runs),
    split over the mesh's ``data`` axis."""
    rows = local_rows(config.batch_size, mesh)
    if jax.process_count() > 1:
        seed = [*seed, jax.process_index()]
    batch, scales = sample(config, pools, np.random.default_rng(seed), order, rows.stop - rows.start)
    return shard_batch(mesh, batch), scales


PROGRESS_TERMS = 10  # the readout names every term up to 4 tasks; longer sequences show means per kind


def progress_postfix(loss: float, accuracies: dict[Term, float]) -> dict[str, str]:
    """The progress bar's readout of a log line: the mean loss and every term's query accuracy, labelled as the
    tables do ("A after A, B" shows as "A after A+B": tqdm separates items by commas). Past ``PROGRESS_TERMS``
    terms (a 24-task sequence has 300) it shows accuracy means instead: per kind of term and over the last
    state's terms ("all after A-X", what an evaluation at the stream's end reports)."""
    readout = {"loss": f"{loss:.3f}"}
    if len(accuracies) <= PROGRESS_TERMS:
        return readout | {term.label.replace(", ", "+"): f"{value:.2f}" for term, value in accuracies.items()}
    return readout | {label: f"{np.mean(values):.2f}" for label, values in accuracy_groups(accuracies).items()}


def accuracy_groups(accuracies: dict[Term, float]) -> dict[str, list[float]]:
    """Term accuracies grouped as "first shot", "within", "backward" and "all after <tasks>" (the last state's
    within and backward terms); empty groups left out."""
    last = max(term.after_task for term in accuracies)
    final = f"all after {tasks_read(last)}"
    groups: dict[str, list[float]] = {"first shot": [], "within": [], "backward": [], final: []}
    for term, value in accuracies.items():
        groups[term.kind.replace("_", " ")].append(value)
        if term.kind != "first_shot" and term.after_task == last:
            groups[final].append(value)
    return {label: values for label, values in groups.items() if values}


def term_metrics(terms: list[Term], loss, term_losses, term_accuracies) -> dict[str, float]:
    """{"loss", "loss/<term>", "acc/<term>"} as floats from the objective's outputs (or their means)."""
    row = {"loss": float(loss)}
    for term, term_loss, accuracy in zip(terms, np.asarray(term_losses), np.asarray(term_accuracies)):
        row[f"loss/{term.name}"], row[f"acc/{term.name}"] = float(term_loss), float(accuracy)
    return row


def evaluate_terms(trainer: MetaTrainer, params, pools, stream: int, num_batches: int, mesh=None) -> dict[str, float]:
    """Mean loss and per-term loss/accuracy over fixed episodes (the same ones at every call)."""
    return {name: float(np.mean(values)) for name, values in term_batches(trainer, params, pools, stream, num_batches,
                                                                           mesh).items()}


def standard_errors(batches: dict[str, list[float]]) -> dict[str, float]:
    """The standard error of each metric's mean over its batches (sample std / sqrt(n)); none for a single batch."""
    return {name: float(np.std(v, ddof=1) / np.sqrt(len(v))) for name, v in batches.items() if len(v) > 1}


def term_batches(trainer: MetaTrainer, params, pools, stream: int, num_batches: int, mesh=None) -> dict[str, list]:
    """Loss and per-term loss/accuracy of every batch of fixed episodes: name -> ``num_batches`` values."""
    config, orders = trainer.config, task_orders(trainer.config)
    mesh = make_mesh(config.num_devices) if mesh is None else mesh
    rest = replicate(mesh, trainer.rest)
    totals: dict[str, list[float]] = {}
    for b in range(num_batches):
        k = b % len(orders)
        batch, scales = sample_sharded(config, pools, [config.seed, stream, b], orders[k], mesh)
        loss, terms = trainer.eval_steps[k](params, rest, batch, scales)
        for name, value in term_metrics(trainer.objectives[k].terms, loss, *terms).items():
            totals.setdefault(name, []).append(value)
    return totals


@contextlib.contextmanager
def step_profiler(profile_dir: str | Path | None, first: int, count: int):
    """Yields ``at(step)``, to call at the start of every step: steps ``first .. first + count - 1`` are
    traced with ``jax.profiler`` into ``profile_dir`` (nothing when it is None); the trace is closed
    whichever way the loop ends."""
    tracing = False

    def at(step: int) -> None:
        nonlocal tracing
        if profile_dir is not None and step == first:
            jax.profiler.start_trace(str(profile_dir))
            tracing = True
        elif tracing and step == first + count:
            jax.profiler.stop_trace()
            tracing = False

    try:
        yield at
    finally:
        if tracing:
            jax.profiler.stop_trace()


def meta_train(config: ACLConfig, workdir: str | Path, *, progress: bool = True,
               allow_config_change: bool = False, profile_dir: str | Path | None = None,
               tensorboard: bool = False) -> dict:
    """Meta-train (resuming from ``workdir``), keep the best parameters by validation loss; returns the summary
    also written to ``workdir/results.json`` (best step, validation and meta-test term metrics).

    A resume must use the configuration the workdir was started with (the fields in ``FREE_ON_RESUME`` may
    change); ``allow_config_change`` goes on with another one and records the change. One run at a time
    holds a workdir. Only process 0 of a multi-process run shows progress.
    ``profile_dir``: a ``jax.profiler`` trace of ``PROFILED_STEPS`` steps after the first (compiling) one,
    for TensorBoard's profile plugin or Perfetto. ``tensorboard``: also write the metrics as TensorBoard
    scalars (``workdir/tensorboard``; the ``tensorboard`` extra)."""
    progress = progress and jax.process_index() == 0
    shape, mesh = check_start(config, workdir, progress=progress, profile_dir=profile_dir)
    train_pools = build_pools(config, "train", progress=progress)
    valid_pools = build_pools(config, "validation", progress=progress)
    trainer = trainer_for(config, tuple(shape))
    run = Workdir(workdir, async_checkpoints=config.async_checkpoints)  # created once data and model are usable
    with run.exclusive():
        if tensorboard:
            run.mirror_to_tensorboard()
        run.check_config(dataclasses.asdict(config), free=FREE_ON_RESUME, allow_change=allow_config_change,
                         migrate=migrate_config_dict)
        if (reached := run.checkpoints.latest_step() or 0) > config.steps:
            raise ValueError(f"{run.path} is at step {reached}, beyond steps={config.steps}: give steps >= {reached} "
                             "to go on, or another workdir")
        return _meta_train(config, run, trainer, mesh, train_pools, valid_pools, progress, profile_dir)


def _print_devices(config: ACLConfig, mesh) -> None:
    device = mesh.devices.flat[0]
    kind = "" if device.device_kind == device.platform else f" ({device.device_kind})"
    print(f"{mesh.size} {device.platform}{kind} device(s) in {jax.process_count()} process(es), "
          f"meta-batch {config.batch_size} ({config.batch_size // mesh.size} per device)")


def _meta_train(config: ACLConfig, run: Workdir, trainer: MetaTrainer, mesh, train_pools, valid_pools,
                progress: bool, profile_dir: str | Path | None) -> dict:
    run.write_json("config.json", dataclasses.asdict(config))
    if progress:
        _print_devices(config, mesh)
    params = trainer.params if config.init_from is None else load_params(config.init_from, trainer.params)
    fresh = replicate(mesh, {"params": jax.tree.map(jnp.copy, params), "opt_state": trainer.tx.init(params),
                             "best_loss": jnp.asarray(np.inf, jnp.float32), "best_step": jnp.asarray(0, jnp.int32)})
    start, state = run.restore_latest(fresh)  # restored onto this run's mesh, whatever the saving run's was
    run.append_line(PROVENANCE, {**provenance(), "from_step": start})
    rest, orders = replicate(mesh, trainer.rest), task_orders(config)
    # a resume starts counting skipped steps in a row again (the tally is not checkpointed)
    tally = replicate(mesh, empty_tally(len(trainer.objectives[0].terms)))
    skip_limit = jnp.asarray(config.skip_nonfinite_steps, jnp.int32)
    bar = tqdm(total=config.steps, initial=start, desc="meta-training", disable=not progress)

    def batch_of(step):  # depends on the step only, so it can be prepared ahead (config.prefetch)
        return sample_sharded(config, train_pools, [config.seed, step], orders[step % len(orders)], mesh)

    tick = time.perf_counter()
    with step_profiler(profile_dir, start + 1, PROFILED_STEPS) as profile_step:
        for step, (batch, scales) in prefetched(batch_of, range(start, config.steps), config.prefetch):
            profile_step(step)
            done, k = step + 1, step % len(orders)
            key = jax.random.fold_in(jax.random.key(config.seed), step)
            params, opt_state, tally = trainer.train_steps[k](state["params"], state["opt_state"], rest, tally, batch,
                                                              scales, key, jnp.asarray(done, jnp.int32), skip_limit)
            state = {**state, "params": params, "opt_state": opt_state}
            validating = done % config.validate_every == 0 or done == config.steps
            if done % config.log_every == 0 or validating:  # the loop's only wait for the device between validations
                tick = log_tally(run, bar, config, trainer.objectives[0].terms, tally, done, tick)
                tally = replicate(mesh, tally.restarted())
            if validating:
                state = validate(run, trainer, state, valid_pools, done, mesh)
            if validating or (config.checkpoint_every and done % config.checkpoint_every == 0):
                run.save(done, state)
            bar.update()
    bar.close()
    return finish(config, run, trainer, state, mesh, progress)


def log_tally(run: Workdir, bar: tqdm, config: ACLConfig, terms: list[Term], tally: Tally, done: int,
              since: float) -> float:
    """Fetch the tally of the steps up to ``done`` and log their means (and how many were skipped), or raise
    :class:`NonFiniteLoss` for a failed step. ``sec_per_step``: the wall time from the previous fetch (``since``)
    to this one over the window's steps (skipped ones included). Returns the time of this fetch."""
    t = jax.device_get(tally)
    fetched = time.perf_counter()  # windows run from fetch to fetch: logging and validation count in the next
    if t.failed_at:
        raise NonFiniteLoss(f"meta-training step {int(t.failed_at)}" + (
            f", after {config.skip_nonfinite_steps} skipped in a row" if config.skip_nonfinite_steps else ""))
    steps = int(t.finite_steps) + int(t.skipped_steps)
    row = {"skipped_nonfinite_steps": int(t.skipped_steps)} if t.skipped_steps else {}
    if t.finite_steps:
        n = int(t.finite_steps)
        row = term_metrics(terms, t.loss / n, t.term_losses / n, t.term_accuracies / n) | row
        bar.set_postfix(progress_postfix(row["loss"], dict(zip(terms, np.asarray(t.term_accuracies) / n))),
                        refresh=False)
    if steps:
        rate = float(learning_rate_schedule(config)(done - 1))
        run.log(done, **row, learning_rate=rate, sec_per_step=(fetched - since) / steps)
    return fetched


def validate(run: Workdir, trainer: MetaTrainer, state: dict, valid_pools, done: int, mesh) -> dict:
    """Meta-validate ``state["params"]``, log it, and keep them as the best when the loss is no higher."""
    valid = evaluate_terms(trainer, state["params"], valid_pools, VALIDATION_STREAM, trainer.config.validation_batches,
                           mesh)
    run.log(done, **{f"valid/{k}": v for k, v in valid.items()})
    if valid["loss"] <= float(state["best_loss"]):
        state = {**state, "best_loss": jnp.asarray(valid["loss"], jnp.float32),
                 "best_step": jnp.asarray(done, jnp.int32)}
        run.save_best(done, state["params"], {"step": done, **valid})
    return state


def finish(config: ACLConfig, run: Workdir, trainer: MetaTrainer, state: dict, mesh, progress: bool) -> dict:
    """The run's summary (best step, its validation and meta-test metrics), written to ``results.json``."""
    best_step, best = run.restore_best(state["params"], int(state["best_step"]))  # the previous one if it is damaged
    summary = {"steps": config.steps, "best_step": best_step, "best_validation": run.best_metrics()}
    if all(p.test_split is not None for p in config.pools):
        batches = term_batches(trainer, best, build_pools(config, "test", progress=progress), TEST_STREAM,
                               config.test_batches, mesh)
        summary["test"] = {name: float(np.mean(values)) for name, values in batches.items()}
        summary["test_standard_error"] = standard_errors(batches)  # over the test batches
    run.write_json("results.json", summary)
    return summary
