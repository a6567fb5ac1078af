"""`python -m pipelines.report.record --out OUT PART -- COMMAND...`: run COMMAND, then append what
ran, for how long and with which versions to OUT/logs/runs.jsonl (report.html's provenance
section); exits with COMMAND's status. The Makefile runs each part of a run through it."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from importlib import metadata

from pipelines.report.sources import RUNS_LOG

PACKAGES = ("lmforge", "ray", "pyarrow", "datatrove", "tokenizers", "torch", "transformers", "matplotlib")


def package_versions() -> dict[str, str]:
    """Python's and the main packages' versions, and the checkout's commit when run inside one."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        versions["commit"] = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.report.record", description=__doc__)
    parser.add_argument("--out", required=True, help="the run's output folder (local)")
    parser.add_argument("part", help="what the command produces: corpus, shards, pretrain, sft, dpo")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    print(shlex.join(command), flush=True)  # as make would echo it
    started = time.perf_counter()
    process = subprocess.Popen(command)
    # Ctrl-C reaches the command too (same process group): let it stop on its own terms (the corpus
    # run keeps its state to resume from), and record how it ended.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    returncode = process.wait()
    record = {
        "part": args.part,
        "command": shlex.join(command),
        "returncode": returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": package_versions(),
    }
    path = os.path.join(args.out, RUNS_LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
