"""A meta-trained in-context learner as a learner of the shared evaluation protocol (``acljax.eval``).

``learn`` reads ``shots`` demos per class of the task's training images in context (labels as the
stream maps them); ``accuracy`` reads the task's test images as queries against the current state.
Every evaluation run ("seed") draws its own demos; all runs go through the model as one batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from acljax.data.preprocess import normalize
from acljax.data.streams import Task


def check_demos(tasks, shots: int, stream: str) -> None:
    """Every label of every task has ``shots`` training images to draw its demos from: one line naming the
    stream, the task and the label, before any work."""
    for i, task in enumerate(tasks):
        labels, counts = np.unique(task.train.y, return_counts=True)
        where = f"stream {stream}: task {i} ({task.name})"
        if not labels.size:
            raise ValueError(f"{where} has no training images to draw demos from")
        if counts.min() < shots:
            raise ValueError(f"shots={shots} demos per class: {where} has only {counts.min()} training images of "
                             f"label {labels[counts.argmin()]}; give shots <= {counts.min()}")


class InContextEvaluator:
    """Learner protocol adapter. ``learner``: an :class:`acljax.acl.trainer.MetaLearner`; ``params`` its
    meta-trained parameters; ``statistics``: per task, the (mean, std) its images are normalised with
    (their data set's channel statistics). Images must already have the model's shape (load them with
    the model's ``Preprocessing``)."""

    runs_all_seeds = True

    def __init__(self, learner, params, *, shots: int, statistics, query_chunk: int = 512):
        if not isinstance(shots, int) or shots < 1:
            raise ValueError(f"shots must be a positive int (demos per class), got {shots!r}")
        self.learner, self.params, self.shots = learner, params, shots
        self.statistics, self.query_chunk = list(statistics), query_chunk
        model = learner.model(params, learner.rest, train=False)
        self.num_outputs = model.num_classes
        self.image_shape = model.image_shape

        def read_demos(params, rest, images, labels, states):
            model = learner.model(params, rest, train=False)
            return model(images, labels, states)[1]

        def read_queries(params, rest, images, states):
            model = learner.model(params, rest, train=False)
            feedback = jnp.full(images.shape[:2], model.num_classes, jnp.int32)
            return model(images, feedback, states, update=False)[0]

        self._read_demos = jax.jit(read_demos)
        self._read_queries = jax.jit(read_queries)

    def reset(self, seed) -> None:
        self.seeds = list(np.atleast_1d(seed))
        self.states = None

    def _check(self, task: Task) -> None:
        if task.train.x.shape[1:] != self.image_shape:
            raise ValueError(f"task images have shape {task.train.x.shape[1:]}, the model reads {self.image_shape}; "
                             "load the data with the model's Preprocessing(size=..., channels=...)")
        if len(task.output_mask) > self.num_outputs:
            raise ValueError(f"the stream has {len(task.output_mask)} outputs, the model only {self.num_outputs}")

    def learn(self, index: int, task: Task) -> None:
        self._check(task)
        demos_x, demos_y = [], []
        for seed in self.seeds:
            rng = np.random.default_rng([seed, index])
            picks = np.concatenate([rng.choice(np.flatnonzero(task.train.y == c), self.shots, replace=False)
                                    for c in np.unique(task.train.y)])
            picks = rng.permutation(picks)  # classes interleaved
            demos_x.append(normalize(task.train.x[picks], *self.statistics[index]))
            demos_y.append(task.train.y[picks])
        self.states = self._read_demos(self.params, self.learner.rest, np.stack(demos_x), np.stack(demos_y),
                                       self.states)

    def accuracy(self, index: int, task: Task) -> np.ndarray:
        self._check(task)
        mask = np.zeros(self.num_outputs, bool)
        mask[:len(task.output_mask)] = task.output_mask
        correct = np.zeros(len(self.seeds))
        for start in range(0, len(task.test.y), self.query_chunk):
            x = normalize(task.test.x[start:start + self.query_chunk], *self.statistics[index])
            images = np.broadcast_to(x, (len(self.seeds), *x.shape))
            logits = self._read_queries(self.params, self.learner.rest, images, self.states)  # None: W_0
            predicted = np.argmax(np.where(mask, np.asarray(logits), -np.inf), -1)
            correct += (predicted == task.test.y[start:start + self.query_chunk]).sum(1)
        return correct / len(task.test.y)
