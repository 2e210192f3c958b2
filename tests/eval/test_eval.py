"""Metrics on hand-computed matrices; the protocol on a toy learner whose accuracy matrix is known."""

import json
import math

import numpy as np
import pytest

from acljax.eval import accuracy_matrix, evaluate, summarize
from acljax.eval.report import save

# After task 1: 0.9 on task 1; after task 2: task 1 drops to 0.5, task 2 at 0.8; after task 3: ...
R = np.array([[0.9, 0.3, 0.1],
              [0.5, 0.8, 0.2],
              [0.6, 0.7, 0.95]])
B = np.array([0.1, 0.2, 0.15])


def test_metrics_by_hand():
    m = summarize(R, B)
    assert m["ACC"] == pytest.approx((0.6 + 0.7 + 0.95) / 3)
    assert m["BWT"] == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)  # -0.2
    assert m["FWT"] == pytest.approx(((0.3 - 0.2) + (0.2 - 0.15)) / 2)  # 0.075
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.7)) / 2)  # max over rows 1..T-1
    one = summarize(np.array([[0.7]]), np.array([0.5]))
    assert one["ACC"] == 0.7 and math.isnan(one["BWT"]) and math.isnan(one["FWT"])


def test_metric_input_errors():
    with pytest.raises(ValueError, match=r"square T x T .* got shape \(2, 3\)"):
        summarize(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        summarize(R, np.zeros(2))


class ForgetfulLearner:
    """Remembers only the last `memory` tasks learned; accuracy 1 on a remembered task, else chance;
    the seed adds a known offset to chance so the spread over seeds is known too."""

    def __init__(self, memory, chance=0.5):
        self.memory, self.chance = memory, chance

    def reset(self, seed):
        self.learned, self.offset = [], 0.01 * seed

    def learn(self, index, task):
        self.learned.append(index)

    def accuracy(self, index, task):
        return 1.0 if index in self.learned[-self.memory:] else self.chance + self.offset


def test_protocol_builds_the_expected_matrix():
    R, b = accuracy_matrix(ForgetfulLearner(memory=1), ["a", "b", "c"], seed=0)
    np.testing.assert_array_equal(R, [[1, .5, .5], [.5, 1, .5], [.5, .5, 1]])
    np.testing.assert_array_equal(b, [.5, .5, .5])
    report = evaluate(ForgetfulLearner(memory=2), ["a", "b", "c"], seeds=[0, 2], progress=False)
    s = report.summary
    # seed 0: ACC = (0.5 + 1 + 1) / 3; seed 2: (0.52 + 1 + 1) / 3
    assert s["ACC"]["mean"] == pytest.approx((2.5 / 3 + 2.52 / 3) / 2)
    assert s["ACC"]["std"] == pytest.approx(0.01 / 3)
    assert s["BWT"]["mean"] == pytest.approx(((-0.5 + 0) / 2 + (-0.48 + 0) / 2) / 2)


def test_report_files(tmp_path):
    report = evaluate(ForgetfulLearner(memory=1), ["a", "b"], seeds=[0, 1], task_names=["t1", "t2"], progress=False)
    paths = save(report, tmp_path, "toy", "toy learner")
    data = json.loads(paths["json"].read_text())
    assert np.array(data["matrices"]).shape == (2, 2, 2) and data["summary"]["ACC"]["mean"] > 0.7
    text = paths["markdown"].read_text()
    assert "| t1 | 100.0 | 50.5 |" in text and "| 75.25 ± 0.25 |" in text  # chance 0.50 and 0.51 averaged
    assert paths["heatmap"].stat().st_size > 1000
