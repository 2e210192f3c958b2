"""Metrics on hand-computed matrices; the protocol on a toy learner whose accuracy matrix is known."""

import json
import math

import numpy as np
import pytest

from acljax.eval import accuracy_matrix, evaluate, summarize
from acljax.eval.report import claim, markdown, save

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



class AllSeedsLearner(ForgetfulLearner):
    """The forgetful learner, every seed at once (one accuracy per seed), as the in-context evaluator runs."""

    runs_all_seeds = True

    def reset(self, seed):
        self.learned, self.offset = [], 0.01 * np.asarray(seed)

    def accuracy(self, index, task):
        return np.where(index in self.learned[-self.memory:], 1.0, self.chance + self.offset)


def test_a_learner_of_all_seeds_at_once_shows_its_progress(capsys):
    report = evaluate(AllSeedsLearner(memory=1), ["a", "b", "c"], seeds=[0, 1])
    np.testing.assert_allclose(report.matrices[1], [[1, .51, .51], [.51, 1, .51], [.51, .51, 1]])
    err = capsys.readouterr().err
    assert "accuracy matrix: 100%" in err and "12/12" in err  # 3 tasks: the untrained row, then 3 rows of 3
    evaluate(AllSeedsLearner(memory=1), ["a", "b", "c"], seeds=[0, 1], progress=False)
    assert capsys.readouterr().err == ""


class BlindLearner(ForgetfulLearner):
    """Accuracy NaN on task "b", as a learner that averages over no test examples gets (0 / 0)."""

    def accuracy(self, index, task):
        return float("nan") if task == "b" else super().accuracy(index, task)


def test_the_protocol_never_reports_nan():
    with pytest.raises(ValueError, match=r"^task 1 \(b\): the accuracy is nan, not a number; does the task have test "):
        evaluate(BlindLearner(memory=1), ["a", "b", "c"], seeds=[0], progress=False)


def test_a_task_without_test_examples_of_a_class_is_refused_naming_stream_task_and_label():
    from acljax.data.store import ImageSet
    from acljax.data.streams import Task
    from acljax.eval.protocol import check_test_sets

    def task(name, train_labels, test_labels):
        return Task(ImageSet(np.zeros((len(train_labels), 4, 4, 1), np.uint8), np.array(train_labels, np.int32)),
                    ImageSet(np.zeros((len(test_labels), 4, 4, 1), np.uint8), np.array(test_labels, np.int32)),
                    np.ones(2, bool), name)

    tasks = [task("classes [0, 1]", [0, 0, 1, 1], [1, 0]), task("classes [2, 3]", [0, 0, 1, 1], [0, 0])]
    check_test_sets(tasks[:1], "mine.npz")  # task 0 has test images of both its labels
    with pytest.raises(ValueError, match=r"^stream mine.npz: task 1 \(classes \[2, 3\]\) has no test examples of "
                                         r"label 1 \(test labels: \[0\]\); its accuracy would be NaN"):
        check_test_sets(tasks, "mine.npz")
    with pytest.raises(ValueError, match=r"task 0 \(classes \[0, 1\]\) has no test examples of label 0 "
                                         r"\(test labels: \[\]\)"):  # an empty test set
        check_test_sets([task("classes [0, 1]", [0, 1], [])], "mine.npz")


def test_the_report_counts_what_its_spread_is_over(tmp_path):
    report = evaluate(ForgetfulLearner(memory=1), ["a", "b"], seeds=[0, 1, 2], progress=False)
    assert "| forgetting | runs |" in markdown(report, over="runs") and "| forgetting | seeds |" in markdown(report)
    paths = save(report, tmp_path, "toy", over="runs")
    assert "| forgetting | runs |\n|---|---|---|---|---|\n" in paths["markdown"].read_text()


def test_a_result_file_is_never_replaced_by_another_evaluation(tmp_path):
    report = evaluate(ForgetfulLearner(memory=1), ["a", "b"], seeds=[0], progress=False)
    mine = {"model": "/runs/a/model", "stream": "s", "shots": 5, "runs": 1}
    claim(tmp_path, "toy", mine)  # nothing there yet
    save(report, tmp_path, "toy", settings=mine)
    assert json.loads((tmp_path / "toy.json").read_text())["settings"] == mine
    claim(tmp_path, "toy", dict(mine))  # the same evaluation may replace its own results
    other = mine | {"model": "/runs/b/model"}  # another model of the same folder name
    with pytest.raises(ValueError, match=r"toy.json holds the results of another evaluation \(model '/runs/a/model' "
                                         r"there, '/runs/b/model' here\); give another --out or move that file$"):
        claim(tmp_path, "toy", other)
    save(report, tmp_path, "unrecorded")  # no settings: written by something else
    with pytest.raises(ValueError, match=r"\(it records no settings\)"):
        claim(tmp_path, "unrecorded", mine)
