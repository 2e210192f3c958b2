"""Experiments as data: the meta-training runs of a study declared as a graph, and the jobs that are not
meta-training (baselines, evaluations), run in dependency order (each resumed where it stopped), and reported
only from what their workdirs hold.

An experiment file (``experiments/NAME.py``) defines ``EXPERIMENT``::

    EXPERIMENT = Experiment(
        name="long_sequences",
        runs=tuple(Run(f"seed{s}", "acl_glyphs_32task", ("init_from='glyphs_24task_acl'", f"seed={s}"))
                   for s in range(3)),
        report=report)  # report(workdirs: {run or job name: Path}, out: Path) -> the files it wrote

and ``acljax experiment run NAME`` runs it (``--dry-run``: the plan only), ``acljax experiment report NAME``
reports it. Workdirs are ``ROOT/<run or job name>`` (``--root``, default ``runs/<experiment name>``). A job is
``Job(name, function, kwargs)``: ``function(workdir, **kwargs)``, run after the runs (see :class:`Job`). Where a
study's sizes differ by device, ``sizes={"cpu": overrides}`` declares them (``--device``; see :meth:`Experiment.at`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acljax import configs
from acljax.acl.config import ACLConfig, migrate_config_dict
from acljax.recording import provenance
from acljax.workdir import Workdir

NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
RUN_NAME = re.compile(rf"{NAME}(/{NAME})*")  # a workdir under the root, in subfolders or not
RESERVED = ("report",)  # ROOT/report is where a report goes by default
DEVICES = ("cpu", "gpu", "tpu")  # as jax.default_backend() names them


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or name.split("/")[0] in RESERVED:
        raise ValueError(f"{kind}.name names its workdir under the experiment's root: '/'-separated parts, each "
                         f"starting with a letter or digit and holding only letters, digits, '_', '.', '-', the "
                         f"first not {', '.join(RESERVED)}; got {name!r}")


@dataclasses.dataclass(frozen=True)
class Run:
    """One meta-training run: ``config`` (a shipped config's name or a ``.py`` file), ``overrides`` as ``--set``
    takes them (``"seed=1"``, ``"init_from='glyphs_24task_acl'"``), and ``after``: the run of the same experiment
    whose best parameters it starts from (its ``init_from``, set to that run's workdir)."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    after: str | None = None

    def __post_init__(self):
        _check_name("Run", self.name)
        if not isinstance(self.overrides, tuple) or not all(isinstance(o, str) for o in self.overrides):
            raise ValueError(f"Run {self.name!r}: overrides must be a tuple of 'FIELD=VALUE' strings, got "
                             f"{self.overrides!r}")
        if self.after is not None and any(o.partition("=")[0] == "init_from" for o in self.overrides):
            raise ValueError(f"Run {self.name!r}: give either after={self.after!r} or an init_from override, not both")


@dataclasses.dataclass(frozen=True)
class Job:
    """Work of an experiment that is not meta-training (a baseline sweep, an evaluation): ``function(workdir,
    **kwargs)`` writes into its workdir ``ROOT/<name>`` and keeps what it finished there, so run again after an
    interruption it resumes. When it returns the runner writes ``job.json`` (its kwargs and provenance): done.
    ``kwargs``: (name, JSON value) pairs. Jobs run after every Run of their experiment."""

    name: str
    function: Callable[..., None]
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        _check_name("Job", self.name)
        if not callable(self.function):
            raise ValueError(f"Job {self.name!r}: function must be callable as function(workdir, **kwargs), got "
                             f"{self.function!r}")
        try:
            json.dumps(dict(self.kwargs))
            inspect.signature(self.function).bind(Path(), **dict(self.kwargs))
        except (TypeError, ValueError) as e:
            raise ValueError(f"Job {self.name!r}: kwargs must be (name, JSON value) pairs that "
                             f"{getattr(self.function, '__name__', 'function')}(workdir, **kwargs) accepts, got "
                             f"{self.kwargs!r} ({e})") from None


JOB_RECORD = "job.json"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named graph of meta-training runs (``after`` edges), the jobs that run after them, the report built
    from their workdirs, and ``sizes``: per device kind (``DEVICES``), overrides applied after every run's own
    when the experiment runs at that device's sizes (:meth:`at`); a device not listed runs the runs as declared."""

    name: str
    runs: tuple[Run, ...] = ()
    jobs: tuple[Job, ...] = ()
    report: Callable[[dict[str, Path], Path], list[Path]] | None = None
    sizes: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not re.fullmatch(NAME, self.name):
            raise ValueError(f"Experiment.name must start with a letter or digit and hold only letters, digits, '_', "
                             f"'.', '-', got {self.name!r}")
        if not isinstance(self.runs, tuple) or not all(isinstance(run, Run) for run in self.runs):
            raise ValueError(f"Experiment {self.name!r}: runs must be a tuple of Run, got {self.runs!r}")
        if not isinstance(self.jobs, tuple) or not all(isinstance(job, Job) for job in self.jobs):
            raise ValueError(f"Experiment {self.name!r}: jobs must be a tuple of Job, got {self.jobs!r}")
        if not self.runs and not self.jobs:
            raise ValueError(f"Experiment {self.name!r}: declares no Run and no Job")
        names = [run.name for run in self.runs]
        for run in self.runs:
            if run.after is not None and run.after not in names:
                raise ValueError(f"Experiment {self.name!r}: run {run.name!r} starts after {run.after!r}, which is "
                                 f"not one of its runs ({', '.join(names)})")
        names += [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"Experiment {self.name!r}: run and job names must be unique, got {names}")
        kinds = {**{job.name: "job" for job in self.jobs}, **{run.name: "run" for run in self.runs}}
        nested = [(a, b) for a in names for b in names if b.startswith(a + "/")]
        if nested:
            (outer, inner), = nested[:1]
            raise ValueError(f"Experiment {self.name!r}: {kinds[inner]} {inner!r} would lie inside the workdir of "
                             f"{kinds[outer]} {outer!r}")
        self.order()  # refuses a cycle
        if not isinstance(self.sizes, dict):
            raise ValueError(f"Experiment {self.name!r}: sizes must be a dict of device -> overrides, got "
                             f"{self.sizes!r}")
        for device, overrides in self.sizes.items():
            if device not in DEVICES or not isinstance(overrides, tuple) or not all(
                    isinstance(o, str) and o.partition("=")[0] not in ("init_from", "seed") for o in overrides):
                raise ValueError(f"Experiment {self.name!r}: sizes maps a device ({', '.join(DEVICES)}) to a tuple "
                                 f"of 'FIELD=VALUE' overrides (not init_from or seed, which the runs declare), got "
                                 f"{device!r}: {overrides!r}")

    def at(self, device: str) -> Experiment:
        """This experiment at ``device``'s sizes: ``sizes[device]`` added after every run's overrides (no sizes for
        ``device``: the runs as declared)."""
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        extra = self.sizes.get(device, ())
        return dataclasses.replace(self, sizes={}, runs=tuple(dataclasses.replace(run, overrides=run.overrides + extra)
                                                             for run in self.runs))

    def order(self) -> list[Run]:
        """The runs in dependency order (every run after the one it starts from), else as declared."""
        done: list[Run] = []
        waiting = list(self.runs)
        while waiting:
            ready = [run for run in waiting if run.after is None or run.after in {d.name for d in done}]
            if not ready:
                raise ValueError(f"Experiment {self.name!r}: the runs {[r.name for r in waiting]} start after each "
                                 "other in a cycle")
            done.append(ready[0])
            waiting.remove(ready[0])
        return done

    def configs(self, root: str | Path) -> dict[str, ACLConfig]:
        """Each run's config, overrides applied and ``after`` turned into ``init_from`` (the absolute path of that
        run's workdir); any bad setting of any run is one ValueError naming the run, before anything runs."""
        out, root = {}, Path(root).absolute()
        for run in self.order():
            try:
                config = configs.override(configs.load(run.config, ACLConfig), list(run.overrides))
            except (ValueError, FileNotFoundError) as e:
                raise ValueError(f"experiment {self.name}, run {run.name}: {e}") from e
            if run.after is not None:
                config = dataclasses.replace(config, init_from=str(root / run.after))
            out[run.name] = config
        return out


def load(spec: str) -> Experiment:
    """``EXPERIMENT`` of ``experiments/<spec>.py`` (under the working folder) or of the ``.py`` file ``spec``."""
    path = Path(spec) if spec.endswith(".py") else Path("experiments") / f"{spec}.py"
    if not path.is_file():
        found = sorted(p.stem for p in Path("experiments").glob("*.py")) if Path("experiments").is_dir() else []
        raise FileNotFoundError(f"experiment {spec!r}: no file {path} (experiments here: {', '.join(found) or 'none'};"
                                " or give a .py file)")
    experiment = getattr(configs.run_file(path, f"experiment {spec}"), "EXPERIMENT", None)
    if not isinstance(experiment, Experiment):
        raise ValueError(f"experiment {spec}: {path} must define EXPERIMENT = Experiment(...), got "
                         f"{type(experiment).__name__}")
    return experiment


def default_root(experiment: Experiment, device: str | None = None) -> Path:
    """``runs/<name>``; ``runs/<name>-<device>`` where the experiment declares sizes for ``device``."""
    return Path("runs") / (f"{experiment.name}-{device}" if device in experiment.sizes else experiment.name)


def status(config: ACLConfig, workdir: Path, *, moved_ok: bool = False) -> tuple[str, int]:
    """-> ("missing" | "started" | "partial" | "done", the last step checkpointed). A workdir holding a run with
    another configuration than ``config`` is a ValueError, as ``acljax train`` refuses to resume it (the fields
    free on resume may differ; with ``moved_ok`` also ``init_from``, the workdir of the run it started after)."""
    from acljax.acl.trainer import FREE_ON_RESUME

    if not (workdir / "config.json").exists():
        return "missing", 0
    run = Workdir(workdir, create=False)
    try:
        run.check_config(dataclasses.asdict(config), free=FREE_ON_RESUME + ("init_from",) * moved_ok,
                         migrate=migrate_config_dict)
    except ValueError as e:
        held = str(e).partition("; resume it unchanged")[0]
        raise ValueError(f"{held}; declare the run as it was, or move that workdir aside to start it again") from None
    step = run.checkpoints.latest_step() or 0
    results = workdir / "results.json"
    if results.exists() and json.loads(results.read_text()).get("steps") == config.steps:
        return "done", step
    return ("partial" if step else "started"), step


def job_status(job: Job, workdir: Path) -> str:
    """"missing" | "started" | "done": done once the job returned with these kwargs (other kwargs: run again)."""
    record = workdir / JOB_RECORD
    if record.exists() and json.loads(record.read_text())["kwargs"] == json.loads(json.dumps(dict(job.kwargs))):
        return "done"
    return "started" if workdir.exists() else "missing"


def plan(experiment: Experiment, root: str | Path) -> list[dict]:
    """Per run in order, then per job: name, kind, config (a job: its function), after, tasks, steps, status, step
    reached, steps left."""
    root = Path(root)
    rows = []
    for name, config in experiment.configs(root).items():
        run = next(r for r in experiment.runs if r.name == name)
        state, step = status(config, root / name, moved_ok=run.after is not None)
        rows.append({"run": name, "kind": "run", "config": run.config, "after": run.after, "tasks": len(config.tasks),
                     "steps": config.steps, "status": state, "step": step,
                     "steps_left": 0 if state == "done" else config.steps - step})
    for job in experiment.jobs:
        rows.append({"run": job.name, "kind": "job", "config": f"job: {job.function.__name__}", "after": None,
                     "tasks": "-", "steps": "-", "status": job_status(job, root / job.name), "step": 0,
                     "steps_left": 0})
    return rows


def plan_table(rows: list[dict]) -> str:
    lines = ["| run | config | after | tasks | steps | status | steps left |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        state = f"partial (step {r['step']})" if r["status"] == "partial" else r["status"]
        lines.append(f"| {r['run']} | {r['config']} | {r['after'] or '-'} | {r['tasks']} | {r['steps']} | {state} | "
                     f"{r['steps_left']} |")
    jobs = sum(r["kind"] == "job" and r["status"] != "done" for r in rows)
    return "\n".join(lines) + f"\n\n{sum(r['steps_left'] for r in rows)} steps left in all" + (
        f"; {jobs} job{'s' * (jobs != 1)} to run." if jobs else ".")


def run_all(experiment: Experiment, root: str | Path, *, progress: bool = True) -> list[dict]:
    """Run every run that is not done, in dependency order, each resuming its workdir; returns the final plan.
    Before the first step: every run's config, every existing workdir against it, and :func:`preflight`."""
    from acljax.acl.trainer import meta_train

    root = Path(root)
    runs = experiment.configs(root)
    rows = plan(experiment, root)
    preflight(experiment, runs, rows, root)
    for row in rows:
        if row["status"] == "done":
            continue
        workdir = root / row["run"]
        if row["kind"] == "run":
            print(f"\n{experiment.name}/{row['run']}: {row['status']}, meta-training to step {row['steps']} "
                  f"({row['steps_left']} steps) in {workdir}", flush=True)
            meta_train(runs[row["run"]], workdir, progress=progress)
        else:
            job = next(j for j in experiment.jobs if j.name == row["run"])
            print(f"\n{experiment.name}/{job.name}: {row['status']}, {job.function.__name__} in {workdir}", flush=True)
            workdir.mkdir(parents=True, exist_ok=True)
            job.function(workdir, **dict(job.kwargs))
            (workdir / JOB_RECORD).write_text(json.dumps({"kwargs": dict(job.kwargs), **provenance()}, indent=1)
                                              + "\n")
    return plan(experiment, root)


def preflight(experiment: Experiment, runs: dict[str, ACLConfig], rows: list[dict], root: Path) -> None:
    """What each run not done yet needs, before any of them starts: a workdir it can write, its data prepared and
    holding its tasks, ``steps`` not below the step it reached, and parameters of the shapes it starts from (a
    run of the experiment: compared with that run's model; a shipped model or another workdir: as ``acljax
    train`` checks it). Errors name the run."""
    from flax import nnx

    from acljax.acl.model import build_model
    from acljax.acl.pools import check_pools
    from acljax.acl.preflight import _parameter_shapes, check_folder, check_init_from

    shapes = {}
    for row in rows:
        if row["kind"] == "job":
            try:
                check_folder(root / row["run"])
            except ValueError as e:
                raise ValueError(f"experiment {experiment.name}, job {row['run']}: {e}") from e
            continue
        name, config = row["run"], runs[row["run"]]
        after = next(r for r in experiment.runs if r.name == name).after
        try:
            check_folder(root / name)
            image_shape, _ = check_pools(config)
            model = nnx.eval_shape(lambda c=config, s=image_shape: build_model(c, s))
            shapes[name] = _parameter_shapes(model)
            if row["status"] == "done":
                continue
            if row["step"] > config.steps:
                raise ValueError(f"its workdir is at step {row['step']}, beyond steps={config.steps}")
            if after is not None and shapes[after] != shapes[name]:
                differ = sorted(k for k in {*shapes[after], *shapes[name]}
                                if shapes[after].get(k) != shapes[name].get(k))
                raise ValueError(f"it starts after {after!r}, whose parameters have other shapes ({', '.join(differ)})")
            if after is None and config.init_from is not None:
                check_init_from(config, image_shape, model)
        except (ValueError, FileNotFoundError) as e:
            raise ValueError(f"experiment {experiment.name}, run {name}: {e}") from e


def report(experiment: Experiment, root: str | Path, out: str | Path) -> list[Path]:
    """The experiment's report from its workdirs (each run must be done) into ``out``; returns the files."""
    root, out = Path(root), Path(out)
    if experiment.report is None:
        raise ValueError(f"experiment {experiment.name} declares no report")
    unfinished = [f"{r['run']} ({r['status']})" for r in plan(experiment, root) if r["status"] != "done"]
    if unfinished:
        raise ValueError(f"experiment {experiment.name}: the report needs every run and job done; not done: "
                         f"{', '.join(unfinished)} (acljax experiment run {experiment.name})")
    out.mkdir(parents=True, exist_ok=True)
    files = experiment.report({node.name: root / node.name for node in (*experiment.runs, *experiment.jobs)}, out)
    record = {"report": provenance(), "runs": {run.name: run_provenance(root / run.name) for run in experiment.runs},
              "jobs": {job.name: json.loads((root / job.name / JOB_RECORD).read_text()) for job in experiment.jobs}}
    (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    return [*files, out / "provenance.json"]


def run_provenance(workdir: Path) -> list[dict]:
    """Each start and resume of the run in ``workdir``: code (git commit, dirty), versions, device, command, date
    and the step it started from (empty for runs made before acljax recorded it)."""
    from acljax.acl.trainer import PROVENANCE

    return Workdir(workdir, create=False).read_lines(PROVENANCE)


def chain(stages: list[tuple[str, str]], overrides: tuple[str, ...] = (), after: str | None = None) -> list[Run]:
    """Runs of ``(name, config)`` stages, each starting after the one before (the first after ``after``; None:
    from its config's ``init_from``), all with ``overrides``: a curriculum."""
    runs = []
    for name, config in stages:
        runs.append(Run(name, config, overrides, after=after))
        after = name
    return runs
