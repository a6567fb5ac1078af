"""Our pipeline on a benchmark input: `pipelines.corpus.run` with configs/corpus.yaml's row filter
stages (langid allowing en+zh), one JSONL source (the input), on a local Ray started apart."""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections import Counter

from bench.inputs import REPO, WORK, describe
from bench.monitor import timed_run

# The row-local filter stages of configs/corpus.yaml that datatrove's reference mirrors (keywords,
# which datatrove lacks, is cheap and kept). Dataset-level stages (dedup, decontamination) are left
# out: the reference has none, and on an input made of repeated copies they would collapse the copies.
FILTER_STAGES = ("langid", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "keywords")


def log(message: str) -> None:
    print(f"[pipeline_throughput] {message}", file=sys.stderr, flush=True)


def corpus_yaml() -> dict:
    """configs/corpus.yaml, as parsed YAML."""
    import yaml

    with open(os.path.join(REPO, "configs", "corpus.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def ours_config(input_dir: str, out_dir: str, cores: int):
    """configs/corpus.yaml's filter stages (FILTER_STAGES, with the config's params) and
    execution settings; one JSONL source (the bench input); langid allows en+zh with the
    config's default threshold."""
    import copy

    from pipelines.config import parse_config

    base = corpus_yaml()
    stages = [copy.deepcopy(entry) for entry in base["stages"] if entry["name"] in FILTER_STAGES]
    for entry in stages:
        if entry["name"] == "langid":
            params = entry.setdefault("params", {}) or {}
            params["languages"] = ["en", "zh"]
            params.pop("per_source", None)
            entry["params"] = params
    raw = {
        "seed": base.get("seed", 0),
        "sources": {"bench": {"paths": [input_dir], "format": "jsonl"}},
        "stages": stages,
        "output": {**(base.get("output") or {}), "dir": out_dir},
        "execution": {**(base.get("execution") or {}), "num_cpus": cores},
    }
    return parse_config(raw)


def excluded_stages() -> list[str]:
    """The stages of configs/corpus.yaml that the benchmark does not run."""
    return [entry["name"] for entry in corpus_yaml()["stages"] if entry["name"] not in FILTER_STAGES]


def kept_per_origin(out_dir: str) -> Counter:
    import pyarrow.parquet as pq

    kept: Counter = Counter()
    for path in sorted(glob.glob(os.path.join(out_dir, "docs", "*.parquet"))):
        for meta in pq.read_table(path, columns=["metadata"])["metadata"].to_pylist():
            kept[json.loads(meta).get("origin", "?")] += 1
    return kept


def start_ray(cores: int) -> float:
    """Start a local Ray with `cores` CPUs; its start-up seconds."""
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    seconds = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    return seconds


def run_ours(manifest: dict, cores: int, label: str, wait: float = 0) -> dict:
    """One timed run on the input of `manifest`, Ray already up."""
    from pipelines.corpus import run

    out_dir = os.path.join(WORK, f"ours_out_{label}")
    config = ours_config(os.path.dirname(manifest["files"][0]), out_dir, cores)
    log(f"ours ({label}): {describe(manifest)} -> {out_dir}")
    stats, timing = timed_run(lambda: run(config), wait)
    return {
        "label": label,
        **timing,
        "documents": stats["input_documents"],
        "kept_documents": stats["kept_documents"],
        "kept_per_origin": kept_per_origin(out_dir),
        "removed": stats["removed"],
        "kept_languages": stats["kept_languages"],
        "stage_cpu": {
            entry["stage"]: entry["cpu_seconds"] for entry in stats["stage_timing"] if entry["kind"] == "row"
        },
        "stages": [spec.name for spec in config.stages],
        "manifest": manifest,
    }
