"""The results pages, written when the docs build from what the results files hold (no number typed by hand):
one page per declared experiment (``experiments/NAME.py``: the Markdown tables and figures its report wrote to
``experiments/results/``) and one per benchmark results file (``benchmarks/results/*.json``, rendered as a table).

``python docs/results.py OUT`` writes them to OUT (the docs build writes them to ``docs/results/``);
``python docs/results.py --readme`` rewrites the README's results block from the quickstart's results."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
EXPERIMENTS = ROOT / "experiments"
BENCHMARKS = ROOT / "benchmarks"
# fields that describe where and how a row was measured: shown once under the table when every row agrees
CONTEXT = ("device", "device_kind", "device_count", "platform", "jax", "jaxlib", "flax", "optax", "orbax", "numpy",
           "python", "cpu_model", "cpu_count", "cores", "cpu", "machine", "date", "command", "git_commit", "git_dirty")


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value).replace("|", "\\|")
    if isinstance(value, int) or math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.3g}"


def rows_of(data) -> tuple[list[dict], dict]:
    """A benchmark results file's (rows, fields shared by the file): a list of rows, ``{"rows": [...], ...}``
    with the file's own fields, or one row."""
    if isinstance(data, list):
        return data, {}
    if "rows" in data:
        return data["rows"], {k: v for k, v in data.items() if k != "rows"}
    return [data], {}


def table(rows: list[dict], shared: dict) -> str:
    """Markdown: a table of the fields that vary or describe a result (lists of repeated timings left out),
    then the measurement context shared by every row."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    context = dict(shared)
    for key in CONTEXT:
        values = {json.dumps(row.get(key)) for row in rows}
        if key in fields and len(values) == 1:
            context[key] = rows[0].get(key)
    columns = [f for f in fields if f not in context and not isinstance(rows[0].get(f), (list, dict))]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_number(row.get(c)) for c in columns) + " |" for row in rows]
    if context:
        lines += ["", "Recorded with: " + "; ".join(f"{k} `{_number(v)}`" for k, v in context.items()) + "."]
    return "\n".join(lines)


def experiment_page(name: str, out: Path) -> str:
    """The page of experiment ``name``: its report's Markdown files and figures, as the report wrote them."""
    parts = [f"# {name}", "",
             f"Declared in `experiments/{name}.py`; regenerate with `acljax experiment report {name}` (runs: "
             f"`acljax experiment run {name}`). What its report wrote to `experiments/results/`:", ""]
    results = EXPERIMENTS / "results"
    for path in experiment_files(name):
        relative = path.relative_to(results)
        if path.suffix == ".md":
            parts += [f"## `{relative}`", "", path.read_text().strip(), ""]
        elif path.suffix == ".png":
            target = out / "figures" / str(relative).replace("/", "__")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            parts += [f"## `{relative}`", "", f"![{relative}](figures/{target.name})", ""]
        elif path.suffix == ".json" and "table" in (recorded := json.loads(path.read_text())):
            parts += [f"## `{relative}`", "", recorded["table"].strip(), ""]  # a summary a run wrote (the spread)
        elif path.name == "provenance.json":
            recorded = json.loads(path.read_text())
            parts += [f"## `{relative}`", ""]
            if "report" in recorded:
                runs = ", ".join(f"`{name}`" for name in recorded.get("runs", {})) or "none"
                parts += [f"Reported on: {machine(recorded['report'])}. Runs: {runs}; each run's own provenance "
                          f"(every start and resume) is in `experiments/results/{relative}`.", ""]
            else:
                parts += ["```json", path.read_text().strip(), "```", ""]
    return "\n".join(parts)


def benchmark_page(path: Path) -> str:
    """A benchmark results file as a table; the command that wrote it is among the shared fields below it."""
    rows, shared = rows_of(json.loads(path.read_text()))
    return "\n".join([f"# {path.stem}", "", f"`benchmarks/results/{path.name}` (benchmarks/README.md says what "
                      "its script measures).", "", table(rows, shared), ""])


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS.glob("*.py") if not p.stem.startswith("_"))


def experiment_files(name: str) -> list[Path]:
    """What experiment ``name``'s report recorded: ``experiments/results/NAME.*``, ``NAME_*.*`` (e.g. a plan) and
    every file under ``experiments/results/NAME/``."""
    results = EXPERIMENTS / "results"
    folder = sorted(p for p in (results / name).rglob("*") if p.is_file()) if (results / name).is_dir() else []
    return sorted([*results.glob(f"{name}.*"), *results.glob(f"{name}_*.*")]) + folder


README = ROOT / "README.md"
README_BLOCK = ("<!-- results:quickstart (generated by `python docs/results.py --readme` from "
                "experiments/results/acl_quickstart/; do not edit) -->", "<!-- end results:quickstart -->")


def readme_block() -> str:
    """The README's results block: the quickstart's table as its run wrote it, and where it was recorded."""
    folder = EXPERIMENTS / "results" / "acl_quickstart"
    summary = json.loads((folder / "summary.json").read_text())
    runs = json.loads((folder / "provenance.json").read_text())["runs"]
    started = [run[-1] for run in runs.values()]  # each run's last start: the one that finished it
    where = "; ".join(dict.fromkeys(machine(entry) for entry in started))
    return "\n".join([README_BLOCK[0], summary["table"], f"Meta-trained and meta-tested on: {where}.",
                      README_BLOCK[1]])


def machine(provenance: dict) -> str:
    """Where and how a result was recorded, in words, from its provenance (``acljax.recording.provenance``)."""
    device = (f"{provenance.get('cpu_count')}-core {provenance.get('cpu_model') or provenance.get('machine')} CPU"
              if provenance.get("platform") == "cpu" else f"{provenance.get('device_count')} x {provenance['device']}")
    commit = str(provenance.get("git_commit") or "unknown")[:7]
    commit += " with changes" if provenance.get("git_dirty") else ""
    return (f"{device}, jax {provenance['jax']}, commit {commit}, {provenance['date'][:10]} "
            f"(`{provenance['command']}`)")


def readme_with_block(text: str) -> str:
    """``text`` (the README) with its results block replaced by :func:`readme_block`."""
    start, end = text.index(README_BLOCK[0]), text.index(README_BLOCK[1]) + len(README_BLOCK[1])
    return text[:start] + readme_block() + text[end:]


MARKER = ".written-by-docs-results-py"  # in a folder of results pages: it may be replaced


def write_pages(out: Path) -> None:
    """Write the results pages and their index into ``out``, replacing the pages an earlier call wrote there; a
    folder that holds anything else is refused."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SystemExit(f"{out}: not a folder of results pages this script wrote; give a new or empty folder")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / MARKER).touch()
    experiments = [name for name in experiment_names() if experiment_files(name)]
    benchmarks = sorted((BENCHMARKS / "results").glob("*.json"))
    for name in experiments:
        (out / f"{name}.md").write_text(experiment_page(name, out))
    for path in benchmarks:
        (out / f"benchmark_{path.stem}.md").write_text(benchmark_page(path))
    index = ["# Results", "",
             "Every page here is generated when the docs build, from the results files in the repository: the "
             "experiments' reports (`experiments/results/`) and the benchmarks' records (`benchmarks/results/`). "
             "Each names its command and the machine and versions it was recorded with.", "",
             "```{toctree}", ":caption: Experiments", ":maxdepth: 1", "", *experiments, "```", "",
             "```{toctree}", ":caption: Benchmarks", ":maxdepth: 1", "",
             *(f"benchmark_{p.stem}" for p in benchmarks), "```", ""]
    (out / "index.md").write_text("\n".join(index))


if __name__ == "__main__":
    if sys.argv[1:] == ["--readme"]:
        README.write_text(readme_with_block(README.read_text()))
    elif len(sys.argv) == 2:
        write_pages(Path(sys.argv[1]))
    else:
        sys.exit("usage: python docs/results.py OUT   (the results pages)  |  python docs/results.py --readme")
