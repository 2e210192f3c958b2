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


def _demo(args: argparse.Namespace) -> int:
    from acljax.demo import RecallDemoConfig, train

    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(RecallDemoConfig(), **overrides)
    print(f"In-context associative recall: {config.num_pairs} (key, value) pairs per sequence, then "
          f"{config.num_queries} queries; chance accuracy {1 / config.num_values:.3f}. Workdir: {args.workdir}")
    results = train(config, args.workdir)
    print(f"\n| metric | value |\n|---|---|\n| steps | {results['steps']} |\n"
          f"| held-out query loss | {results['eval_query_loss']:.4f} |\n"
          f"| held-out query accuracy | {results['eval_query_accuracy']:.3f} |\n"
          f"| chance accuracy | {results['chance_accuracy']:.3f} |")
    print(f"\nMetrics: {args.workdir}/metrics.jsonl, results: {args.workdir}/results.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acljax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train an SRWM model on in-context associative recall (CPU, ~1 min)")
    demo.add_argument("--workdir", default="runs/demo", help="checkpoints, metrics.jsonl and results.json go here")
    demo.add_argument("--steps", type=_positive_int, default=None, help="training steps (default 600)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
