"""The stage interface every corpus stage implements.

A stage receives an Arrow table (one batch of documents), adds its signal
columns, and for documents it removes sets `drop_stage` / `drop_reason`.
Documents are never physically removed inside the DAG: they flow on, marked,
so the output writer can route each one to `docs/`, `rejects/` or
`quarantine/` and every input document stays accounted for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Columns every batch carries from ingest on (see docs/ARCHITECTURE.md).
DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("metadata", pa.string()),  # JSON object, "{}" when absent
        ("drop_stage", pa.string()),  # null while the document is kept
        ("drop_reason", pa.string()),
    ]
)
QUARANTINE_STAGE = "ingest"


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; the executor sizes its actors with it."""

    num_cpus: float = 1.0
    memory_mb: int = 0


class Stage(ABC):
    """One step of the corpus DAG.

    Subclasses declare `name`, the columns they `reads`, the columns they
    `writes` (with Arrow types, so batches keep one schema even when every
    row was already dropped) and the `resources` a worker needs.
    """

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ("text",)
    writes: ClassVar[dict[str, pa.DataType]] = {}
    resources: ClassVar[Resources] = Resources()
    # Signals that stats.json and the report summarise: integer columns summed over documents
    # (PII replacements) and scores in [0, 1] counted in ten bins (the quality score).
    summed: tuple[str, ...] = ()
    binned: tuple[str, ...] = ()

    def setup(self) -> None:
        """Load models or other heavy state; called once per worker, not per batch."""

    @abstractmethod
    def process(self, batch: pa.Table) -> pa.Table:
        """Return `batch` with this stage's columns added (and drops marked)."""


class Filter(Stage):
    """A stage that scores documents and removes some of them.

    Scoring (`score`, signal columns) is split from the keep decision
    (`decide`, one reason or None per document) as in NeMo Curator, so
    thresholds can be studied from the signals without rerunning. Only
    documents still alive are scored; dropped ones get nulls in new columns
    and keep their values in existing ones (a filter may rewrite `text`).
    """

    @abstractmethod
    def score(self, batch: pa.Table) -> dict[str, list]:
        """Signal values for every row of `batch` (all rows are alive)."""

    @abstractmethod
    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        """Drop reason for each row, or None to keep it."""

    def process(self, batch: pa.Table) -> pa.Table:
        alive = pc.is_null(batch["drop_stage"]).to_numpy(zero_copy_only=False)
        live = batch.filter(alive) if not alive.all() else batch
        signals = self.score(live) if live.num_rows else {name: [] for name in self.writes}
        reasons = self.decide(live, signals) if live.num_rows else []
        columns = {column: (signals[column], dtype) for column, dtype in self.writes.items()}
        return write_alive(batch, alive, columns, self.name, reasons)


def write_alive(batch: pa.Table, alive: np.ndarray, columns: dict[str, tuple[list, pa.DataType]],
                stage: str, reasons: list[str | None]) -> pa.Table:
    """Write per-alive-row `columns` and drop `reasons` back into the full batch.

    New columns get nulls on rows that were already dropped; existing columns
    (e.g. `text`) keep those rows' values."""
    for column, (values, dtype) in columns.items():
        full = scatter(values, alive, dtype)
        if column in batch.column_names and not alive.all():
            full = pc.if_else(pa.array(alive), full, batch[column])
        batch = set_column(batch, column, full)
    return mark_dropped(batch, stage, scatter(reasons, alive, pa.string()))


def scatter(values: list, mask: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """Place `values` at the True positions of `mask`, nulls elsewhere."""
    if mask.all():
        return pa.array(values, type=dtype)
    full: list = [None] * len(mask)
    for position, value in zip(np.flatnonzero(mask), values):
        full[position] = value
    return pa.array(full, type=dtype)


def set_column(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = batch.schema.get_field_index(name)
    if index >= 0:
        return batch.set_column(index, name, values)
    return batch.append_column(name, values)


def mark_dropped(batch: pa.Table, stage: str, reasons: pa.Array) -> pa.Table:
    """Set drop_stage/drop_reason where `reasons` is non-null (and the row was alive)."""
    newly = pc.and_(pc.is_valid(reasons), pc.is_null(batch["drop_stage"]))
    if not pc.any(newly).as_py():
        return batch
    stage_col = pc.if_else(newly, pa.scalar(stage), batch["drop_stage"])
    reason_col = pc.if_else(newly, reasons, batch["drop_reason"])
    batch = set_column(batch, "drop_stage", stage_col)
    return set_column(batch, "drop_reason", reason_col)


class PerLanguage:
    """Thresholds with per-language overrides: `params[lang]` gives the dataclass to use.

    Rules tuned on English (word lengths, stop words, line lengths) need other
    values for Chinese or Japanese; configs override them per ISO 639-1 code.
    """

    def __init__(self, defaults, per_lang: dict[str, dict] | None = None):
        self.defaults = defaults
        self.by_lang = {}
        for lang, overrides in (per_lang or {}).items():
            try:
                self.by_lang[lang] = replace(defaults, **overrides)
            except TypeError as error:
                raise ValueError(
                    f"per_lang.{lang}: {error}; valid keys: {sorted(f.name for f in fields(defaults))}"
                ) from None

    def __getitem__(self, lang: str | None):
        return self.by_lang.get(lang, self.defaults)


def make_params(cls, params: dict, stage: str):
    """Build the threshold dataclass `cls` from config values, with a clear error on typos."""
    try:
        return cls(**params)
    except TypeError as error:
        raise ValueError(f"stage {stage!r}: {error}; valid keys: {sorted(f.name for f in fields(cls))}") from None


def column_or_none(batch: pa.Table, name: str) -> list:
    """A column as a list, or Nones when an earlier stage that writes it is not in the pipeline
    (e.g. `lang` without language ID: language-aware filters then use their defaults)."""
    if name in batch.column_names:
        return batch[name].to_pylist()
    return [None] * batch.num_rows


def document_batch(texts: list[str], sources: list[str] | None = None) -> pa.Table:
    """A batch of plain texts in the document schema (for benchmarks, tests, notebooks)."""
    n = len(texts)
    return pa.table(
        {
            "id": [f"doc/{i}" for i in range(n)],
            "source": sources or ["default"] * n,
            "text": texts,
            "url": [None] * n,
            "metadata": ["{}"] * n,
            "drop_stage": [None] * n,
            "drop_reason": [None] * n,
        },
        schema=DOCUMENT_SCHEMA,
    )


@dataclass(frozen=True)
class RunContext:
    """What a global stage needs to know about the run."""

    source_priority: dict[str, int]  # lower wins when duplicates compete
    batch_size: int = 256
    seed: int = 0

    def rank_key(self, source: str, doc_id: str) -> str:
        """Total order on documents that no worker count or block order can change."""
        return f"{self.source_priority.get(source, DEFAULT_PRIORITY):08d}|{doc_id}"


DEFAULT_PRIORITY = 100


class GlobalStage(ABC):
    """A stage that must see the whole dataset (deduplication).

    It receives the Ray dataset (already materialised: it is read more than
    once) and returns it with its columns added and drops marked. Its
    `stats` are merged into stats.json under the stage's name.
    """

    name: ClassVar[str]
    writes: ClassVar[dict[str, pa.DataType]] = {}
    resources: ClassVar[Resources] = Resources()

    def __init__(self) -> None:
        self.stats: dict = {}

    @abstractmethod
    def apply(self, ds, context: RunContext):
        """Return `ds` (a ray.data.Dataset) with this stage applied."""
