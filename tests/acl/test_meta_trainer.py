"""The meta-trainer: one compile, exact resume, best checkpoint, meta-test; config round trip."""

import dataclasses
import json
import logging
import os
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_run
from flax import nnx

from acljax.acl.config import ACLConfig, ModelConfig, PoolConfig, config_from_dict
from acljax.acl.model import image_shape, load_params
from acljax.acl.objective import Term
from acljax.acl.pools import build_pools
from acljax.acl.trainer import MetaTrainer, learning_rate_schedule, meta_train, trainer_for
from acljax.data.episodes import TaskSpec
from acljax.srwm import SRWMOptions


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return tiny_run.write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


_config = tiny_run.config


def test_compiles_once_and_resumes_with_the_same_numbers(npz, tmp_path, caplog, new_meta_trainers):
    config = _config(npz)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        full = meta_train(config, tmp_path / "full", progress=False)
    compiles = [r for r in caplog.records if "train_step" in r.getMessage() and "Finished XLA compilation" in
                r.getMessage()]
    assert len(compiles) == 1, [r.getMessage() for r in compiles]  # both task orders share one program

    meta_train(dataclasses.replace(config, steps=3), tmp_path / "resumed", progress=False)  # "killed" at step 3
    resumed = meta_train(config, tmp_path / "resumed", progress=False)
    assert tiny_run.metric_lines(tmp_path / "full") == tiny_run.metric_lines(tmp_path / "resumed")
    assert resumed == full
    learner = MetaTrainer(config, image_shape(config, build_pools(config, "train")))
    best_full = load_params(tmp_path / "full", learner.params)
    best_resumed = load_params(tmp_path / "resumed", learner.params)
    chex.assert_trees_all_equal(best_full, best_resumed)
    rows = tiny_run.metric_lines(tmp_path / "full")
    assert {"loss", "loss/within_0", "acc/backward_0_after_1", "acc/first_shot_1"} <= set(rows[0])
    valid = [r for r in rows if "valid/loss" in r]
    assert [r["step"] for r in valid] == [3, 6]
    assert full["best_step"] == min(valid, key=lambda r: r["valid/loss"])["step"]
    assert set(full["test"]) == set(full["best_validation"]) - {"step"}
    assert set(full["test_standard_error"]) == set(full["test"])  # more than one test batch
    assert all(0 <= error < 1 for name, error in full["test_standard_error"].items() if name.startswith("acc/"))


def test_standard_errors_of_the_batch_means():
    from acljax.acl.trainer import standard_errors

    errors = standard_errors({"acc": [0.5, 0.7, 0.9], "loss": [2.0, 2.0], "single": [0.3]})
    assert errors["acc"] == pytest.approx(0.2 / 3 ** 0.5)  # sample std 0.2 over three batches
    assert errors["loss"] == 0.0 and "single" not in errors


def test_a_kept_trainer_is_the_one_its_configuration_builds(npz, new_meta_trainers):
    """trainer_for gives a run of the same configuration the trainer it kept, and another configuration its own:
    each as a new MetaTrainer of that configuration would be (same settings, same initial parameters)."""
    config, shape = _config(npz), (8, 8, 1)
    other = dataclasses.replace(config, learning_rate=config.learning_rate / 2, seed=config.seed + 1)
    kept = trainer_for(config, shape)
    assert trainer_for(dataclasses.replace(config), shape) is kept
    for got, wanted in ((kept, config), (trainer_for(other, shape), other)):
        fresh = MetaTrainer(wanted, shape)
        assert got.config == wanted
        chex.assert_trees_all_equal(got.params, fresh.params)


def test_warmup_schedule_peaks_as_in_the_paper():
    schedule = learning_rate_schedule(ACLConfig(model=ModelConfig(num_features=256), warmup_steps=5000))
    assert float(schedule(4999)) == pytest.approx(256 ** -0.5 * 5000 ** -0.5, rel=1e-5)  # about 8.8e-4
    assert float(schedule(4999)) == pytest.approx(8.84e-4, rel=1e-3)
    assert float(schedule(0)) < float(schedule(2000)) < float(schedule(4999)) > float(schedule(20000))


def test_config_round_trips_through_json(npz):
    config = _config(npz)
    assert config_from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config


@pytest.mark.parametrize("overrides, message", [
    (dict(task_scales=(1.0,)), "task_scales must have one entry per task"),
    (dict(schedule="cosine"), "schedule must be one of"),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(tasks=(TaskSpec(pool=1),), task_scales=None), "pool=1 but ACLConfig.pools has 1"),
    (dict(learning_rate=float("nan")), r"ACLConfig.learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate=-1e-3), r"ACLConfig.learning_rate must be a finite number > 0, got -0.001"),
    (dict(adam_b2=1.0), r"ACLConfig.adam_b2 must be in \[0, 1\)"),
    (dict(task_scales=(1.0, float("inf"))), "ACLConfig.task_scales must be a finite number > 0, got inf"),
    (dict(loss_scale=float("nan")), "ACLConfig.loss_scale must be a finite number > 0"),
])
def test_bad_configs(npz, overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(npz, **overrides)


def test_an_unknown_srwm_implementation_is_refused():
    with pytest.raises(ValueError, match=r"SRWMOptions.impl must be 'auto' or one of \['pallas', 'reference'"):
        ModelConfig(srwm=SRWMOptions(impl="cuda"))
    with pytest.raises(ValueError, match=r"ModelConfig.srwm must be a SRWMOptions, got \{'impl': 'scan'\}"):
        ModelConfig(srwm={"impl": "scan"})


def test_quickstart_from_scratch_writes_table_and_plots(npz, tmp_path):
    from acljax.acl import quickstart

    base = _config(npz, tasks=(TaskSpec(3, 2, 2), TaskSpec(3, 2, 2)), task_scales=None, loss_scale=None,
                   cycle_orders=False)
    summary = quickstart.run(base, tmp_path, steps=2, from_scratch=True, progress=False)
    acl, no_acl = summary["test"]["ACL"], summary["test"]["no ACL"]
    lines = summary["table"].splitlines()
    assert lines[2].startswith("| ACL | ") and lines[3].startswith("| no ACL | ")
    forgetting = 100 * (no_acl["acc/within_0"] - no_acl["acc/backward_0_after_1"])
    assert lines[3].endswith(f"| {forgetting:.1f} |")
    assert f"{100 * acl['acc/backward_0_after_1']:.1f}" in lines[2]
    for label in ("ACL", "no ACL"):  # the error bars' standard errors, from each run's results.json
        errors = json.loads((tmp_path / ("acl" if label == "ACL" else "no_acl") / "results.json").read_text())
        assert summary["test_standard_error"][label] == errors["test_standard_error"] != {}
    for name in ("summary.json", "summary.md", "accuracy.png", "meta_training_terms.png", "fast_weights.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "acl" / "config.json").read_text())["use_acl"] is True
    assert json.loads((tmp_path / "no_acl" / "config.json").read_text())["use_acl"] is False
    again = tmp_path / "again"  # the summary from the two workdirs alone, as the acl_quickstart experiment reports
    again.mkdir()
    runs = {"ACL": tmp_path / "acl", "no ACL": tmp_path / "no_acl"}
    assert quickstart.summarize(base, runs, again, steps=2, from_scratch=True)["table"] == summary["table"]


def test_a_run_that_cannot_start_leaves_no_workdir(npz, tmp_path):
    missing = PoolConfig(dataset=str(tmp_path / "missing.npz"), split="train", size=None, channels=None,
                         validation_fraction=0.4, test_split="test")
    with pytest.raises(FileNotFoundError, match="missing.npz: no such file"):
        meta_train(_config(npz, pools=(missing,)), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # no config.json that an eval or a resume would trust


def test_progress_readout_names_terms_as_the_tables_do():
    from acljax.acl.trainer import progress_postfix

    accuracies = {Term("within", 0, 0): 0.5, Term("backward", 0, 1): 0.25}
    assert progress_postfix(1.0, accuracies) == {"loss": "1.000", "A after A": "0.50", "A after A+B": "0.25"}


def test_progress_readout_of_a_long_sequence_shows_means_per_kind():
    from acljax.acl.trainer import progress_postfix

    accuracies = {Term("first_shot", 0, 0): 0.75, Term("first_shot", 1, 1): 0.25}  # 5 tasks: 17 terms
    for i in range(5):
        accuracies[Term("within", i, i)] = 0.5 if i == 4 else 1.0
        accuracies |= {Term("backward", j, i): 0.25 if i == 4 else 0.5 for j in range(i)}
    # within: (4 + 0.5) / 5; backward: (6 x 0.5 + 4 x 0.25) / 10; the last state: (0.5 + 4 x 0.25) / 5
    assert progress_postfix(2.0, accuracies) == {"loss": "2.000", "first shot": "0.50", "within": "0.90",
                                                 "backward": "0.40", "all after A-E": "0.30"}


@pytest.fixture(scope="module")
def uninterrupted(npz, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    return workdir, meta_train(_config(npz), workdir, progress=False)


def _killed_before_checkpoint(step):
    """A Workdir.save that dies (like a kill) before writing checkpoint ``step``; best/ may already hold it."""
    from acljax.workdir import Workdir

    save = Workdir.save

    def dying_save(self, at, tree):
        if at == step:
            raise KeyboardInterrupt
        save(self, at, tree)

    return dying_save


@pytest.mark.parametrize("fault", ["kill after best/3, before checkpoints/3", "torn last metrics line",
                                   "damaged newest checkpoint", "disk full at checkpoints/6"])
def test_a_resume_after_a_fault_ends_as_an_uninterrupted_run(npz, tmp_path, monkeypatch, uninterrupted, fault,
                                                             capsys):
    from acljax.workdir import Workdir

    config, run = _config(npz), tmp_path / "run"
    if fault.startswith("kill"):
        with monkeypatch.context() as patch:
            patch.setattr(Workdir, "save", _killed_before_checkpoint(3))
            with pytest.raises(KeyboardInterrupt):
                meta_train(config, run, progress=False)
        assert (run / "best" / "3").is_dir() and not (run / "checkpoints" / "3").exists()
    elif fault.startswith("disk full"):
        import errno

        import orbax.checkpoint as ocp

        save = ocp.CheckpointManager.save

        def full_disk(self, step, *args, **kwargs):
            if step == 6:
                raise OSError(errno.ENOSPC, "No space left on device")
            return save(self, step, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(ocp.CheckpointManager, "save", full_disk)
            with pytest.raises(ValueError, match=r"cannot write .*checkpoints/6 \(No space left on device\)"):
                meta_train(config, run, progress=False)
    elif fault.startswith("torn"):
        meta_train(dataclasses.replace(config, steps=3), run, progress=False)
        with (run / "metrics.jsonl").open("a") as f:
            f.write('{"step": 4, "loss": 0.')  # a crash in the middle of a write
    else:
        meta_train(dataclasses.replace(config, steps=5), run, progress=False)  # checkpoints 3 and 5
        for file in (run / "checkpoints" / "5").rglob("*"):
            if file.is_file():
                file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])  # half of every file lost
    resumed = meta_train(config, run, progress=False)
    full_dir, full = uninterrupted
    assert tiny_run.metric_lines(run) == tiny_run.metric_lines(full_dir) and resumed == full
    err = capsys.readouterr().err
    if fault.startswith("torn"):
        assert "dropping its last line" in err
    if fault.startswith("damaged"):
        assert "checkpoints/5: " in err and "resuming from the intact checkpoints/3" in err
    learner = MetaTrainer(config, image_shape(config, build_pools(config, "train")))
    chex.assert_trees_all_equal(load_params(run, learner.params), load_params(full_dir, learner.params))


def test_a_damaged_metrics_line_before_the_last_is_an_error_naming_the_file(npz, tmp_path):
    config, run = _config(npz, steps=3), tmp_path / "run"
    meta_train(config, run, progress=False)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{oops", *lines]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 1 is not JSON"):
        meta_train(dataclasses.replace(config, steps=6), run, progress=False)


def test_a_loss_that_overflows_stops_the_run_with_its_step(npz, tmp_path):
    from acljax.checks import NonFiniteLoss

    config = _config(npz, schedule="constant", learning_rate=1e38)  # Adam steps of ~1e38 overflow float32
    with pytest.raises(NonFiniteLoss, match=r"NaN or infinite at meta-training step \d"):
        meta_train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()


def test_one_run_at_a_time_holds_a_workdir(npz, tmp_path):
    from acljax.workdir import Workdir, WorkdirBusy

    holder = Workdir(tmp_path / "run")
    with holder.exclusive():
        with pytest.raises(WorkdirBusy, match=rf"in use by another run \(pid {os.getpid()} on "):
            meta_train(_config(npz, steps=3), tmp_path / "run", progress=False)
    meta_train(_config(npz, steps=3), tmp_path / "run", progress=False)  # free again once the holder is done


def test_a_resume_with_another_configuration_is_refused_unless_allowed(npz, tmp_path):
    run = tmp_path / "run"
    meta_train(_config(npz, steps=3), run, progress=False)
    stored = (run / "config.json").read_text()
    with pytest.raises(ValueError, match=r"another configuration \(model.num_heads: 2 -> 1; batch_size: 2 -> 4\)"):
        meta_train(_config(npz, batch_size=4, model=dataclasses.replace(_config(npz).model, num_heads=1)), run,
                   progress=False)
    with pytest.raises(ValueError, match=r"is at step 3, beyond steps=2"):
        meta_train(_config(npz, steps=2), run, progress=False)
    assert (run / "config.json").read_text() == stored  # nothing rewritten by a refused resume
    old_form = json.loads(stored)  # as written before ModelConfig.srwm: the SRWM options flat in model
    srwm = old_form["model"].pop("srwm")
    old_form["model"].update({key: srwm[key] for key in ("state_gradient", "impl", "precision")})
    (run / "config.json").write_text(json.dumps(old_form))
    another_impl = _config(npz, steps=3, model=dataclasses.replace(_config(npz).model, srwm=SRWMOptions(impl="scan")))
    meta_train(another_impl, run, progress=False)  # model.srwm.impl is free on resume: the same function
    assert json.loads((run / "config.json").read_text())["model"]["srwm"]["impl"] == "scan"
    assert not (run / "config_changes.jsonl").exists()
    meta_train(_config(npz, batch_size=4), run, progress=False, allow_config_change=True)
    change = json.loads((run / "config_changes.jsonl").read_text())
    assert change == {"at_step": 3, "changes": {"batch_size": [2, 4]}}
    assert json.loads((run / "config.json").read_text())["batch_size"] == 4


CHILD = """
from acljax.acl import ACLConfig, ModelConfig, PoolConfig
from acljax.acl.trainer import meta_train
from acljax.data.episodes import TaskSpec
from acljax.srwm import SRWMOptions
meta_train({config}, {workdir!r}, progress=False)
"""


def _first_in(run, sign: str) -> bool:
    if sign == "validation logged":
        path = run / "metrics.jsonl"
        return path.exists() and "valid/loss" in path.read_text()
    return (run / sign).exists()


@pytest.mark.parametrize("sign", ["validation logged", "best", "best/3", "checkpoints"])
def test_kill_9_at_a_save_then_resume_ends_as_an_uninterrupted_run(npz, tmp_path, uninterrupted, sign):
    """A real kill (SIGKILL of a training process) as soon as ``sign`` shows in the workdir: after the first
    validation is logged, while best/ is being written, once best/3 is complete, while checkpoints/ is written."""
    import signal
    import subprocess
    import sys
    import time

    config, run = _config(npz), tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(config=repr(config), workdir=str(run))])
    try:
        while not _first_in(run, sign) and child.poll() is None:
            time.sleep(0.001)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL and not (run / "results.json").exists()  # killed mid-run
    resumed = meta_train(config, run, progress=False)
    full_dir, full = uninterrupted
    assert tiny_run.metric_lines(run) == tiny_run.metric_lines(full_dir) and resumed == full
    learner = MetaTrainer(config, image_shape(config, build_pools(config, "train")))
    chex.assert_trees_all_equal(load_params(run, learner.params), load_params(full_dir, learner.params))


def test_a_workdir_that_cannot_be_created_is_a_one_line_error(npz, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"workdir .*a_file/run: cannot create it \(Not a directory\)"):
        meta_train(_config(npz, steps=3), tmp_path / "a_file" / "run", progress=False)


def _nan_images_at(patch, steps):
    """Training batches of the 0-based ``steps`` get NaN images (so a NaN loss inside the compiled step)."""
    from acljax.acl import trainer

    sample = trainer.sample_sharded

    def poisoned(config, pools, seed, order, mesh):
        batch, scales = sample(config, pools, seed, order, mesh)
        if len(seed) == 2 and seed[1] in steps:  # [seed, step]: a training batch
            batch = (batch[0] * np.nan, *batch[1:])
        return batch, scales

    patch.setattr(trainer, "sample_sharded", poisoned)


def _recording_train_steps(patch, seen):  # the tests using it need the fixture new_meta_trainers
    """Every train step records (a host copy of) the parameters and optimiser state it starts from."""
    from acljax.acl import trainer

    make = trainer.make_train_step

    def recording(*args):
        step = make(*args)

        def train_step(params, opt_state, *rest):
            seen.append(jax.device_get((params, opt_state)))
            return step(params, opt_state, *rest)

        return train_step

    patch.setattr(trainer, "make_train_step", recording)


def test_non_finite_steps_can_be_skipped_up_to_a_limit(npz, tmp_path, monkeypatch, new_meta_trainers):
    """A step whose loss is NaN is discarded inside the compiled step (parameters and optimiser state unchanged)
    while no more than ``skip_nonfinite_steps`` came in a row; the next non-finite one stops the run."""
    seen = []
    _nan_images_at(monkeypatch, {1, 2})  # steps 2 and 3
    _recording_train_steps(monkeypatch, seen)
    meta_train(_config(npz, skip_nonfinite_steps=2), tmp_path / "skips", progress=False)
    chex.assert_trees_all_equal(seen[1], seen[3])  # steps 2 and 3 changed nothing: step 4 began at step 1's result
    assert all(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(seen[0][0]), jax.tree.leaves(seen[1][0]))
               if a.size > 1)  # and step 1 did change every (non-scalar) parameter
    rows = tiny_run.metric_lines(tmp_path / "skips")
    assert [r["step"] for r in rows if r.get("skipped_nonfinite_steps")] == [2, 3]
    assert [r["step"] for r in rows if "loss" in r] == [1, 4, 5, 6]
    from acljax.checks import NonFiniteLoss

    with pytest.raises(NonFiniteLoss, match="meta-training step 3, after 1 skipped in a row"):
        meta_train(_config(npz, skip_nonfinite_steps=1, log_every=3), tmp_path / "stops", progress=False)
    assert not (tmp_path / "stops" / "checkpoints").exists() or not any((tmp_path / "stops" / "checkpoints").iterdir())


def test_each_step_key_draws_its_own_dropout():
    """The train step's key decides the dropout masks: two keys, two outputs; one key, one output."""
    from acljax.acl.step import merged_model
    from acljax.nn import InContextLearner

    model = InContextLearner((8, 8, 1), 2, encoder="mlp", mlp_features=(8,), num_features=8, num_heads=2,
                             hidden_features=8, dropout_rate=0.5, rngs=nnx.Rngs(0))
    parts = nnx.split(model, nnx.Param, ...)
    images, feedback = jnp.ones((1, 3, 8, 8, 1)), jnp.zeros((1, 3), jnp.int32)
    a, b, again = (merged_model(*parts, train=True, key=jax.random.key(k))(images, feedback)[0] for k in (0, 1, 0))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, again)


def test_a_failure_inside_a_log_window_names_its_step_and_changes_nothing_after_it(npz, tmp_path, monkeypatch,
                                                                                   new_meta_trainers):
    """NaN at step 2 only, no skipping, metrics fetched after step 6: the run stops at that fetch naming step 2,
    and neither step 2 nor the finite steps 3-6 after it changed parameters or optimiser state."""
    seen = []
    _nan_images_at(monkeypatch, {1})
    _recording_train_steps(monkeypatch, seen)
    from acljax.checks import NonFiniteLoss

    with pytest.raises(NonFiniteLoss, match=r"meta-training step 2: "):
        meta_train(_config(npz, log_every=6, validate_every=6), tmp_path / "run", progress=False)
    assert len(seen) == 6  # steps 1-6 ran; the error came at step 6's fetch
    for later in seen[2:]:
        chex.assert_trees_all_equal(seen[1], later)


def test_checkpoints_between_validations_resume_as_an_uninterrupted_run(npz, tmp_path):
    """checkpoint_every saves between meta-validations (here only at the end): a run killed late resumes from
    the newest of them and ends as a run that never checkpointed in between and never stopped."""
    from acljax.workdir import Workdir

    config = _config(npz, validate_every=6, checkpoint_every=2)
    plain = meta_train(dataclasses.replace(config, checkpoint_every=None), tmp_path / "plain", progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Workdir, "save", _killed_before_checkpoint(6))
        with pytest.raises(KeyboardInterrupt):
            meta_train(config, tmp_path / "run", progress=False)
    assert sorted(Workdir(tmp_path / "run").checkpoints.all_steps()) == [2, 4]
    assert meta_train(config, tmp_path / "run", progress=False) == plain
    assert tiny_run.metric_lines(tmp_path / "run") == tiny_run.metric_lines(tmp_path / "plain")
    with pytest.raises(ValueError, match="checkpoint_every must be a multiple of log_every=2"):
        _config(npz, log_every=2, checkpoint_every=3)


def test_prefetching_and_skipping_allowed_change_no_number(npz, tmp_path, uninterrupted):
    """Sampled inline (prefetch 0) or ahead, non-finite steps allowed to be skipped or not: the same run (no step
    of it is non-finite)."""
    full_dir, full = uninterrupted  # prefetch 2, no skipping
    inline = meta_train(_config(npz, prefetch=0, skip_nonfinite_steps=1), tmp_path / "inline", progress=False)
    assert inline == full and tiny_run.metric_lines(tmp_path / "inline") == tiny_run.metric_lines(full_dir)


def test_the_train_step_gives_the_parameters_buffers_to_their_updates(npz):
    """The compiled step aliases the donated inputs (parameters, optimiser state, tally) to its outputs."""
    from acljax.acl.step import empty_tally

    config = _config(npz)
    learner = MetaTrainer(config, (8, 8, 1))
    length = sum(task.length for task in config.tasks)
    batch = (jax.ShapeDtypeStruct((2, length, 8, 8, 1), jnp.float32),
             jax.ShapeDtypeStruct((2, length), jnp.int32), jax.ShapeDtypeStruct((2, length), jnp.int32))
    args = (learner.params, learner.tx.init(learner.params), learner.rest,
            empty_tally(len(learner.objectives[0].terms)), batch, jnp.ones(2), jax.random.key(0), jnp.int32(1),
            jnp.int32(0))
    donated = jax.tree.leaves(args[:2]) + jax.tree.leaves(args[3])
    assert learner.train_steps[0].lower(*args).as_text().count("tf.aliasing_output") == len(donated)


def test_a_profile_of_the_steps_after_compilation_is_written_and_closed(npz, tmp_path):
    meta_train(_config(npz, steps=3, validate_every=3), tmp_path / "run", progress=False,
               profile_dir=tmp_path / "profile")
    assert list((tmp_path / "profile").rglob("*.xplane.pb"))
    jax.profiler.start_trace(str(tmp_path / "again"))  # fails if the run left its trace open
    jax.profiler.stop_trace()


def test_asynchronous_checkpoints_give_the_same_run_and_are_sealed(npz, tmp_path, uninterrupted):
    from acljax.workdir import CHECKSUMS, Workdir

    full_dir, full = uninterrupted
    config = _config(npz, async_checkpoints=True)
    meta_train(dataclasses.replace(config, steps=3), tmp_path / "run", progress=False)  # stopped at step 3
    assert meta_train(config, tmp_path / "run", progress=False) == full
    assert tiny_run.metric_lines(tmp_path / "run") == tiny_run.metric_lines(full_dir)
    steps = sorted(Workdir(tmp_path / "run").checkpoints.all_steps())
    assert steps == [3, 6] and all((tmp_path / "run" / "checkpoints" / str(s) / CHECKSUMS).exists() for s in steps)


def _refused_at_start(config, workdir, monkeypatch) -> str:
    """meta_train's error for ``config``, raised before any image is loaded and with no workdir created."""
    import acljax.acl.trainer as trainer

    monkeypatch.setattr(trainer, "build_pools", lambda *args, **kwargs: pytest.fail("images loaded before the check"))
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        meta_train(config, workdir, progress=False)
    assert not os.path.exists(workdir)
    return str(error.value)


def _npz_with(path, classes: int, per_class: int = 6, test_classes: int | None = None) -> str:
    rng = np.random.default_rng(0)
    y, y_test = np.repeat(np.arange(classes), per_class), np.repeat(np.arange(test_classes or classes), per_class)
    np.savez(path, x=rng.integers(0, 256, (len(y), 8, 8, 1), dtype=np.uint8), y=y,
             x_test=rng.integers(0, 256, (len(y_test), 8, 8, 1), dtype=np.uint8), y_test=y_test)
    return str(path)


def test_a_validation_pool_too_small_for_the_tasks_is_refused_before_the_first_step(tmp_path, monkeypatch):
    """12 classes, validation_fraction 0.34 holds out round(4.08) = 4; two 3-way tasks need 6, which both
    phases get from holding out exactly 6 of 12 (fraction 0.5)."""
    data = _npz_with(tmp_path / "twelve.npz", 12)
    config = _config(data, pools=(PoolConfig(dataset=data, split="train", size=None, channels=None,
                                             validation_fraction=0.34, test_split="test"),), validate_every=3)
    message = _refused_at_start(config, tmp_path / "run", monkeypatch)
    assert message == (f"pools.0.validation_fraction=0.34: the validation pool {data}[train] has 4 classes, but tasks "
                       "[0, 1] on pool 0 need 6 distinct classes (n_way summed over them); give validation_fraction "
                       "from 0.5 to 0.5 (holding out 6 to 6 of the 12 classes) or set pools.0.validation_split; or "
                       "fewer or smaller tasks (tasks.N.n_way)")


@pytest.mark.parametrize("case, expected", [
    ("test split of 4 classes", "pools.0.test_split='test': the test pool {data}[test] has 4 classes, but tasks [0, 1] "
                                "on pool 0 need 6 distinct classes"),
    ("7 examples per class", "tasks.0 (n_way=3, k_shot=5, num_queries=2, first_shot) needs 7 examples per class, but "
                             "the smallest class of the train pool {data}[train] has 6; lower tasks.0.k_shot"),
    ("a second pool of 16x16", "pools.1: the train pool {data}[train] has images of shape (16, 16, 1), but the model "
                               "reads (8, 8, 1) (pools.0, train)"),
    ("a meta-batch of 10^11", "batch_size=100000000000: the run needs at least 1536.7 TiB of memory"),
    ("the workdir is a file", "workdir {run}: a file, not a folder"),
])
def test_what_a_run_needs_is_checked_before_its_data_is_loaded(tmp_path, monkeypatch, case, expected):
    data = _npz_with(tmp_path / "data.npz", 16, test_classes=4 if case == "test split of 4 classes" else None)
    config, run = _config(data), tmp_path / "run"
    if case == "7 examples per class":  # 1 first shot + 5 demos + ceil(2 queries / 3 classes); the data has 6
        config = _config(data, tasks=(TaskSpec(3, 5, 2, first_shot=True), TaskSpec(3, 2, 2, first_shot=True)))
    elif case == "a second pool of 16x16":
        config = _config(data, pools=(config.pools[0], dataclasses.replace(config.pools[0], size=16)),
                         tasks=(TaskSpec(3, 2, 2), TaskSpec(3, 2, 2, pool=1)))
    elif case == "a meta-batch of 10^11":  # 3 batches in flight (prefetch 2) x 1e11 sequences x 22 images (two
        config = _config(data, batch_size=10 ** 11)  # tasks of 3 x (1 + 2) + 2) x 64 pixels x 4 B = 1536.7 TiB
    elif case == "the workdir is a file":
        run.write_text("notes")
        config = _config(str(tmp_path / "not_loaded.npz"))  # the workdir is refused before any data is read
    import acljax.acl.trainer as trainer

    monkeypatch.setattr(trainer, "build_pools", lambda *args, **kwargs: pytest.fail("images loaded before the check"))
    with pytest.raises(ValueError) as error:
        meta_train(config, run, progress=False)
    assert str(error.value).startswith(expected.format(data=data, run=run))
    assert run.is_file() if case == "the workdir is a file" else not run.exists()


def test_init_from_is_resolved_before_the_data_is_loaded(npz, tmp_path, monkeypatch):
    nothing = tmp_path / "nothing"
    message = _refused_at_start(_config(npz, init_from=str(nothing)), tmp_path / "run", monkeypatch)
    assert message.startswith(f"init_from='{nothing}': {nothing}: neither a workdir nor a shipped model (")
    assert message.endswith("acljax experiment run NAME), or --set init_from=<a workdir or shipped model>")
    other = tmp_path / "other"  # a workdir of a model 16 wide
    other.mkdir()
    wider = _config(npz, model=dataclasses.replace(_config(npz).model, num_features=16))
    (other / "config.json").write_text(json.dumps(dataclasses.asdict(wider)))
    message = _refused_at_start(_config(npz, init_from=str(other)), tmp_path / "run", monkeypatch)
    assert message.startswith(f"init_from='{other}': {other} has no best/ checkpoint")
    (other / "best" / "4").mkdir(parents=True)
    message = _refused_at_start(_config(npz, init_from=str(other)), tmp_path / "run", monkeypatch)
    assert message.startswith(f"init_from='{other}': its parameters do not fit this model (model.num_features: 16 "
                              "there, 8 here)")
    one_rate = _config(npz, model=dataclasses.replace(_config(npz).model, srwm=SRWMOptions(n_beta=1)))
    (other / "config.json").write_text(json.dumps(dataclasses.asdict(one_rate)))
    message = _refused_at_start(_config(npz, init_from=str(other)), tmp_path / "run", monkeypatch)
    assert message.startswith(f"init_from='{other}': its parameters do not fit this model (model.srwm.n_beta: 1 "
                              "there, 4 here)")
    (other / "config.json").write_text("{not json")
    message = _refused_at_start(_config(npz, init_from=str(other)), tmp_path / "run", monkeypatch)
    assert message.startswith(f"{other / 'config.json'}: not a readable JSON config")


def test_a_profile_dir_that_is_a_file_is_refused_at_start(npz, tmp_path, monkeypatch):
    import acljax.acl.trainer as trainer

    (tmp_path / "trace").write_text("")
    monkeypatch.setattr(trainer, "build_pools", lambda *args, **kwargs: pytest.fail("images loaded before the check"))
    with pytest.raises(ValueError, match=f"^profile_dir {tmp_path / 'trace'}: a file, not a folder; give a new "
                                         "folder$"):
        meta_train(_config(npz), tmp_path / "run", progress=False, profile_dir=tmp_path / "trace")
    assert not (tmp_path / "run").exists()


def test_a_split_the_prepared_data_set_lacks_is_named_by_its_field_before_images_are_read(tmp_path, monkeypatch):
    from acljax.data.registry import prepare

    prepare("toy_two_splits", _npz_with(tmp_path / "toy.npz", 16), progress=False)  # splits: train, test
    pool = PoolConfig(dataset="toy_two_splits", split="train", size=None, channels=None, validation_split="valid")
    message = _refused_at_start(_config(str(tmp_path / "toy.npz"), pools=(pool,)), tmp_path / "run", monkeypatch)
    assert message == "PoolConfig.validation_split='valid': toy_two_splits has no such split; its splits: ['test', " \
                      "'train']"


def test_meta_training_lowers_the_loss_on_a_learnable_problem(tmp_path):
    """16 classes, each a fixed random 8x8 pattern under noise: a query's class shows in the demos of its task, so
    an in-context learner can answer it. 80 steps of the tiny run (batch 8) lower the objective (mean of the last 20
    logged losses against the first 20) by more than three standard errors of their difference."""
    rng = np.random.default_rng(0)
    patterns = rng.random((16, 8, 8)) < 0.3

    def split(n):
        y = np.repeat(np.arange(16), n).astype(np.int32)
        return (rng.integers(0, 60, (len(y), 8, 8)) + 190 * patterns[y])[..., None].astype(np.uint8), y

    (x, y), (x_test, y_test) = split(6), split(6)
    np.savez(tmp_path / "patterns.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    config = _config(str(tmp_path / "patterns.npz"), steps=80, batch_size=8, schedule="constant", learning_rate=3e-3,
                     validate_every=80, checkpoint_every=80)
    meta_train(config, tmp_path / "run", progress=False)
    losses = np.array([row["loss"] for row in tiny_run.metric_lines(tmp_path / "run") if "loss" in row])
    first, last = losses[:20], losses[-20:]
    assert first.mean() - last.mean() > 3 * np.sqrt(first.var(ddof=1) / 20 + last.var(ddof=1) / 20)




@pytest.mark.parametrize("steps, log_every, checkpoint_every, expected", [
    (300, 50, None, 10), (5000, 50, None, 50), (2, 50, None, 1), (300, 50, 15, 5), (300, 4, None, 4)])
def test_the_quickstart_logs_about_thirty_points_of_each_curve(steps, log_every, checkpoint_every, expected):
    from acljax.acl.quickstart import curve_interval

    base = types.SimpleNamespace(log_every=log_every, checkpoint_every=checkpoint_every)
    assert curve_interval(base, steps) == expected
