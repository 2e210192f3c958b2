"""Faults of a workdir recovered: damaged checkpoints (newest, best, sums file lost), a full disk, parameters
of another shape. Each damage is done to the files of a real run, as a disk or a careless copy would."""

import contextlib
import dataclasses
import itertools
import json
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tiny_run

from acljax.acl.model import load_config, load_params
from acljax.acl.trainer import MetaTrainer, meta_train
from acljax.pretrained import PRETRAINED_DIR
from acljax.workdir import CHECKSUMS, Workdir


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return tiny_run.write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def _config(npz, **overrides):
    """The tiny run, to 9 steps: checkpoints and validations every 3."""
    return tiny_run.config(npz, **{"steps": 9, **overrides})


@pytest.fixture(scope="module")
def uninterrupted(npz, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    return workdir, meta_train(_config(npz), workdir, progress=False)


def _data_files(step_dir):
    return sorted((p for p in (step_dir / "default").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _flip_a_bit(step_dir):
    largest = _data_files(step_dir)[-1]
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 1
    largest.write_bytes(bytes(data))


def _truncate(step_dir):
    largest = _data_files(step_dir)[-1]
    largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])


DAMAGE = {"a flipped bit": _flip_a_bit, "a truncated file": _truncate,
          "a deleted file": lambda step_dir: _data_files(step_dir)[-1].unlink(),
          "a deleted default/": lambda step_dir: shutil.rmtree(step_dir / "default")}


def _assert_same_run(run, uninterrupted, resumed, config):
    full_dir, full = uninterrupted
    assert tiny_run.metric_lines(run) == tiny_run.metric_lines(full_dir) and resumed == full
    learner = MetaTrainer(config, (8, 8, 1))
    chex.assert_trees_all_equal(load_params(run, learner.params), load_params(full_dir, learner.params))


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_newest_checkpoint_falls_back_and_the_run_ends_as_an_uninterrupted_one(
        npz, tmp_path, uninterrupted, damage, capsys):
    """Stopped at step 6 (checkpoints 3 and 6), checkpoints/6 damaged, resumed to step 9: steps 4-6 run again,
    checkpoints/6 is written anew, and every number is the uninterrupted run's."""
    config, run = _config(npz), tmp_path / "run"
    meta_train(dataclasses.replace(config, steps=6), run, progress=False)
    DAMAGE[damage](run / "checkpoints" / "6")
    resumed = meta_train(config, run, progress=False)
    _assert_same_run(run, uninterrupted, resumed, config)
    err = capsys.readouterr().err
    assert "checkpoints/6: " in err and "resuming from the intact checkpoints/3" in err
    assert sorted(Workdir(run).checkpoints.all_steps()) == [6, 9]
    assert meta_train(config, run, progress=False) == resumed  # and it resumes cleanly once more


def _flip(file, at):
    data = bytearray(file.read_bytes())
    data[int(len(data) * at)] ^= 1
    file.write_bytes(bytes(data))


def _flip_a_bit_orbax_cannot_see(step_dir, scratch):
    """Flip a bit of a data file where orbax then restores other values without an error, as bit rot would (a
    flip elsewhere is found by orbax, or lands in bytes it does not read). Tried on copies in new folders:
    tensorstore caches what it read by path."""
    def read(folder):
        return jax.tree.leaves(ocp.StandardCheckpointer().restore((folder / "default").absolute()))

    before = read(step_dir)
    for tried, (file, at) in enumerate(itertools.product(reversed(_data_files(step_dir)), (0.5, 0.25, 0.75))):
        copy = shutil.copytree(step_dir, scratch / f"try_{tried}")
        _flip(copy / file.relative_to(step_dir), at)
        with contextlib.suppress(Exception):
            if not all(np.array_equal(a, b) for a, b in zip(before, read(copy), strict=True)):
                return _flip(file, at)
    pytest.fail(f"no bit of {step_dir} that orbax restores altered without an error")


def test_a_checkpoint_that_lost_its_sums_file_is_not_trusted(npz, tmp_path, uninterrupted, capsys):
    """checkpoints/6 lost its sha256sums.json, then a bit of its data: it is not restored (the checkpoints here
    are sealed since step 3), the run goes on from checkpoints/3 and ends as the uninterrupted one. The workdir
    is moved before the resume, which reads it as a new process would (nothing of it in tensorstore's cache)."""
    config, run = _config(npz), tmp_path / "run"
    meta_train(dataclasses.replace(config, steps=6), run, progress=False)
    (run / "checkpoints" / "6" / CHECKSUMS).unlink()
    _flip_a_bit_orbax_cannot_see(run / "checkpoints" / "6", tmp_path)
    run = run.rename(tmp_path / "moved")
    resumed = meta_train(config, run, progress=False)
    _assert_same_run(run, uninterrupted, resumed, config)
    err = capsys.readouterr().err
    assert f"checkpoints/6/{CHECKSUMS}: missing, while the checkpoints here are sealed from step 3 on" in err
    assert "resuming from the intact checkpoints/3" in err


def test_the_only_checkpoint_without_its_sums_file_is_not_restored(tmp_path):
    """Kept alone (max_to_keep=1), checkpoints/2 lost its sha256sums.json: the workdir's record that its checkpoints
    are sealed since step 1 makes it damaged, not a checkpoint of an acljax before checksums."""
    workdir = Workdir(tmp_path, max_to_keep=1)
    workdir.save(1, {"w": jnp.ones(4)})
    workdir.save(2, {"w": jnp.ones(4)})
    (tmp_path / "checkpoints" / "2" / CHECKSUMS).unlink()
    assert sorted(workdir.checkpoints.all_steps()) == [2]
    with pytest.raises(ValueError, match=rf"no checkpoint could be restored \(checkpoints/2: ValueError: .*"
                                         rf"checkpoints/2/{CHECKSUMS}: missing, while the checkpoints here are sealed "
                                         "from step 1 on"):
        Workdir(tmp_path).restore_latest({"w": jnp.ones(4)})


def test_checkpoints_from_before_checksums_still_restore(npz, tmp_path, uninterrupted, capsys):
    """A workdir of an acljax that wrote no sums files: its checkpoints restore unchecked, the newest one too."""
    config, run = _config(npz), tmp_path / "run"
    meta_train(dataclasses.replace(config, steps=6), run, progress=False)
    for sums in [*run.glob(f"*/*/{CHECKSUMS}"), *run.glob("*/sealed_since.json")]:
        sums.unlink()
    resumed = meta_train(config, run, progress=False)
    _assert_same_run(run, uninterrupted, resumed, config)
    assert "resuming from" not in capsys.readouterr().err


def _every_validation_a_new_best(patch):
    """Every meta-validation reports the same loss (its other metrics as computed), so each saves a new best."""
    from acljax.acl import trainer

    evaluate = trainer.evaluate_terms

    def same_validation_loss(learner, params, pools, stream, *args):
        metrics = evaluate(learner, params, pools, stream, *args)
        return {**metrics, "loss": 1.0} if stream == trainer.VALIDATION_STREAM else metrics

    patch.setattr(trainer, "evaluate_terms", same_validation_loss)


def test_a_damaged_best_falls_back_to_the_previous_best_and_results_are_written(npz, tmp_path, monkeypatch,
                                                                                capsys):
    """best/3 and best/6 kept, best/6 damaged after the run, the run's command given again: it ends with
    best/3, so its results (meta-test of the best parameters included) are those of a run of 3 steps."""
    _every_validation_a_new_best(monkeypatch)
    config, run = _config(npz, steps=6), tmp_path / "run"
    three_steps = meta_train(dataclasses.replace(config, steps=3), tmp_path / "three", progress=False)
    meta_train(config, run, progress=False)
    assert sorted(Workdir(run).best.all_steps()) == [3, 6]
    _flip_a_bit(run / "best" / "6")
    (run / "results.json").unlink()
    assert meta_train(config, run, progress=False) == {**three_steps, "steps": 6}
    assert json.loads((run / "results.json").read_text()) == {**three_steps, "steps": 6}
    assert "best/6: ValueError: " in capsys.readouterr().err
    assert sorted(Workdir(run).best.all_steps()) == [3]
    assert json.loads((run / "best.json").read_text()) == three_steps["best_validation"]


def test_an_altered_best_is_passed_over_in_a_read_only_workdir(tmp_path, capsys):
    tree = {"w": jnp.arange(1000.0)}
    workdir = Workdir(tmp_path)
    workdir.save_best(3, tree, {"loss": 2.0})
    workdir.save_best(5, {"w": tree["w"] + 1}, {"loss": 1.0})
    _flip_a_bit(tmp_path / "best" / "5")
    step, restored = Workdir(tmp_path, create=False).restore_best(tree)
    assert step == 3
    chex.assert_trees_all_equal(restored, tree)
    assert "best/5: ValueError: " in capsys.readouterr().err
    assert sorted(Workdir(tmp_path).best.all_steps()) == [3, 5]  # nothing deleted
    assert json.loads((tmp_path / "best.json").read_text())["step"] == 5


def test_parameters_of_another_shape_are_one_line_naming_the_workdir_and_shapes(tmp_path, monkeypatch):
    """A shipped model whose config.json was changed to twice its width (as acljax eval --model reads it): one
    line, and no read of the arrays is started (one that fails part-way leaves others running, whose ends print
    "Event loop is closed" tracebacks)."""
    model = tmp_path / "model"
    shutil.copytree(PRETRAINED_DIR / "split_mnist_domain_acl", model)
    saved = json.loads((model / "config.json").read_text())
    saved["model"]["num_features"] *= 2
    (model / "config.json").write_text(json.dumps(saved))
    learner = MetaTrainer(load_config(model), (28, 28, 1))
    monkeypatch.setattr(ocp.CheckpointManager, "restore", lambda *args, **kwargs: pytest.fail("a read started"))
    with pytest.raises(ValueError) as error:
        load_params(model, learner.params)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{model}/best/500 holds arrays of other shapes")
    assert "net.blocks.0.feed_forward.linear1.kernel.value: (128, 256) there, (256, 256) here" in message


def test_a_resume_with_parameters_of_another_shape_is_refused_and_deletes_nothing(tmp_path):
    workdir = Workdir(tmp_path)
    workdir.save(1, {"w": jnp.ones(4)})
    workdir.save(2, {"w": jnp.ones(4)})
    with pytest.raises(ValueError, match=r"checkpoints/2 holds arrays of other shapes than this model's \(w: \(4,\) "
                                         r"there, \(5,\) here\)"):
        Workdir(tmp_path).restore_latest({"w": jnp.ones(5)})
    assert sorted(Workdir(tmp_path).checkpoints.all_steps()) == [1, 2]


FILL = """
import sys
import numpy as np
from acljax.workdir import Workdir
rng = np.random.default_rng(0)
tree = {"w": rng.random(int(sys.argv[2]), np.float32), **{f"b{i}": rng.random(500, np.float32) for i in range(60)}}
try:
    for step in range(1, 10):
        Workdir(sys.argv[1]).save(step, {k: v + step for k, v in tree.items()})
except ValueError as e:
    print(f"acljax: error: {e}", file=sys.stderr)
step, restored = Workdir(sys.argv[1]).restore_latest(tree)
print(step, all(np.array_equal(restored[k], v + step) for k, v in tree.items()))
"""


@pytest.mark.parametrize("floats", [150_000, 92_200])  # the disk fills up at different files of a checkpoint
def test_a_full_disk_is_one_line_and_the_checkpoints_before_it_restore(tmp_path, floats):
    """A real full disk: a 1 MiB tmpfs mounted in a private mount namespace (unshare; skipped where the system
    does not allow one), filled by checkpoints of ``floats`` random float32 numbers and 60 small arrays (as a
    model has many). The save that finds it full says so in one line: no tracebacks (orbax's logged ones, nor
    tensorstore's "Event loop is closed" for the arrays still written), and the checkpoint before it restores."""
    (tmp_path / "fill.py").write_text(FILL)
    folder = tmp_path / "small_disk"
    folder.mkdir()
    mount = ["unshare", "--map-root-user", "--mount", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {folder} && "]
    probe = subprocess.run([*mount[:-1], mount[-1] + "true"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no tmpfs in a private mount namespace here: {probe.stderr.strip()}")
    done = subprocess.run([*mount[:-1], mount[-1] + f"exec {sys.executable} {tmp_path}/fill.py {folder}/run {floats}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    error, *notes = done.stderr.splitlines()
    full_at = int(error.split("/checkpoints/")[1].split(" ")[0])
    assert error == (f"acljax: error: cannot write {folder}/run/checkpoints/{full_at} (No space left on device); the "
                     "run stops here and resumes from its last checkpoint once there is room or permission")
    assert all(f"resuming from the intact checkpoints/{full_at - 1}" in note for note in notes), notes
    assert full_at > 1 and done.stdout.split() == [str(full_at - 1), "True"]
