"""`corpus`: run the corpus pipeline described by a YAML config on Ray.

The configured stages are cut into phases at the global stages:

    phase 0   input files -> ingest -> row stages, in a pool of actors that load their models
              once, each reading whole input files and writing what comes out (or, with fewer
              files than actors, fed batches by a Ray task per file)
    phase k   a global stage (dedup: it sees the whole dataset), or the row stages after it
    last      ... -> docs/, rejects/, quarantine/ + per-part counts -> stats.json, report.md

Each phase writes its rows as Parquet parts under `<out>/.run`, and the next reads them: the
driver only plans and counts, and memory is bounded by the configuration, not the corpus.
A row phase records which input files it has finished; a global phase records when it is
done. Rerunning the same command after a crash resumes from those records
(pipelines/workdir.py), and the output is published into `<out>` only when complete, with
`_SUCCESS` written last.

Runs on a local Ray instance by default, or on the cluster named by RAY_ADDRESS (as
`ray job submit` sets it).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray

from pipelines.config import CorpusConfig, StageSpec, load_config
from pipelines.console import PhaseProgress, log_dir, print_summary, quiet_ray
from pipelines.output import (
    DIRS,
    STATS_SCHEMA,
    TIMING,
    TIMING_TYPE,
    with_unit,
    write_final,
    write_marks,
    write_phase,
)
from pipelines.report import write_report
from pipelines.stats import collect_stats
from pipelines.workdir import WorkDir, absolute, unit_key, write_atomic
from stages import build_stage
from stages.base import QUARANTINE_STAGE, GlobalStage, RunContext, Stage, set_column
from stages.dedup import shuffle
from stages.ingest import InputFile, list_input_files, read_file
from tokenizer.config import parse_set


def ingest_files(
    files: pa.Table, out_dir: str, batch_rows: int, max_doc_bytes: int, max_batch_bytes: int
) -> Iterator[pa.Table]:
    """Ray Data UDF: read each input file of the batch, streaming its document batches; record
    its document count once it is read whole (the accounting check and resume rely on it)."""
    work = WorkDir(out_dir)
    for row in files.to_pylist():
        file = InputFile(**row)
        documents = 0
        batches = read_file(file, batch_rows, max_doc_bytes=max_doc_bytes, max_batch_bytes=max_batch_bytes)
        while True:  # each batch's reading timed as a stage's work is (BatchTiming), the yield outside it
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            batch = next(batches, None)
            if batch is None:
                break
            timing = BatchTiming(batch)
            everyone = np.ones(batch.num_rows, dtype=bool)  # malformed input too: reading it took time
            timing.add("ingest", batch, everyone, time.process_time_ns() - cpu, time.perf_counter_ns() - wall)
            documents += batch.num_rows
            yield timing.attach(batch)
        work.record_input(f"{file.source}/{file.relpath}", file.source, file.path, documents)


def read_units(
    units: pa.Table, out_dir: str, phase: int, batch_rows: int, marker: GlobalStage | None = None
) -> Iterator[pa.Table]:
    """Ray Data UDF: the rows a phase wrote for each input file of the batch, in order; with a
    `marker`, the next phase's global stage, marked with that file's marks."""
    work = WorkDir(out_dir)
    fs, _ = work.fs_root
    for unit in units["unit"].to_pylist():
        marks = work.read_marks(phase + 1, unit, marker.marks_schema) if marker else None
        for _, _, path in work.parts(phase, unit).get(unit, []):
            for batch in pads.dataset(path, filesystem=fs).to_batches(batch_size=batch_rows):
                rows = pa.Table.from_batches([batch])
                yield marker.mark(rows, marks) if marker else rows


class StageChain:
    """Applies the configured row stages in order to each block. Row-local stages run chained
    in one actor so a block is converted to Python once per stage, not serialised between
    stages; models load once per actor. With a `sink`, the actor also writes what comes out
    and returns the sink's part counts; with a `source`, its blocks are what the source reads
    from each batch of input rows (input files, units), so a batch never leaves the actor's
    process (see CorpusRun.run_units).

    A stage that raises on a batch gets it again document by document: the documents that still
    raise are quarantined as `stage_error:<stage>` (exception in their metadata `error`), the
    others go on. Bad data never stops the run; an actor that dies is restarted by Ray.

    Each stage is timed per batch (BatchTiming): the figures go with the rows (column TIMING) to
    the run's per-part counts, and from there to stats.json's `stage_timing`."""

    def __init__(
        self,
        specs: list[tuple[str, dict]],
        batch_rows: int,
        batch_bytes: int,
        source: Callable[[pa.Table], Iterator[pa.Table]] | None = None,
        sink: Callable[[pa.Table], pa.Table] | None = None,
    ):
        self.stages = [build_stage(name, params) for name, params in specs]
        for stage in self.stages:
            stage.setup()
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.source, self.sink = source, sink

    def __call__(self, block: pa.Table) -> pa.Table | Iterator[pa.Table]:
        if self.source is None:
            return self.finish(block)
        return (self.finish(batch) for batch in self.source(block))  # Ray Data streams a generator's batches

    def finish(self, block: pa.Table) -> pa.Table:
        out = self.apply(block)
        return self.sink(out) if self.sink else out

    def apply(self, block: pa.Table) -> pa.Table:
        outputs = []
        for batch in slices(block, self.batch_rows, self.batch_bytes):
            carried = batch[TIMING] if TIMING in batch.column_names else None  # ingest's, earlier phases'
            if carried is not None:
                batch = batch.drop_columns([TIMING])  # the stages never see it
            timing = BatchTiming(batch)
            for stage in self.stages:
                alive = pc.is_null(batch["drop_stage"]).to_numpy(zero_copy_only=False)
                before = batch
                cpu, wall = time.process_time_ns(), time.perf_counter_ns()
                batch = apply_isolated(stage, batch)
                timing.add(stage.name, before, alive, time.process_time_ns() - cpu, time.perf_counter_ns() - wall)
            outputs.append(timing.attach(batch, carried))
        if outputs:
            return pa.concat_tables(outputs)
        return block if TIMING in block.column_names else block.append_column(TIMING, pa.nulls(0, TIMING_TYPE))


class BatchTiming:
    """The per-stage figures of one batch, split by input file: the documents a stage got alive
    (the ones it works on) and their text bytes, and the stage's CPU and wall time shared among
    the files in proportion to those documents. The first row of each file in the batch carries
    its file's figures (column TIMING), so they stay with the file's rows through every phase.

    CPU time is the process's (time.process_time), not the thread's: a stage's libraries may
    compute on threads of their own (Arrow, tokenizers, model runtimes), and an actor runs one
    batch at a time, so nothing else of ours runs in the process meanwhile; Ray's own background
    threads add a little. Two clock reads per stage and batch, no per-document timing."""

    def __init__(self, batch: pa.Table):
        units = pc.list_element(pc.split_pattern(batch["id"], "#", max_splits=1, reverse=True), 0)
        distinct = pc.unique(units)
        if len(distinct) == 1:  # the usual batch: rows of one input file
            self.files, self.carriers = np.zeros(batch.num_rows, dtype=np.int64), np.zeros(1, dtype=np.int64)
        else:
            self.files = pc.index_in(units, distinct).to_numpy()  # per row: its file's index in the batch
            self.carriers = np.unique(self.files, return_index=True)[1]  # each file's first row
        self.stages: list[str] = []
        self.figures: list[np.ndarray] = []  # per stage: documents, bytes, cpu_ns, wall_ns of each file

    def add(self, stage: str, batch: pa.Table, counted: np.ndarray, cpu_ns: int, wall_ns: int) -> None:
        """Record `stage`'s time on `batch`, of which it worked on the `counted` rows."""
        files = len(self.carriers)
        sizes = pc.binary_length(batch["text"]).fill_null(0).to_numpy(zero_copy_only=False)
        documents = np.bincount(self.files, weights=counted, minlength=files).astype(np.int64)
        size = np.bincount(self.files, weights=sizes * counted, minlength=files).astype(np.int64)
        weights = documents if documents.any() else np.bincount(self.files, minlength=files)
        self.stages.append(stage)
        self.figures.append(np.stack([documents, size, shares(cpu_ns, weights), shares(wall_ns, weights)], axis=1))

    def attach(self, batch: pa.Table, carried: pa.ChunkedArray | None = None) -> pa.Table:
        """`batch` (the rows this was built on, in the same order) with its TIMING column: the
        `carried` figures of earlier steps, then this batch's on each file's first row. Built
        with arrays, not per row or per file in Python: a batch may hold many files."""
        files, stages = len(self.carriers), len(self.stages)
        figures = np.stack(self.figures, axis=1).reshape(-1, 4)  # file by file, stage by stage
        names = pa.array(self.stages, pa.string()).take(pa.array(np.tile(np.arange(stages), files)))
        values = pa.StructArray.from_arrays(
            [names, *(pa.array(figures[:, k]) for k in range(4))], fields=list(TIMING_TYPE.value_type)
        )
        owners = np.repeat(self.carriers, stages)  # the row each entry goes to
        if carried is not None:
            carried = carried.combine_chunks()
            values = pa.concat_arrays([pc.list_flatten(carried), values])
            owners = np.concatenate([pc.list_parent_indices(carried).to_numpy(), owners])
        order = np.argsort(owners, kind="stable")  # a row's carried entries first, then the new ones
        counts = np.bincount(owners, minlength=batch.num_rows)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
        column = pa.ListArray.from_arrays(
            offsets, values.take(pa.array(order)), TIMING_TYPE, mask=pa.array(counts == 0)
        )
        return batch.append_column(TIMING, column)


def shares(total: int, weights: np.ndarray) -> np.ndarray:
    """`total` split by `weights` in whole units; the first share takes the remainder, so the
    shares add up to `total` exactly."""
    parts = total * weights // weights.sum()
    parts[0] += total - parts.sum()
    return parts


def slices(block: pa.Table, max_rows: int, max_bytes: int) -> Iterator[pa.Table]:
    """Consecutive slices of at most `max_rows` rows and (unless one document is larger) `max_bytes` of text."""
    sizes = pa.compute.binary_length(pa.compute.cast(block["text"], pa.binary())).fill_null(0).to_numpy()
    start, size = 0, 0
    for row, length in enumerate(sizes):
        if row > start and (row - start >= max_rows or size + length > max_bytes):
            yield block.slice(start, row - start)
            start, size = row, 0
        size += length
    if start < block.num_rows:
        yield block.slice(start)


def apply_isolated(stage: Stage, batch: pa.Table) -> pa.Table:
    try:
        return stage.process(batch)
    except Exception:  # noqa: BLE001 - whatever a stage raises on data, only its documents pay
        pass
    rows = []
    for position in range(batch.num_rows):
        row = batch.slice(position, 1)
        try:
            rows.append(stage.process(row))
        except Exception as error:  # noqa: BLE001
            rows.append(quarantine_row(row, stage.name, error))
    out = pa.concat_tables(rows, promote_options="default")
    for column, dtype in stage.writes.items():  # every row failed: the batch still has the stage's columns
        if column not in out.column_names:
            out = out.append_column(column, pa.nulls(out.num_rows, dtype))
    return out


def quarantine_row(row: pa.Table, stage: str, error: Exception) -> pa.Table:
    metadata = json.loads(row["metadata"][0].as_py() or "{}")
    frame = traceback.extract_tb(error.__traceback__)[-1]
    metadata["error"] = f"{type(error).__name__}: {error} ({os.path.basename(frame.filename)}:{frame.lineno})"[:2000]
    row = set_column(row, "metadata", pa.array([json.dumps(metadata, ensure_ascii=False, sort_keys=True)]))
    row = set_column(row, "drop_stage", pa.array([QUARANTINE_STAGE]))
    return set_column(row, "drop_reason", pa.array([f"stage_error:{stage}"]))


_FAILPOINT_COUNTS: Counter = Counter()


def failpoint(name: str) -> None:
    """Test hook: with LMFORGE_KILL_AT=name:n the driver kills itself (SIGKILL, as a lost node or
    an OOM kill would) the n-th time it reaches `name`. tests/pipelines/test_resume.py uses it to
    stop a run at chosen points; unset, it costs a dictionary update."""
    _FAILPOINT_COUNTS[name] += 1
    target, _, times = os.environ.get("LMFORGE_KILL_AT", "").partition(":")
    if target == name and _FAILPOINT_COUNTS[name] == int(times or 1):
        print(f"corpus: LMFORGE_KILL_AT={target}:{times}: killing the driver", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def init_ray(num_cpus: int | None, object_store_memory: int | None = None, log_to_driver: bool = True) -> None:
    """Start a local Ray instance, or join the cluster RAY_ADDRESS names; `log_to_driver` echoes
    the workers' output on this process's console."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    else:
        # "local" starts a fresh instance even if a `ray start` cluster runs on this machine.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            include_dashboard=False,
            log_to_driver=log_to_driver,
        )


@dataclass
class Phase:
    """A global stage, or a run of row stages (phase 0 also ingests); the last one writes the output."""

    index: int
    specs: list[StageSpec] = field(default_factory=list)  # row stages, as configured (actors build them)
    row_stages: list[Stage] = field(default_factory=list)  # the same, built on the driver
    stage: GlobalStage | None = None
    final: bool = False

    @property
    def output(self) -> int | str:
        """Where its parts go in the work directory."""
        return "final" if self.final else self.index

    def describe(self) -> str:
        what = self.stage.name if self.stage else ", ".join(s.name for s in self.specs) or "no row stages"
        return f"phase {self.index} ({'ingest, ' if self.index == 0 else ''}{what})"


def plan_phases(config: CorpusConfig) -> list[Phase]:
    phases: list[Phase] = [Phase(0)]
    for spec, stage in zip(config.stages, config.built_stages):
        if isinstance(stage, GlobalStage):
            phases.append(Phase(len(phases), stage=stage))
            continue
        if phases[-1].stage is not None:
            phases.append(Phase(len(phases)))
        phases[-1].specs.append(spec)
        phases[-1].row_stages.append(stage)
    phases[-1].final = True
    return phases


class CorpusRun:
    """One run of the pipeline into `config.output.dir`, resumed from its work directory."""

    def __init__(self, config: CorpusConfig, files: list[InputFile]):
        self.config = config
        self.files = files
        self.out = absolute(config.output.dir)  # what tasks on any node are given
        self.work = WorkDir(self.out)
        self.phases = plan_phases(config)
        self.units = {unit_key(f"{f.source}/{f.relpath}") for f in files}
        self.context = RunContext(
            source_priority={name: source.priority for name, source in config.sources.items()},
            batch_size=config.execution.batch_size,
            seed=config.seed,
        )
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = config.execution.workers or cpus
        self.cpus = cpus
        self.timing: list[dict] = []  # wall time of each phase this attempt ran (stats.json `timing`)
        # Wall time of each global stage's find, this attempt's or the one recorded with its marks
        self.global_seconds: dict[str, float] = {}

    def run(self) -> dict:
        started = time.perf_counter()
        if self.work.publishing():  # killed while moving the finished output into place
            self.work.publish(after_move=lambda name: failpoint("publish"))
            return self.published_stats()
        for phase in self.phases:
            if phase.stage is not None:
                self.find_marks(phase)
            self.run_units(phase)
        stats = self.write_stats(time.perf_counter() - started)
        stats_bytes = json.dumps(stats, indent=2, ensure_ascii=False).encode()
        fs, _ = self.work.fs_root
        for sub in DIRS.values():  # present even when empty, as users list them
            fs.create_dir(f"{self.work.staging}/{sub}")
        write_atomic(fs, f"{self.work.staging}/stats.json", stats_bytes)
        write_atomic(fs, f"{self.work.staging}/report.md", write_report(stats, self.config).encode())
        self.work.publish(
            {
                "stats_sha256": hashlib.sha256(stats_bytes).hexdigest(),
                "config_digest": self.config.digest,
                "kept_documents": stats["kept_documents"],
            },
            after_move=lambda name: failpoint("publish"),
        )
        return stats

    # Phases
    def retries(self) -> Callable[[], dict]:
        """Remote args of our tasks: Ray's task retries, bounded by the config."""
        return functools.partial(dict, max_retries=self.config.execution.max_retries)

    def tasks(self) -> ray.data.TaskPoolStrategy:
        """At most one task per worker for our reading and writing steps."""
        return ray.data.TaskPoolStrategy(size=self.workers)

    def map_tasks(self, ds: ray.data.Dataset, step: functools.partial, batch_size: int | None) -> ray.data.Dataset:
        """`ds` through `step` (one of ours: a reader or a sink) in our pool of tasks."""
        return ds.map_batches(
            step.func,
            fn_kwargs=step.keywords,
            batch_size=batch_size,
            batch_format="pyarrow",
            num_cpus=0,
            compute=self.tasks(),
            ray_remote_args_fn=self.retries(),
        )

    def sink(self, phase: Phase) -> functools.partial:
        """What writes the phase's rows and returns their part counts."""
        if phase.final:
            row_stages = [stage for p in self.phases for stage in p.row_stages]
            return functools.partial(
                write_final,
                out_dir=self.out,
                rejects_text=self.config.output.rejects_text,
                summed=tuple(name for stage in row_stages for name in stage.summed),
                binned=tuple(name for stage in row_stages for name in stage.binned),
            )
        return functools.partial(write_phase, out_dir=self.out, phase=phase.index)

    def consume(
        self, ds, phase: Phase, what: str = "documents", total: int | None = None, started: float | None = None
    ) -> dict:
        """Run the phase; only part counts come back to the driver (and show as its progress).
        Returns its `timing` record, timed from `started` (time.perf_counter) when given."""
        with PhaseProgress(phase.describe(), total, what) as progress:
            if started is not None:
                progress.started = started
            for parts in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for documents, size in zip(parts["documents"].to_pylist(), parts["bytes"].to_pylist()):
                    progress.update(documents, size)
                    failpoint(f"phase{phase.index}.part")
        self.timing.append(progress.figures())
        return self.timing[-1]

    def reader(
        self, phase: int, units: list[str], marker: GlobalStage | None = None
    ) -> tuple[ray.data.Dataset, functools.partial]:
        """A dataset of `units` (one row each) and what reads the rows `phase` wrote for each of
        them, marked by `marker` (see `read_units`); our own reader, not Ray's Parquet reader:
        our parts are many and small, which it handles poorly."""
        rows = ray.data.from_items([{"unit": u} for u in units], override_num_blocks=len(units))
        read = functools.partial(
            read_units, out_dir=self.out, phase=phase, batch_rows=self.config.execution.batch_size, marker=marker
        )
        return rows, read

    def read_phase(self, phase: int, units: list[str], marker: GlobalStage | None = None) -> ray.data.Dataset:
        """The rows `phase` wrote for `units`, a task per file (see `reader`)."""
        return self.map_tasks(*self.reader(phase, units, marker), batch_size=1)

    def run_units(self, phase: Phase) -> None:
        """Run `phase` on the input files it has not finished, each read, processed and written
        on its own."""
        execution = self.config.execution
        inputs = self.work.inputs()
        done = self.work.complete_units(phase.output, inputs) & self.units
        todo = sorted(self.units - done)
        if not todo:
            print(f"corpus: {phase.describe()}: done in an earlier attempt", flush=True)
            return
        if done:
            print(
                f"corpus: {phase.describe()}: resuming, {len(done)} of {len(self.units)} input files done "
                "in an earlier attempt",
                flush=True,
            )
        self.work.discard_units(phase.output, set(todo))
        if phase.index == 0:
            files = [f.__dict__ for f in self.files if unit_key(f"{f.source}/{f.relpath}") in set(todo)]
            rows = ray.data.from_items(files, override_num_blocks=len(files))
            read = functools.partial(
                ingest_files,
                out_dir=self.out,
                batch_rows=execution.batch_size,
                max_doc_bytes=self.config.ingest.max_doc_bytes,
                max_batch_bytes=self.config.ingest.max_batch_bytes,
            )
        else:
            rows, read = self.reader(phase.index - 1, todo, marker=phase.stage)
        actor_cpus = max((stage.resources.num_cpus for stage in phase.row_stages), default=1)
        # A fixed pool: an autoscaling one (1 to N actors) never grew while ingest tasks held
        # CPUs, and left cores idle (measured with bench/pipeline_throughput.py).
        actors = max(1, min(self.workers, int(self.cpus // actor_cpus)))
        # The actors read and write their own rows: no pool of reading and writing tasks (their
        # processes, their Ray Data machinery) competes with them for the cores, and no batch is
        # copied through the object store. But that spreads the work by input file: with fewer
        # files than actors, tasks read them and spread their batches over every actor.
        inside = bool(phase.specs) and len(todo) >= actors
        ds = rows if inside else self.map_tasks(rows, read, batch_size=1)
        if not phase.specs:
            ds = self.map_tasks(ds, self.sink(phase), batch_size=None)
        else:
            ds = ds.map_batches(
                StageChain,
                fn_constructor_kwargs={
                    "specs": [(spec.name, spec.params) for spec in phase.specs],
                    "batch_rows": execution.batch_size,
                    "batch_bytes": self.config.ingest.max_batch_bytes,
                    "source": read if inside else None,
                    "sink": self.sink(phase),
                },
                # An input file at a time, to whichever actor is free; or whole blocks (bounded by
                # Ray's block size), which StageChain slices
                batch_size=1 if inside else None,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1 if inside else None),
                num_cpus=actor_cpus,
                memory=max(stage.resources.memory_mb for stage in phase.row_stages) * 2**20 or None,
                # Ray's default restarts a dead actor forever: a document that crashes its process
                # every time would loop; after these, the run stops and says so.
                ray_remote_args_fn=functools.partial(
                    dict, max_restarts=execution.max_restarts, max_task_retries=execution.max_task_retries
                ),
            )
        # Documents per input file are known once ingest has read it: every later phase has a total.
        total = sum(inputs[unit]["documents"] for unit in todo) if phase.index else None
        self.consume(ds, phase, total=total)
        missing = self.units - self.work.complete_units(phase.output, self.work.inputs())
        if missing:
            raise RuntimeError(f"{phase.describe()} finished without writing all rows of {len(missing)} input files")

    def find_marks(self, phase: Phase) -> None:
        """Run a global stage's `find` over the previous phase's rows and write its marks, per
        input file, into the work directory; the driver gets counts only."""
        found = self.work.marks_found(phase.index)
        if found is not None:
            phase.stage.stats = found["stats"]
            self.global_seconds[phase.stage.name] = found.get("seconds")
            return
        self.work.discard_marks(phase.index)
        self.work.discard_phase(phase.output)
        # Most of a global stage's work runs inside `find` (its shuffles and rounds execute as it
        # builds the marks), before the marks stream: its time counts from here.
        started = time.perf_counter()
        marks = phase.stage.find(self.read_phase(phase.index - 1, sorted(self.units)), self.context)
        written = shuffle(marks.map_batches(with_unit, batch_format="pyarrow"), ["unit"]).map_batches(
            write_marks,
            fn_kwargs={"out_dir": self.out, "phase": phase.index},
            batch_size=None,
            batch_format="pyarrow",
            num_cpus=0,
            ray_remote_args_fn=self.retries(),
        )
        seconds = self.consume(written, phase, what="marks found", started=started)["seconds"]
        failpoint(f"phase{phase.index}.found")
        self.global_seconds[phase.stage.name] = seconds
        self.work.record_marks_found(
            phase.index, {"stage": phase.stage.name, "stats": phase.stage.stats, "seconds": seconds}
        )

    # Results
    def write_stats(self, seconds: float) -> dict:
        inputs: Counter = Counter()
        for record in self.work.inputs().values():
            inputs[record["source"]] += record["documents"]
        fs, _ = self.work.fs_root
        paths = [path for spans in self.work.parts("final").values() for _, _, path in spans]
        batches = pads.dataset(paths, filesystem=fs, schema=STATS_SCHEMA).to_batches() if paths else []
        rows = (row for batch in batches for row in batch.to_pylist())
        stats = collect_stats(rows, dict(inputs), self.config, seconds, self.global_seconds)
        stats.update({phase.stage.name: phase.stage.stats for phase in self.phases if phase.stage})
        stats["timing"] = self.timing
        return stats

    def published_stats(self) -> dict:
        fs, root = self.work.fs_root
        with fs.open_input_stream(f"{root}/stats.json") as stream:
            return json.loads(stream.read())


def input_state(config: CorpusConfig, files: list[InputFile]) -> dict:
    """What a run's work directory must match to be resumed: the config and the input files."""
    listed = [[file.source, file.path, file.size, file.mtime_ns] for file in files]
    return {"config_digest": config.digest, "inputs": listed}


def why_not_resumable(old: dict, new: dict) -> str | None:
    if old.get("config_digest") != new["config_digest"]:
        return f"its configuration differs (digest {old.get('config_digest')}, now {new['config_digest']})"
    before = {tuple(entry[:2]): entry[2:] for entry in old.get("inputs", [])}
    now = {tuple(entry[:2]): entry[2:] for entry in new["inputs"]}
    if before == now:
        return None
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(key for key in set(now) & set(before) if now[key] != before[key])
    parts = [
        f"{len(keys)} {what} (first: {keys[0][1]})"
        for keys, what in ((added, "added"), (removed, "removed"), (changed, "changed"))
        if keys
    ]
    return "its input files differ: " + ", ".join(parts)


def list_inputs(config: CorpusConfig) -> list[InputFile]:
    """Every source's input files; FileNotFoundError names a pattern that matches nothing."""
    return [file for source in config.sources.values() for file in list_input_files(source)]


def run(config: CorpusConfig, fresh: bool = False, files: list[InputFile] | None = None) -> dict:
    """Run the pipeline, resuming an interrupted run of the same config and inputs unless
    `fresh`; returns the stats also written to `<out>/stats.json`."""
    files = list_inputs(config) if files is None else files  # before anything is started or deleted
    state = input_state(config, files)
    work = WorkDir(config.output.dir)
    old = work.state()
    if old is not None:
        reason = "--fresh was given" if fresh else why_not_resumable(old, state)
        if reason:
            print(f"corpus: not resuming the unfinished run in {work.root}: {reason}; starting afresh", flush=True)
            work.start(state)
        else:
            print(f"corpus: resuming the unfinished run in {work.root}", flush=True)
    else:
        work.start(state)
    init_ray(config.execution.num_cpus, config.execution.object_store_memory)
    # Ray Data warns whenever an operator gets fewer inputs than its concurrency (a small file
    # list, a one-file phase): harmless here, and it buries the run's own messages.
    warnings.filterwarnings("ignore", message="The (maximum|minimum) number of concurrent", category=UserWarning)
    # Retry and restart limits can only be passed as remote args, which Ray 2.60 deprecates with no
    # replacement yet (pyproject.toml pins ray below 2.64, where they go).
    warnings.filterwarnings("ignore", message="`ray_remote_args_fn` is deprecated")
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # same input and config => same output files
    # Ray's default of 200 shuffle partitions makes a small corpus pay for 200 aggregations per
    # dedup shuffle; one per 64 MiB of input (at least two per CPU) keeps partitions worth their cost.
    input_bytes = sum(entry[2] for entry in state["inputs"])
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ctx.default_hash_shuffle_parallelism = max(2 * cpus, min(200, input_bytes // 2**26))
    return CorpusRun(config, files).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="corpus",
        description="Clean a text corpus: ingest -> language ID -> quality filters -> dedup -> PII -> Parquet, "
        "on Ray. Writes <out>/docs (kept), rejects (removed, with stage and reason), quarantine (malformed input "
        "and documents a stage failed on), stats.json, report.md, _SUCCESS (last, when all is in place), then "
        "report.html (charts of every part of the run); logs/ holds Ray's own output. "
        "An interrupted run resumes where it stopped when the same command is run again (its state is in "
        "<out>/.run); the previous output stays until the new one is complete.",
        epilog="Example: corpus --config configs/corpus.yaml --out out --set execution.batch_size=512. "
        "On a cluster: ray job submit --working-dir . -- python -m pipelines.corpus --config configs/corpus.yaml",
    )
    parser.add_argument("--config", default="configs/corpus.yaml", help="pipeline YAML (default: %(default)s)")
    parser.add_argument("--out", help="output directory or URI (overrides output.dir)")
    parser.add_argument("--num-cpus", type=int, help="cores for a local Ray instance (default: all)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. execution.batch_size=512 (repeatable)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="discard the state of an interrupted run in <out>/.run instead of resuming it",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own logs and Ray Data's status on the console (otherwise in <out>/logs)",
    )
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
    try:
        files = list_inputs(config)
    except FileNotFoundError as error:
        print(f"corpus: input error: {error}", file=sys.stderr)
        return 2
    logs = None if args.verbose else log_dir(config.output.dir)
    if logs:
        quiet_ray(logs)
    init_ray(config.execution.num_cpus, config.execution.object_store_memory, log_to_driver=args.verbose)
    stats = run(config, fresh=args.fresh, files=files)
    from pipelines.report.page import write_html_report  # matplotlib: not for the workers that import this module

    report = write_html_report(config.output.dir)
    kept = stats["kept_documents"] / stats["input_documents"] if stats["input_documents"] else 0
    print_summary(
        [
            f"corpus: {stats['input_documents']} documents in, {stats['kept_documents']} kept ({kept:.1%}), "
            f"{stats['removed_documents']} removed, {stats['quarantined_documents']} quarantined",
            f"        {stats['bytes_out'] / 2**20:.1f} of {stats['bytes_in'] / 2**20:.1f} MiB of text kept, "
            f"in {stats['seconds']} s",
            f"report: {report}" + (f"   (Ray's logs: {logs})" if logs else ""),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
