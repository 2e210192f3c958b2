"""The shipped ACL models read continual-learning streams in context: accuracy matrices, ACC, BWT, FWT and
forgetting over 10 evaluation runs (each draws its own 5 demos per class), as ``acljax eval`` writes them.
Split-MNIST (domain-IL, class-IL over 5 and over 2 tasks) for the MLP and Conv-4 models meta-finetuned on it,
the 20-task glyph stream for the end of the length curriculum, and MNIST then Fashion-MNIST (two 10-way tasks).

    acljax experiment run acl_in_context       # a job: every evaluation not in its folder yet
    acljax experiment report acl_in_context    # -> runs/acl_in_context/report/MODEL__STREAM__*.{json,md,png}
"""

import shutil
from pathlib import Path

from acljax.acl.in_context import evaluate_into
from acljax.experiment import Experiment, Job

EVALUATIONS = (  # (shipped model, stream)
    ("split_mnist_domain_acl", "split_mnist_domain"),
    ("split_mnist_class_acl", "split_mnist_class"),
    ("split_mnist_class_acl", "split_mnist_class2"),
    ("split_mnist_domain_conv4_acl", "split_mnist_domain"),
    ("split_mnist_class_conv4_acl", "split_mnist_class"),
    ("split_mnist_class_conv4_acl", "split_mnist_class2"),
    ("glyphs_24task_acl", "split_glyphs_domain20"),
    ("split_mnist_class_acl", "mnist_then_fashion_mnist"),
)


def matrices(workdir, runs: int = 10, shots: int = 5) -> None:
    """Each of EVALUATIONS into ``workdir``; one already there with these settings is kept."""
    for model, stream in EVALUATIONS:
        result, paths = evaluate_into(workdir, model, stream, runs=runs, shots=shots, keep=True, progress=False)
        print(f"{model} on {stream}: {'kept' if result is None else 'evaluated'} -> {paths['json'].name}", flush=True)


def report(workdirs, out):
    files = sorted(p for p in workdirs["matrices"].iterdir() if p.suffix in (".json", ".md", ".png")
                   and p.name != "job.json")
    return [Path(shutil.copy2(p, out / p.name)) for p in files]


EXPERIMENT = Experiment("acl_in_context", jobs=(Job("matrices", matrices),), report=report)
