"""What the model-training commands (`pipelines.quality_model`, `pipelines.perplexity_model`) share:
their YAML read into a dataclass, and their command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def read_training_config(path: str, kind: type[T]) -> T:
    """The YAML file at `path` as a `kind` dataclass; a ValueError names the file and the problem."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    try:
        return kind(**raw)
    except TypeError as error:
        raise ValueError(f"{path}: {error}") from None


def training_main(
    argv: list[str] | None,
    prog: str,
    description: str,
    default_config: str,
    output_help: str,
    load_config: Callable[[str], Any],
    train: Callable[[Any], dict],
    summary: Callable[[Any, dict], list[str]],
) -> int:
    """`description` (a module docstring) has its first paragraph shown as the help; `--config` and
    `--output` are parsed, the config loaded (exit 2 on a config error), the model trained, and
    `summary(config, metadata)`'s lines printed."""
    parser = argparse.ArgumentParser(prog=prog, description=" ".join(description.split("\n\n")[0].split()))
    parser.add_argument("--config", default=default_config, help="training YAML (default: %(default)s)")
    parser.add_argument("--output", help=output_help)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (ValueError, FileNotFoundError) as error:
        print(f"{prog}: config error: {error}", file=sys.stderr)
        return 2
    if args.output:
        config.output = args.output
    metadata = train(config)
    for line in summary(config, metadata):
        print(line)
    return 0
