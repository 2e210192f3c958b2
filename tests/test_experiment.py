"""Declared experiments end to end on tiny stand-ins: a graph of three runs (two seeds, one run starting after
another) runs in order, resumes after a kill in the middle run, skips what is done, refuses a changed config,
and reports from its workdirs; provenance is recorded per start."""

import json
import subprocess

import pytest
import tiny_run

from acljax import experiment
from acljax.acl import ACLConfig
from acljax.cli import main
from acljax.experiment import Experiment, Job, Run
from acljax.recording import git_state
from acljax.workdir import Workdir

CONFIG = '''
import tiny_run

def get_config():
    return tiny_run.config({npz!r}, steps=4, validate_every=2, log_every=1, cycle_orders=False)
'''

EXPERIMENT = '''
import json
from acljax.experiment import Experiment, Job, Run

def report(workdirs, out):
    rows = {{name: json.loads((w / "results.json").read_text())["best_validation"]["loss"]
             for name, w in workdirs.items()}}
    (out / "table.md").write_text("\\n".join(f"| {{name}} | {{loss:.6f}} |" for name, loss in rows.items()) + "\\n")
    return [out / "table.md"]

EXPERIMENT = Experiment("tiny", (
    Run("finetuned", {config!r}, ("seed=0", "learning_rate=3e-4"), after="base_seed0"),
    Run("base_seed0", {config!r}, ("seed=0",)),
    Run("base_seed1", {config!r}, ("seed=1", {extra!r})),
), report=report)
'''


def _files(tmp_path, extra="learning_rate=1e-3"):
    npz = tiny_run.write_npz(tmp_path / "tiny.npz")
    (tmp_path / "tiny_config.py").write_text(CONFIG.format(npz=npz))
    path = tmp_path / "tiny_experiment.py"
    path.write_text(EXPERIMENT.format(config=str(tmp_path / "tiny_config.py"), extra=extra))
    return str(path)


def _killed_at(run_name, step):
    """A Workdir.save that dies (like a kill) before checkpoint ``step`` of the run ``run_name``."""
    save = Workdir.save

    def dying_save(self, at, tree):
        if self.path.name == run_name and at == step:
            raise KeyboardInterrupt
        save(self, at, tree)

    return dying_save


def test_a_graph_runs_in_order_resumes_after_a_kill_and_reports_from_its_workdirs(tmp_path, monkeypatch, capsys):
    spec, root = _files(tmp_path), "runs"  # relative, moved at the end
    monkeypatch.chdir(tmp_path)
    declared = experiment.load(spec)
    assert [r.name for r in declared.order()] == ["base_seed0", "finetuned", "base_seed1"]  # finetuned waits
    with monkeypatch.context() as patch:
        patch.setattr(Workdir, "save", _killed_at("base_seed1", 4))
        with pytest.raises(KeyboardInterrupt):
            experiment.run_all(declared, root, progress=False)
    assert [(r["run"], r["status"], r["step"]) for r in experiment.plan(declared, root)] == [
        ("base_seed0", "done", 4), ("finetuned", "done", 4), ("base_seed1", "partial", 2)]
    with pytest.raises(ValueError, match="not done: base_seed1 \\(partial\\)"):
        experiment.report(declared, root, tmp_path / "report")
    root = tmp_path / root
    first = (root / "base_seed0" / "metrics.jsonl").read_text()

    assert main(["experiment", "run", spec, "--root", "runs"]) == 0
    assert (root / "base_seed0" / "metrics.jsonl").read_text() == first  # done: not run again
    assert len(experiment.run_provenance(root / "base_seed0")) == 1
    assert all(r["status"] == "done" for r in experiment.plan(declared, root))
    starts = experiment.run_provenance(root / "base_seed1")
    assert [s["from_step"] for s in starts] == [0, 2]  # started, then resumed from checkpoint 2
    assert starts[0]["git_commit"] == git_state()["git_commit"] and "flax" in starts[0] and "orbax" in starts[0]
    finetuned = json.loads((root / "finetuned" / "config.json").read_text())
    assert finetuned["init_from"] == str(root.absolute() / "base_seed0") and finetuned["learning_rate"] == 3e-4
    seeds = [json.loads((root / name / "config.json").read_text())["seed"] for name in ("base_seed0", "base_seed1")]
    assert seeds == [0, 1]

    capsys.readouterr()
    assert main(["experiment", "report", spec, "--root", "runs", "--out", str(tmp_path / "report")]) == 0
    losses = {name: json.loads((root / name / "results.json").read_text())["best_validation"]["loss"]
              for name in ("finetuned", "base_seed0", "base_seed1")}  # as declared
    assert (tmp_path / "report" / "table.md").read_text() == "".join(
        f"| {name} | {loss:.6f} |\n" for name, loss in losses.items())
    recorded = json.loads((tmp_path / "report" / "provenance.json").read_text())
    assert len(recorded["runs"]["base_seed1"]) == 2 and recorded["report"]["jax"]

    root.rename(tmp_path / "moved")  # init_from of finetuned named the old place: done all the same
    assert all(r["status"] == "done" for r in experiment.plan(declared, tmp_path / "moved"))

    shortened = Experiment("tiny", (Run("base_seed1", str(tmp_path / "tiny_config.py"),
                                        ("seed=1", "learning_rate=1e-3", "steps=2")),))
    with pytest.raises(ValueError, match="run base_seed1: its workdir is at step 4, beyond steps=2"):
        experiment.run_all(shortened, tmp_path / "moved", progress=False)

    _files(tmp_path, extra="learning_rate=5e-4")  # the same file, base_seed1 changed
    assert main(["experiment", "run", spec, "--root", "moved", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with another configuration (learning_rate: 0.001 -> 0.0005); declare the run as it was" in err


@pytest.mark.parametrize("runs, expected", [
    (lambda: (Run("a", "x"), Run("a", "y")), "run and job names must be unique"),
    (lambda: (Run("a", "x", after="b"),), "run 'a' starts after 'b', which is not one of its runs (a)"),
    (lambda: (Run("a", "x", after="b"), Run("b", "x", after="a")), "start after each other in a cycle"),
    (lambda: (Run("../a", "x"),), "Run.name names its workdir under the experiment's root: '/'-separated parts"),
    (lambda: (Run("report/a", "x"),), "the first not report; got 'report/a'"),
    (lambda: (Run("a", "x"), Run("a/b", "x")), "run 'a/b' would lie inside the workdir of run 'a'"),
    (lambda: (Run("a", "x", ("seed=1")),), "Run 'a': overrides must be a tuple of 'FIELD=VALUE' strings, got 'seed=1'"),
    (lambda: (Run("a", "x", ("init_from='m'",), after="b"),), "give either after='b' or an init_from override"),
    (lambda: [Run("a", "x")], "runs must be a tuple of Run"),
    (lambda: (), "declares no Run and no Job"),
])
def test_a_bad_graph_is_refused_when_declared(runs, expected):
    with pytest.raises(ValueError, match=expected.replace("(", "\\(").replace(")", "\\)")):
        Experiment("bad", runs())


def _count(workdir, n=1, label="x"):
    with open(workdir / "calls", "a") as f:
        f.write(f"{label}{n}\n")


@pytest.mark.parametrize("job, expected", [
    (lambda: Job("j", _count, (("m", 1),)), "Job 'j': kwargs must be (name, JSON value) pairs that _count(workdir, "
                                             "**kwargs) accepts, got (('m', 1),) (got an unexpected keyword"),
    (lambda: Job("j", _count, (("label", {1, 2}),)), "kwargs must be (name, JSON value) pairs"),
    (lambda: Job("j", "_count"), "Job 'j': function must be callable"),
    (lambda: Job("a b", _count), "Job.name names its workdir"),
])
def test_a_bad_job_is_refused_when_declared(job, expected):
    with pytest.raises(ValueError, match=expected.replace("(", "\\(").replace(")", "\\)").replace("*", "\\*")):
        job()


def test_a_job_inside_a_runs_workdir_is_named_as_a_job():
    with pytest.raises(ValueError, match="job 'a/eval' would lie inside the workdir of run 'a'"):
        Experiment("nested", (Run("a", "x"),), (Job("a/eval", _count),))


def test_a_job_runs_once_per_kwargs_and_reports_with_its_record(tmp_path, capsys):
    def report(workdirs, out):
        (out / "calls.md").write_text((workdirs["count"] / "calls").read_text())
        return [out / "calls.md"]

    declared = Experiment("jobs", jobs=(Job("count", _count, (("n", 2),)),), report=report)
    with pytest.raises(ValueError, match="run and job names must be unique"):
        Experiment("jobs", runs=(Run("count", "x"),), jobs=declared.jobs)
    assert experiment.plan_table(experiment.plan(declared, tmp_path)).endswith("0 steps left in all; 1 job to run.")
    experiment.run_all(declared, tmp_path)
    experiment.run_all(declared, tmp_path)  # done: not run again
    assert (tmp_path / "count" / "calls").read_text() == "x2\n"
    record = json.loads((tmp_path / "count" / "job.json").read_text())
    assert record["kwargs"] == {"n": 2} and {"git_commit", "jax", "date", "command"} <= set(record)
    files = experiment.report(declared, tmp_path, tmp_path / "report")
    assert (tmp_path / "report" / "calls.md").read_text() == "x2\n" and len(files) == 2
    assert json.loads(files[-1].read_text())["jobs"]["count"]["kwargs"] == {"n": 2}

    other = Experiment("jobs", jobs=(Job("count", _count, (("n", 3),)),), report=report)
    assert experiment.plan(other, tmp_path)[0]["status"] == "started"  # other kwargs: the job runs again
    with pytest.raises(ValueError, match="the report needs every run and job done; not done: count \\(started\\)"):
        experiment.report(other, tmp_path, tmp_path / "report")
    experiment.run_all(other, tmp_path)
    assert (tmp_path / "count" / "calls").read_text() == "x2\nx3\n"


def test_a_run_whose_parameters_do_not_fit_the_run_before_is_refused_before_any_step(tmp_path):
    npz = tiny_run.write_npz(tmp_path / "tiny.npz")
    (tmp_path / "tiny_config.py").write_text(CONFIG.format(npz=npz))
    config = str(tmp_path / "tiny_config.py")
    declared = Experiment("shapes", (Run("a", config), Run("b", config, ("model.num_features=16",), after="a")))
    with pytest.raises(ValueError, match="experiment shapes, run b: it starts after 'a', whose parameters have other "
                                         "shapes \\(.*srwm"):
        experiment.run_all(declared, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_bad_run_setting_names_the_run_before_anything_runs(tmp_path):
    declared = Experiment("bad", (Run("ok", "acl_glyphs_quickstart"),
                                  Run("typo", "acl_glyphs_quickstart", ("learning_rat=1e-3",))))
    with pytest.raises(ValueError, match="experiment bad, run typo: --set 'learning_rat=1e-3'"):
        experiment.run_all(declared, tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_unknown_experiment_lists_the_ones_there(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "mine.py").write_text("EXPERIMENT = None\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no file experiments/other.py \\(experiments here: mine"):
        experiment.load("other")
    with pytest.raises(ValueError, match="must define EXPERIMENT = Experiment\\(...\\), got NoneType"):
        experiment.load("mine")


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "venv").mkdir()
    assert git_state(tmp_path / "venv") == {"git_commit": None, "git_dirty": None}  # inside, not the top folder
    (tmp_path / "f").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
                   check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_state(tmp_path) == {"git_commit": head.strip(), "git_dirty": False}
    (tmp_path / "f").write_text("2")
    assert git_state(tmp_path)["git_dirty"] is True


def test_the_declared_experiments_plan(monkeypatch):
    """Every experiment in experiments/ declaring EXPERIMENT loads and plans (configs and overrides valid)."""
    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    declared = [p.stem for p in (ROOT / "experiments").glob("*.py") if "EXPERIMENT =" in p.read_text()]
    assert "long_sequences" in declared
    for name in declared:
        for device in experiment.DEVICES:  # at every device's sizes
            rows = experiment.plan(experiment.load(name).at(device), ROOT / "nonexistent_root")
            assert rows and all(r["status"] == "missing" for r in rows)


def test_sizes_per_device_follow_each_runs_overrides(tmp_path, capsys, monkeypatch):
    runs = (Run("a", "acl_glyphs_quickstart", ("steps=7",)), Run("b", "acl_glyphs_4task", ("seed=2",), after="a"))
    declared = Experiment("sized", runs, sizes={"cpu": ("steps=3", "model.num_heads=4")})
    for device, steps, heads in (("cpu", 3, 4), ("gpu", None, None)):
        configs = declared.at(device).configs(tmp_path)
        assert configs["a"].steps == (steps or 7) and configs["b"].seed == 2  # a run's own settings stay
        assert configs["b"].init_from == str(tmp_path / "a")
        expected_heads = heads or experiment.configs.load("acl_glyphs_4task", ACLConfig).model.num_heads
        assert configs["b"].model.num_heads == expected_heads
    assert experiment.default_root(declared, "cpu").name == "sized-cpu"
    assert experiment.default_root(declared, "gpu").name == "sized"
    with pytest.raises(ValueError, match="device must be one of cpu, gpu, tpu, got 'cuda'"):
        declared.at("cuda")
    for sizes in ({"npu": ()}, {"cpu": ("seed=3",)}, {"cpu": "steps=3"}):
        with pytest.raises(ValueError, match="sizes maps a device"):
            Experiment("sized", runs, sizes=sizes)

    monkeypatch.chdir(tmp_path)  # the command: --device picks the sizes and the default root
    (tmp_path / "sized.py").write_text("from acljax.experiment import Experiment, Run\nEXPERIMENT = Experiment("
                                       f"'sized', {runs!r}, sizes={declared.sizes!r})\n")
    assert main(["experiment", "run", "sized.py", "--dry-run", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "at cpu sizes: steps=3, model.num_heads=4" in out and "in runs/sized-cpu:" in out and "| 3 | missing" in out
    assert main(["experiment", "run", "sized.py", "--dry-run", "--device", "npu"]) == 2
    assert "device must be one of cpu, gpu, tpu, got 'npu'" in capsys.readouterr().err


def test_the_quickstart_experiment_declares_what_acljax_quickstart_runs(experiment_script, tmp_path):
    import dataclasses

    from acljax import configs
    from acljax.acl import quickstart
    from acljax.pretrained import model_dir

    script = experiment_script("acl_quickstart")
    declared, base = script.EXPERIMENT.configs(tmp_path), configs.load(quickstart.CONFIG)
    for label, use_acl in quickstart.VARIANTS.items():
        expected, got = quickstart.variant_config(base, use_acl, 300), declared[script.RUNS[label]]
        assert model_dir(got.init_from) == model_dir(expected.init_from)  # the shipped model, by name or by path
        assert dataclasses.replace(got, init_from=None) == dataclasses.replace(expected, init_from=None)
