"""The quickstart as an experiment: both shipped 2-task glyph models (meta-trained with and without the ACL
term) meta-trained 300 more steps, meta-tested on held-out characters, the summary table and its figures:
what ``acljax quickstart`` does in one folder, declared as two runs and a report.

    acljax experiment run acl_quickstart       # about 1-2 min on 2 cores
    acljax experiment report acl_quickstart    # -> runs/acl_quickstart/report/summary.{json,md}, *.png
"""

from acljax import configs
from acljax.acl import quickstart
from acljax.experiment import Experiment, Run

STEPS = 300
RUNS = {label: "acl" if use_acl else "no_acl" for label, use_acl in quickstart.VARIANTS.items()}  # label -> run


def declared_runs() -> tuple[Run, ...]:
    """``acljax quickstart``'s two variants (:func:`acljax.acl.quickstart.variant_config`), as runs."""
    every = quickstart.curve_interval(configs.load(quickstart.CONFIG), STEPS)
    return tuple(Run(RUNS[label], quickstart.CONFIG, (f"use_acl={use_acl}", f"steps={STEPS}", f"validate_every={STEPS}",
                                                      f"log_every={every}",
                                                      f"init_from='{quickstart.PRETRAINED[use_acl].name}'"))
                 for label, use_acl in quickstart.VARIANTS.items())


def report(workdirs, out):
    quickstart.summarize(configs.load(quickstart.CONFIG), {label: workdirs[run] for label, run in RUNS.items()}, out,
                         steps=STEPS)
    return sorted(out.glob("summary.*")) + sorted(out.glob("*.png"))


EXPERIMENT = Experiment("acl_quickstart", declared_runs(), report=report)
