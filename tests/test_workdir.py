"""Checkpoint checksums: a file altered after its checkpoint was written is found, not loaded."""

import chex
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from acljax.workdir import Workdir


def _flip_one_bit_of_the_largest_array_file(step_dir):
    files = [p for p in (step_dir / "default").rglob("*") if p.is_file()]
    largest = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 1
    largest.write_bytes(bytes(data))


def test_a_silently_altered_checkpoint_is_caught_and_the_previous_one_used(tmp_path, capsys):
    tree = {"w": jnp.arange(1000.0), "b": jnp.ones((50, 50))}
    workdir = Workdir(tmp_path)
    workdir.save(1, tree)
    newer = {k: v + 1 for k, v in tree.items()}
    workdir.save(2, newer)
    _flip_one_bit_of_the_largest_array_file(tmp_path / "checkpoints" / "2")
    # what makes the checksums necessary: orbax alone restores the altered values without a word
    altered = workdir.checkpoints.restore(2, args=ocp.args.StandardRestore(tree))
    assert not all(np.array_equal(altered[k], newer[k]) for k in tree)

    step, restored = Workdir(tmp_path).restore_latest(tree)
    assert step == 1
    chex.assert_trees_all_equal(restored, tree)
    err = capsys.readouterr().err
    assert "checkpoints/2/default/" in err and "sha256 mismatch" in err
    assert "resuming from the intact checkpoints/1" in err


def test_an_altered_best_checkpoint_is_an_error_naming_the_file(tmp_path):
    tree = {"w": jnp.arange(1000.0)}
    workdir = Workdir(tmp_path)
    workdir.save_best(3, tree, {"loss": 1.0})
    _flip_one_bit_of_the_largest_array_file(tmp_path / "best" / "3")
    with pytest.raises(ValueError, match=r"best/3/default/.*: sha256 mismatch"):
        Workdir(tmp_path).restore_best(tree)


def _tensorboard_scalars(folder):
    """(step, tag, value) of every scalar in the event files, read as TFRecords by hand."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            scalars += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
            offset += 12 + length + 4
    return scalars


def test_metrics_are_mirrored_to_tensorboard(tmp_path):
    workdir = Workdir(tmp_path)
    with workdir.exclusive():  # as meta_train runs: the events are all written when it ends
        workdir.mirror_to_tensorboard()
        workdir.log(1, loss=0.5, **{"acc/within_0": 0.25}, skipped_nonfinite_steps=1)
        workdir.log(2, loss=0.125)
    assert _tensorboard_scalars(tmp_path / "tensorboard") == [(1, "loss", 0.5), (1, "acc/within_0", 0.25),
                                                              (1, "skipped_nonfinite_steps", 1.0), (2, "loss", 0.125)]
    assert len(workdir.read_metrics()) == 2  # the JSON lines are written as before


def test_an_unreadable_sealed_since_record_falls_back_to_the_sums_files(tmp_path):
    from acljax.workdir import CHECKSUMS, SEALED_SINCE, sealed_since

    for step in (20, 40):
        (tmp_path / str(step)).mkdir()
    (tmp_path / "40" / CHECKSUMS).write_text("{}\n")  # step 20 lost its sums file, or predates them
    for damaged in ("{not json", '{"stop": 3}', '["step"]', ""):
        (tmp_path / SEALED_SINCE).write_text(damaged)
        assert sealed_since(tmp_path) == 40
    (tmp_path / SEALED_SINCE).write_text('{"step": 20}\n')
    assert sealed_since(tmp_path) == 20
