"""A sequential run interrupted between tasks resumes from its checkpoint and ends exactly as an uninterrupted
run: same accuracy matrices, same generator samples, and only the remaining tasks learned again."""

import numpy as np
import pytest
from cl_streams import stream

from acljax.cl.methods import DGR, EWC, GEM, SI
from acljax.cl.trainer import SequentialConfig, SequentialLearner
from acljax.eval import evaluate
from acljax.workdir import Workdir


class Interrupted(Exception):
    pass


class CountingLearner(SequentialLearner):
    """Records the tasks it learns; raises before learning task ``stop_at`` (a kill between two tasks)."""

    def __init__(self, *args, stop_at=None, **kw):
        super().__init__(*args, **kw)
        self.stop_at, self.learned = stop_at, []

    def learn(self, index, task):
        if index == self.stop_at:
            raise Interrupted
        self.learned.append(index)
        super().learn(index, task)


@pytest.mark.parametrize("method", [SI(), GEM(memory_size=30, max_tasks=3), EWC(strength=1.0, importance_samples=30),
                                    DGR(latent=4, vae_hidden=(16,))])
def test_a_run_killed_between_tasks_resumes_and_ends_as_an_uninterrupted_one(tmp_path, method):
    s = stream("class")
    config = SequentialConfig(method=method, hidden=(16,), epochs=2, batch_size=16, learning_rate=1e-2)

    def learner(stop_at=None):
        return CountingLearner(config, s.num_outputs, (6, 6, 1), 0.3, 0.3, progress=False, stop_at=stop_at)

    whole = learner()
    expected = evaluate(whole, s.tasks, [0, 1], progress=False)
    with pytest.raises(Interrupted):
        evaluate(learner(stop_at=2), s.tasks, [0, 1], progress=False, workdir=Workdir(tmp_path))
    resumed = learner()
    report = evaluate(resumed, s.tasks, [0, 1], progress=False, workdir=Workdir(tmp_path))
    assert resumed.learned == [2]  # tasks 0 and 1 came from the checkpoint
    np.testing.assert_array_equal(report.matrices, expected.matrices)
    np.testing.assert_array_equal(report.baselines, expected.baselines)
    assert len(resumed.samples) == len(whole.samples)
    for got, want in zip(resumed.samples, whole.samples, strict=True):
        np.testing.assert_array_equal(got, want)


def test_checkpoints_need_a_learner_that_saves_its_state(tmp_path):
    class PerSeed:
        def reset(self, seed):
            pass

        def learn(self, index, task):
            pass

        def accuracy(self, index, task):
            return 0.5

    with pytest.raises(ValueError, match="workdir: checkpoints need a learner"):
        evaluate(PerSeed(), stream("class").tasks, [0], progress=False, workdir=Workdir(tmp_path))
