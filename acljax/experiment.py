"""Experiments as data: the meta-training runs of a study declared as a graph, run in dependency order (each
resumed where it stopped), and reported only from what their workdirs hold.

An experiment file (``experiments/NAME.py``) defines ``EXPERIMENT``::

    EXPERIMENT = Experiment(
        name="long_sequences",
        runs=tuple(Run(f"seed{s}", "acl_glyphs_32task", ("init_from='glyphs_24task_acl'", f"seed={s}"))
                   for s in range(3)),
        report=report)  # report(workdirs: {run name: Path}, out: Path) -> the files it wrote

and ``acljax experiment run NAME`` runs it (``--dry-run``: the plan only), ``acljax experiment report NAME``
reports it. Workdirs are ``ROOT/<run name>`` (``--root``, default ``runs/<experiment name>``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

from acljax import configs
from acljax.acl.config import ACLConfig, migrate_config_dict
from acljax.recording import provenance
from acljax.workdir import Workdir

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED = ("report",)  # ROOT/report is where a report goes by default


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
        if not RUN_NAME.fullmatch(self.name) or self.name in RESERVED:
            raise ValueError(f"Run.name must start with a letter or digit and hold only letters, digits, '_', '.', "
                             f"'-' (it names the workdir), and not be {', '.join(RESERVED)}; got {self.name!r}")
        if not isinstance(self.overrides, tuple) or not all(isinstance(o, str) for o in self.overrides):
            raise ValueError(f"Run {self.name!r}: overrides must be a tuple of 'FIELD=VALUE' strings, got "
                             f"{self.overrides!r}")
        if self.after is not None and any(o.partition("=")[0] == "init_from" for o in self.overrides):
            raise ValueError(f"Run {self.name!r}: give either after={self.after!r} or an init_from override, not both")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named graph of runs (``after`` edges) and the report built from their workdirs."""

    name: str
    runs: tuple[Run, ...]
    report: Callable[[dict[str, Path], Path], list[Path]] | None = None

    def __post_init__(self):
        if not RUN_NAME.fullmatch(self.name):
            raise ValueError(f"Experiment.name must start with a letter or digit and hold only letters, digits, '_', "
                             f"'.', '-', got {self.name!r}")
        if not isinstance(self.runs, tuple) or not all(isinstance(run, Run) for run in self.runs):
            raise ValueError(f"Experiment {self.name!r}: runs must be a tuple of Run, got {self.runs!r}")
        names = [run.name for run in self.runs]
        if not names:
            raise ValueError(f"Experiment {self.name!r}: runs must hold at least one Run")
        for run in self.runs:
            if run.after is not None and run.after not in names:
                raise ValueError(f"Experiment {self.name!r}: run {run.name!r} starts after {run.after!r}, which is "
                                 f"not one of its runs ({', '.join(names)})")
        if len(set(names)) != len(names):
            raise ValueError(f"Experiment {self.name!r}: run names must be unique, got {names}")
        self.order()  # refuses a cycle

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


def default_root(experiment: Experiment) -> Path:
    return Path("runs") / experiment.name


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


def plan(experiment: Experiment, root: str | Path) -> list[dict]:
    """Per run in order: name, config, after, tasks, steps, status, step reached, steps left."""
    root = Path(root)
    rows = []
    for name, config in experiment.configs(root).items():
        run = next(r for r in experiment.runs if r.name == name)
        state, step = status(config, root / name, moved_ok=run.after is not None)
        rows.append({"run": name, "config": run.config, "after": run.after, "tasks": len(config.tasks),
                     "steps": config.steps, "status": state, "step": step,
                     "steps_left": 0 if state == "done" else config.steps - step})
    return rows


def plan_table(rows: list[dict]) -> str:
    lines = ["| run | config | after | tasks | steps | status | steps left |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        state = f"partial (step {r['step']})" if r["status"] == "partial" else r["status"]
        lines.append(f"| {r['run']} | {r['config']} | {r['after'] or '-'} | {r['tasks']} | {r['steps']} | {state} | "
                     f"{r['steps_left']} |")
    return "\n".join(lines) + f"\n\n{sum(r['steps_left'] for r in rows)} steps left in all."


def run_all(experiment: Experiment, root: str | Path, *, progress: bool = True) -> list[dict]:
    """Run every run that is not done, in dependency order, each resuming its workdir; returns the final plan.
    Before the first step: every run's config, every existing workdir against it, and :func:`preflight`."""
    from acljax.acl.trainer import meta_train

    root = Path(root)
    runs = experiment.configs(root)
    rows = plan(experiment, root)
    preflight(experiment, runs, rows, root)
    for row in rows:
        if row["status"] != "done":
            print(f"\n{experiment.name}/{row['run']}: {row['status']}, meta-training to step {row['steps']} "
                  f"({row['steps_left']} steps) in {root / row['run']}", flush=True)
            meta_train(runs[row["run"]], root / row["run"], progress=progress)
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
        raise ValueError(f"experiment {experiment.name}: the report needs every run done; not done: "
                         f"{', '.join(unfinished)} (acljax experiment run {experiment.name})")
    out.mkdir(parents=True, exist_ok=True)
    files = experiment.report({run.name: root / run.name for run in experiment.runs}, out)
    record = {"report": provenance(), "runs": {run.name: run_provenance(root / run.name) for run in experiment.runs}}
    (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    return [*files, out / "provenance.json"]


def run_provenance(workdir: Path) -> list[dict]:
    """Each start and resume of the run in ``workdir``: code (git commit, dirty), versions, device, command, date
    and the step it started from (empty for runs made before acljax recorded it)."""
    from acljax.acl.trainer import PROVENANCE

    return Workdir(workdir, create=False).read_lines(PROVENANCE)


def stream_accuracies(models: dict[str, str | Path], streams: list[str], *, runs: int = 10,
                      shots: int = 5) -> dict[str, dict[str, dict[str, float]]]:
    """ACC (%) of each in-context model (a workdir or shipped model) on each named stream: {label: {stream:
    {"mean", "std"}}}, over ``runs`` evaluation runs (each draws its own ``shots`` demos per class)."""
    from acljax.acl.in_context import in_context_report

    out = {}
    for label, model in models.items():
        out[label] = {}
        for stream in streams:
            summary = in_context_report(str(model), stream, runs=runs, shots=shots, progress=False).summary["ACC"]
            out[label][stream] = {"mean": 100 * summary["mean"], "std": 100 * summary["std"]}
    return out


def accuracy_table(accuracies: dict, streams: list[str], groups: dict[str, list[str]], *,
                   fixed_rows: tuple[str, ...] = ()) -> str:
    """Markdown: ``fixed_rows`` (preformatted), each model's ACC (mean ± std over evaluation runs), and per group
    of seeds (``{row label: [model labels]}``) the mean ± population std of their means."""
    import numpy as np

    lines = ["| model | " + " | ".join(streams) + " |", "|---|" + "---|" * len(streams), *fixed_rows]
    for label, acc in accuracies.items():
        lines.append(f"| {label} | " + " | ".join(f"{acc[s]['mean']:.1f} ± {acc[s]['std']:.1f}" for s in streams)
                     + " |")
    for row, members in groups.items():
        means = [np.array([accuracies[m][s]["mean"] for m in members]) for s in streams]
        lines.append(f"| {row} | " + " | ".join(f"**{v.mean():.1f} ± {v.std():.1f}**" for v in means) + " |")
    return "\n".join(lines)


def chain(stages: list[tuple[str, str]], overrides: tuple[str, ...] = (), after: str | None = None) -> list[Run]:
    """Runs of ``(name, config)`` stages, each starting after the one before (the first after ``after``; None:
    from its config's ``init_from``), all with ``overrides``: a curriculum."""
    runs = []
    for name, config in stages:
        runs.append(Run(name, config, overrides, after=after))
        after = name
    return runs
