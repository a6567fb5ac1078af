"""What report.html is built from: the files each part of a run leaves in its output folder (a
local path or a URI), each read only when present."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from pipelines.workdir import filesystem

RUNS_LOG = "logs/runs.jsonl"  # pipelines/report/record.py appends one line per command it ran
BOOKKEEPING = {"step", "time"}  # keys of a metrics.jsonl record that are no metric


@dataclass
class TrainingRun:
    """One training or fine-tuning run: its metrics.jsonl, the last record per step kept (a resumed
    run logs again the steps after its checkpoint)."""

    name: str  # "pretrain", "sft" or "dpo"
    path: str  # the run's folder, relative to the output folder
    train: list[dict]  # training records by step: loss, lr, tokens_per_s, ...
    eval: list[dict]  # validation records by step: val_loss, val_bpb, ...
    mtime: float

    @property
    def seconds(self) -> float | None:
        """From the first logged record to the last (records carry their wall-clock `time`)."""
        times = [record["time"] for record in self.train + self.eval if "time" in record]
        return max(times) - min(times) if len(times) > 1 else None


@dataclass
class RunOutputs:
    root: str
    stats: dict | None = None  # stats.json
    tokenizer: dict | None = None  # tokenizer/report.json
    extension: dict | None = None  # tokenizer/extended/report.json
    manifest: dict | None = None  # shards/manifest.json
    trainings: list[TrainingRun] = field(default_factory=list)
    commands: dict[str, dict] = field(default_factory=dict)  # part -> its last recorded command
    mtimes: dict[str, float] = field(default_factory=dict)  # part -> when its file was written

    def stale(self) -> list[str]:
        """Parts older than the part they were built from: a rerun of an earlier step that the
        later steps have not followed yet."""
        order = [("corpus", "stats.json"), ("shards", "shards/manifest.json"), ("pretrain", "model")]
        found = [(name, what) for name, what in order if name in self.mtimes]
        return [
            f"{what} predates {before_what}: it was built from an earlier {before} run"
            for (before, before_what), (name, what) in zip(found, found[1:])
            if self.mtimes[name] < self.mtimes[before]
        ]


def read_outputs(root: str) -> RunOutputs:
    fs, base = filesystem(root)
    outputs = RunOutputs(root=root)

    def read_json(relpath: str, part: str | None = None) -> dict | None:
        info = fs.get_file_info(f"{base}/{relpath}")
        if info.type != pafs.FileType.File:
            return None
        if part:
            outputs.mtimes[part] = info.mtime.timestamp()
        with fs.open_input_stream(info.path) as stream:
            return json.loads(stream.read())

    outputs.stats = read_json("stats.json", "corpus")
    outputs.tokenizer = read_json("tokenizer/report.json")
    outputs.extension = read_json("tokenizer/extended/report.json")
    outputs.manifest = read_json("shards/manifest.json", "shards")
    for relpath in training_folders(fs, base):
        run = read_training(fs, base, relpath)
        if run is not None:
            outputs.trainings.append(run)
            if run.name == "pretrain":
                outputs.mtimes["pretrain"] = run.mtime
    outputs.commands = read_commands(fs, f"{base}/{RUNS_LOG}")
    return outputs


def training_folders(fs: pafs.FileSystem, base: str) -> list[str]:
    """`make train` writes model/, `make finetune` finetune/sft/ then finetune/ (DPO)."""
    folders = ["model"]
    info = fs.get_file_info(f"{base}/finetune")
    if info.type == pafs.FileType.Directory:
        subfolders = fs.get_file_info(pafs.FileSelector(info.path))
        folders += sorted(
            f"finetune/{sub.base_name}"
            for sub in subfolders
            if sub.type == pafs.FileType.Directory and sub.base_name != "checkpoints"
        )
        folders.append("finetune")
    return folders


def read_training(fs: pafs.FileSystem, base: str, relpath: str) -> TrainingRun | None:
    info = fs.get_file_info(f"{base}/{relpath}/metrics.jsonl")
    if info.type != pafs.FileType.File:
        return None
    with fs.open_input_stream(info.path) as stream:
        lines = stream.read().decode("utf-8").splitlines()
    train: dict[int, dict] = {}
    evaluations: dict[int, dict] = {}
    for line in filter(str.strip, lines):
        record = json.loads(line)
        metrics = set(record) - BOOKKEEPING
        if not metrics:  # a fine-tuning run without validation items logs an empty final evaluation
            continue
        is_eval = any(key.startswith("val_") for key in metrics)
        (evaluations if is_eval else train)[record["step"]] = record
    train_records = [train[step] for step in sorted(train)]
    if not relpath.startswith("finetune"):
        name = "pretrain"
    else:
        name = "dpo" if any("margin" in record for record in train_records) else "sft"
    return TrainingRun(
        name=name,
        path=relpath,
        train=train_records,
        eval=[evaluations[step] for step in sorted(evaluations)],
        mtime=info.mtime.timestamp(),
    )


def read_commands(fs: pafs.FileSystem, path: str) -> dict[str, dict]:
    if fs.get_file_info(path).type != pafs.FileType.File:
        return {}
    with fs.open_input_stream(path) as stream:
        records = [json.loads(line) for line in stream.read().decode("utf-8").splitlines() if line.strip()]
    return {record["part"]: record for record in records}  # the last one of each part


def funnel(stats: dict) -> list[dict]:
    """Documents (and text bytes, when stats.json has them per stage) left after each step of the
    corpus run: ingest's quarantine first, then each configured stage, whose quarantined documents
    (`stage_error:<stage>`) count as its removals."""
    quarantined, quarantined_bytes = stats["quarantined"], stats.get("quarantined_bytes")
    removed_bytes = stats.get("removed_bytes")
    with_bytes = removed_bytes is not None and quarantined_bytes is not None
    documents, size = stats["input_documents"], stats["bytes_in"]
    steps = [{"step": "input", "removed": 0, "documents": documents, "bytes": size}]

    def step(name: str, removed: int, removed_size: int) -> None:
        nonlocal documents, size
        documents, size = documents - removed, size - removed_size
        steps.append({"step": name, "removed": removed, "documents": documents, "bytes": size if with_bytes else None})

    def errors(stage: str) -> tuple[int, int]:
        reason = f"stage_error:{stage}"
        return quarantined.get(reason, 0), (quarantined_bytes or {}).get(reason, 0)

    at_ingest = [reason for reason in quarantined if not reason.startswith("stage_error:")]
    step("ingest", sum(quarantined[r] for r in at_ingest), sum((quarantined_bytes or {}).get(r, 0) for r in at_ingest))
    for stage in stats["stages"]:
        failed, failed_size = errors(stage)
        step(
            stage,
            sum(stats["removed"].get(stage, {}).values()) + failed,
            (removed_bytes or {}).get(stage, 0) + failed_size,
        )
    return steps
