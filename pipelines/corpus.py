"""`corpus`: run the corpus pipeline described by a YAML config on Ray.

DAG: list input files -> ingest (one Ray task per file, streaming Arrow
batches) -> stage chain (the configured stages applied in order to each
batch, in a pool of actors that load their models once) -> output writer
(docs/, rejects/, quarantine/ + per-batch counts) -> stats.json, report.md.

Runs on a local Ray instance by default, or on the cluster named by
RAY_ADDRESS (as `ray job submit` sets it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from typing import Iterator

import pyarrow as pa
import ray

from pipelines.config import CorpusConfig, load_config
from pipelines.output import BINS, DIRS, KEPT, QUARANTINED, REMOVED, filesystem, write_outputs
from pipelines.report import write_report
from tokenizer.config import parse_set
from stages import build_stage
from stages.base import GlobalStage, RunContext
from stages.ingest import InputFile, list_input_files, read_file

COUNTER_NAME = "corpus_input_counter"


@ray.remote(num_cpus=0)
class InputCounter:
    """Counts records read per input file, independently of the DAG's outputs, so the
    accounting check (input = kept + removed + quarantined) can catch a lost document.
    Counts are set per file, not added, so a retried ingest task cannot double them."""

    def __init__(self):
        self.per_file: dict[str, tuple[str, int]] = {}

    def record(self, path: str, source: str, documents: int) -> None:
        self.per_file[path] = (source, documents)

    def totals(self) -> dict[str, int]:
        totals: Counter = Counter()
        for source, documents in self.per_file.values():
            totals[source] += documents
        return dict(totals)


def ingest_files(files: pa.Table, batch_rows: int, counter_name: str) -> Iterator[pa.Table]:
    """Ray Data UDF: read each input file of the batch, streaming its document batches."""
    counter = ray.get_actor(counter_name)
    for row in files.to_pylist():
        file = InputFile(**row)
        documents = 0
        for batch in read_file(file, batch_rows):
            documents += batch.num_rows
            yield batch
        ray.get(counter.record.remote(file.path, file.source, documents))


class StageChain:
    """Applies the configured stages in order to each batch. Row-local stages run
    chained in one actor so a batch is converted to Python once per stage, not
    serialised between stages; models load once per actor in `setup`."""

    def __init__(self, specs: list[tuple[str, dict]]):
        self.stages = [build_stage(name, params) for name, params in specs]
        for stage in self.stages:
            stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        for stage in self.stages:
            batch = stage.process(batch)
        return batch


def init_ray(num_cpus: int | None) -> None:
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # "local" starts a fresh instance even if a `ray start` cluster runs on this machine.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)


def segments(config: CorpusConfig) -> list:
    """Split the configured stages into runs of row-local stages (chained in one actor)
    and global stages (which see the whole dataset)."""
    out: list = []
    for spec in config.stages:
        stage = build_stage(spec.name, spec.params)
        if isinstance(stage, GlobalStage):
            out.append(stage)
        elif out and isinstance(out[-1], list):
            out[-1].append(spec)
        else:
            out.append([spec])
    return out


def build_dataset(config: CorpusConfig, counter_name: str, global_stages: list) -> ray.data.Dataset:
    """The DAG, lazily; `global_stages` receives the global stages so their stats can be read."""
    files = [file for source in config.sources.values() for file in list_input_files(source)]
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # same input and config => same output files
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = config.execution.workers or cpus
    ds = ray.data.from_items([file.__dict__ for file in files], override_num_blocks=len(files))
    ds = ds.map_batches(
        ingest_files,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"batch_rows": config.execution.batch_size, "counter_name": counter_name},
        # The stage actors hold the CPUs (see below); reading and parsing cost little next to the
        # stages, so ingest (at most `workers` files at a time) and the writer reserve none.
        num_cpus=0,
        concurrency=workers,
    )
    context = RunContext(
        source_priority={name: source.priority for name, source in config.sources.items()},
        batch_size=config.execution.batch_size,
        seed=config.seed,
    )
    row_stages = []
    for segment in segments(config):
        if isinstance(segment, GlobalStage):
            # A global stage reads the data more than once: compute what precedes it once. Its
            # result is materialised too: its tasks need CPUs that a stage-actor pool after it
            # (which takes them all) would never give back.
            ds = segment.apply(ds.materialize(), context).materialize()
            global_stages.append(segment)
            continue
        stages = [build_stage(spec.name, spec.params) for spec in segment]
        row_stages += stages
        actor_cpus = max(stage.resources.num_cpus for stage in stages)
        # A fixed pool: an autoscaling one (1 to N actors) never grew while ingest tasks held
        # CPUs, and ran on 1.2 of 2 cores (bench/pipeline_throughput.py; fixed: 1.96).
        actors = max(1, min(workers, int(cpus // actor_cpus)))
        ds = ds.map_batches(
            StageChain,
            fn_constructor_kwargs={"specs": [(spec.name, spec.params) for spec in segment]},
            batch_size=config.execution.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=actor_cpus,
            memory=max(stage.resources.memory_mb for stage in stages) * 2**20 or None,
        )
    return ds.map_batches(
        write_outputs,
        fn_kwargs={"out_dir": config.output.dir, "rejects_text": config.output.rejects_text,
                   "summed": tuple(name for stage in row_stages for name in stage.summed),
                   "binned": tuple(name for stage in row_stages for name in stage.binned)},
        batch_size=None,
        batch_format="pyarrow",
        num_cpus=0,
    )


def prepare_output(out_dir: str) -> None:
    fs, root = filesystem(out_dir)
    for sub in DIRS.values():
        fs.delete_dir_contents(f"{root}/{sub}", missing_dir_ok=True)
        fs.create_dir(f"{root}/{sub}")


def collect_stats(rows: list[dict], inputs: dict[str, int], config: CorpusConfig, seconds: float) -> dict:
    """Fold per-batch counts into stats.json and check that every input is accounted for."""
    totals: Counter = Counter()
    removed: dict = defaultdict(Counter)
    quarantined: Counter = Counter()
    per_source: dict = defaultdict(Counter)
    langs: Counter = Counter()
    examples: dict = defaultdict(list)
    sums: Counter = Counter()
    histograms: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0] * BINS)))
    for row in rows:
        for name, value in row["signals"]:
            column, _, b = name.partition("#")
            if b:
                histograms[column][row["source"]][row["category"]][int(b)] += value
            else:
                sums[column] += value
        category, source, docs, size = row["category"], row["source"], row["documents"], row["bytes"]
        totals[category] += docs
        totals[f"{category}_bytes"] += size
        per_source[source][category] += docs
        per_source[source][f"{category}_bytes"] += size
        if category == KEPT:
            langs[row["lang"] or "unknown"] += docs
        elif category == REMOVED:
            removed[row["stage"]][row["reason"]] += docs
        else:
            quarantined[row["reason"]] += docs
        if category != KEPT:
            key = (row["stage"], row["reason"])
            examples[key].extend(zip(row["example_ids"], row["example_texts"]))
    input_documents = sum(inputs.values())
    stats = {
        "input_documents": input_documents,
        "kept_documents": totals[KEPT],
        "removed_documents": totals[REMOVED],
        "quarantined_documents": totals[QUARANTINED],
        "removed": {stage: dict(sorted(reasons.items())) for stage, reasons in sorted(removed.items())},
        "quarantined": dict(sorted(quarantined.items())),
        "bytes_in": totals[f"{KEPT}_bytes"] + totals[f"{REMOVED}_bytes"] + totals[f"{QUARANTINED}_bytes"],
        "bytes_out": totals[f"{KEPT}_bytes"],
        "per_source": {
            source: {
                "input_documents": inputs.get(source, 0),
                "kept_documents": counts[KEPT],
                "removed_documents": counts[REMOVED],
                "quarantined_documents": counts[QUARANTINED],
                "kept_bytes": counts[f"{KEPT}_bytes"],
            }
            for source, counts in sorted(per_source.items())
        },
        "kept_languages": dict(langs.most_common()),
        "signal_sums": dict(sorted(sums.items())),  # e.g. pii_email_address: values replaced
        # column -> source -> kept/removed -> documents per score bin [0, 0.1), ..., [0.9, 1]
        "histograms": {column: {source: dict(sorted(parts.items())) for source, parts in sorted(by_source.items())}
                       for column, by_source in sorted(histograms.items())},
        "stages": [spec.name for spec in config.stages],
        "config_digest": config.digest,
        "seed": config.seed,
        "seconds": round(seconds, 2),
        "docs_per_s": round(input_documents / seconds, 1) if seconds else None,
    }
    stats["examples"] = {
        f"{stage}/{reason}": [{"id": i, "text": t} for i, t in sorted(pairs)[:3]]
        for (stage, reason), pairs in sorted(examples.items())
    }
    accounted = stats["kept_documents"] + stats["removed_documents"] + stats["quarantined_documents"]
    if accounted != input_documents:
        raise RuntimeError(
            f"accounting check failed: {input_documents} input documents but {stats['kept_documents']} kept + "
            f"{stats['removed_documents']} removed + {stats['quarantined_documents']} quarantined = {accounted}"
        )
    return stats


def run(config: CorpusConfig) -> dict:
    """Run the pipeline; returns the stats also written to `<out>/stats.json`."""
    init_ray(config.execution.num_cpus)
    started = time.perf_counter()
    prepare_output(config.output.dir)
    counter_name = f"{COUNTER_NAME}_{os.getpid()}_{time.time_ns()}"
    counter = InputCounter.options(name=counter_name).remote()
    try:
        global_stages: list = []
        rows = build_dataset(config, counter_name, global_stages).take_all()
        inputs = ray.get(counter.totals.remote())
    finally:
        ray.kill(counter)
    stats = collect_stats(rows, inputs, config, time.perf_counter() - started)
    stats.update({stage.name: stage.stats for stage in global_stages})
    fs, root = filesystem(config.output.dir)
    with fs.open_output_stream(f"{root}/stats.json") as stream:
        stream.write(json.dumps(stats, indent=2, ensure_ascii=False).encode())
    with fs.open_output_stream(f"{root}/report.md") as stream:
        stream.write(write_report(stats, config).encode())
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="corpus",
        description="Clean a text corpus: ingest -> language ID -> quality filters -> Parquet, on Ray. "
        "Writes <out>/docs (kept), rejects (removed, with stage and reason), quarantine (malformed input), "
        "stats.json and report.md.",
        epilog="Example: corpus --config configs/corpus.yaml --out out --set execution.batch_size=512. "
        "On a cluster: ray job submit --working-dir . -- python -m pipelines.corpus --config configs/corpus.yaml",
    )
    parser.add_argument("--config", default="configs/corpus.yaml", help="pipeline YAML (default: %(default)s)")
    parser.add_argument("--out", help="output directory or URI (overrides output.dir)")
    parser.add_argument("--num-cpus", type=int, help="cores for a local Ray instance (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. execution.batch_size=512 (repeatable)")
    args = parser.parse_args(argv)
    try:
        overrides = parse_set(args.set)
    except ValueError as error:
        parser.error(str(error))
    if args.out:
        overrides["output.dir"] = args.out
    if args.num_cpus:
        overrides["execution.num_cpus"] = args.num_cpus
    try:
        config = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"corpus: config error: {error}", file=sys.stderr)
        return 2
    stats = run(config)
    print(
        f"\n{stats['input_documents']} documents in, {stats['kept_documents']} kept, "
        f"{stats['removed_documents']} removed, {stats['quarantined_documents']} quarantined "
        f"({stats['bytes_out'] / 2**20:.1f} of {stats['bytes_in'] / 2**20:.1f} MiB kept) in {stats['seconds']} s"
        f"\nreport: {os.path.join(config.output.dir, 'report.md')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
