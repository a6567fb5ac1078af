"""`python -m pipelines.report --out out`: rebuild report.html from the output folder alone."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.report",
        description="Rebuild <out>/report.html from what <out> holds: the corpus run (stats.json), the tokenizer "
        "and shards, the training and fine-tuning runs (metrics.jsonl) and the commands recorded in "
        "logs/runs.jsonl. One self-contained file: it opens without network access.",
    )
    parser.add_argument("--out", default="out", help="the run's output folder or URI (default: %(default)s)")
    args = parser.parse_args(argv)
    from pipelines.report.page import write_html_report
    from pipelines.workdir import exists

    if not exists(args.out):
        print(f"report: {args.out} does not exist; run 'make corpus' first", file=sys.stderr)
        return 2
    print(f"report: {write_html_report(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
