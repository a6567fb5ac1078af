"""The stage interface every corpus stage implements.

A stage receives an Arrow table (one batch of documents), adds its signal
columns, and for documents it removes sets `drop_stage` / `drop_reason`.
Documents are never physically removed inside the DAG: they flow on, marked,
so the output writer can route each one to `docs/`, `rejects/` or
`quarantine/` and every input document stays accounted for.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from typing_extensions import Self

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
QUARANTINE_STAGE = "quarantine"  # drop_stage of quarantined rows: malformed input, or a stage failed on them


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

    def setup(self) -> None:  # noqa: B027 (an optional hook: most stages have nothing to load)
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

    def score(self, batch: pa.Table) -> dict[str, list]:
        """Signal values for every row of `batch` (all rows are alive)."""
        raise NotImplementedError

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        """Drop reason for each row, or None to keep it."""
        raise NotImplementedError

    def judge(self, batch: pa.Table) -> tuple[dict[str, list], list[str | None]]:
        """Signals and drop reasons of every row of `batch` (all alive): `score`, then `decide`.
        A filter whose reasons come out of the pass that computes its signals (c4_quality's line
        cleaning) overrides this instead of those two."""
        signals = self.score(batch)
        return signals, self.decide(batch, signals)

    def process(self, batch: pa.Table) -> pa.Table:
        alive = pc.is_null(batch["drop_stage"]).to_numpy(zero_copy_only=False)
        live = batch.filter(alive) if not alive.all() else batch
        signals, reasons = self.judge(live) if live.num_rows else ({name: [] for name in self.writes}, [])
        columns = {column: (signals[column], dtype) for column, dtype in self.writes.items()}
        return write_alive(batch, alive, columns, self.name, reasons)


def write_alive(
    batch: pa.Table,
    alive: np.ndarray,
    columns: dict[str, tuple[list, pa.DataType]],
    stage: str,
    reasons: list[str | None],
) -> pa.Table:
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


# ------------------------------------------------------------------------------ parameters and configs
# Stage parameters and the YAML configs of every entry point are pydantic models: values are checked
# against their types (a number written as a string is converted), ranges and unknown keys at any depth,
# and every problem comes back at once as a ConfigError naming its YAML path.

T = TypeVar("T")
Fraction = Annotated[float, Field(ge=0, le=1)]


class ConfigError(ValueError):
    """Invalid configuration: every problem found, each a (YAML path, message) pair."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"{path}: {message}" if path else message for path, message in problems]
        super().__init__(lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines))

    def within(self, path: str) -> ConfigError:
        """The same problems with their paths under `path` (e.g. `stages[2] (pii).params`)."""
        return ConfigError([(_join_path(path, inner), message) for inner, message in self.problems])


def _join_path(path: str, inner: str) -> str:
    if not path or not inner:
        return path or inner
    return f"{path}{inner}" if inner.startswith("[") else f"{path}.{inner}"


def _yaml_path(loc: tuple) -> str:
    """('stages', 0, 'params') -> 'stages[0].params'."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).removeprefix(".")


def _empty_is_default(cls, data: Any) -> Any:
    """An empty section (`params:` with nothing after it) means all defaults."""
    return {} if data is None else data


STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # unknown keys refused; a number is a valid str


class Strict(BaseModel):
    """Base of stage parameters and corpus config sections: typed, unknown keys refused, immutable."""

    model_config = ConfigDict(**STRICT, frozen=True)
    _empty = model_validator(mode="before")(_empty_is_default)


section = pydantic_dataclass(frozen=True, config=STRICT)  # decorates subclasses of Section


@section
class Section:
    """Base of config sections that stay dataclasses (dataclasses.asdict and replace work on them),
    with the same checks as Strict."""

    _empty = model_validator(mode="before")(_empty_is_default)


def validated(kind: type[T], data: Any, path: str = "") -> T:
    """`data` (parsed YAML) as a `kind`: a Strict model, a Section, or a dict or list of them.
    Raises a ConfigError listing every problem, with paths under `path`."""
    try:
        return TypeAdapter(kind).validate_python(data)
    except ValidationError as error:
        raise ConfigError(
            [(_join_path(path, _yaml_path(e["loc"])), _message(kind, e)) for e in error.errors()]
        ) from None


make_params = validated  # a stage's parameters from its config entry


def _message(kind: Any, error: dict) -> str:
    given = error.get("input")
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown key; valid keys: {', '.join(_keys_at(kind, error['loc'][:-1]))}"
    if error["type"] in ("model_type", "dataclass_type", "dict_type"):
        return f"expected a mapping, got {given!r}"
    if error["type"] == "list_type" and isinstance(given, str):
        return f"expected a list, got the string {given!r}: write [{given}]"
    if error["type"] in ("missing", "missing_argument"):
        return "required"
    return error["msg"].removeprefix("Value error, ")


def _fields(kind: Any) -> dict[str, Any]:
    """Field name -> type, of a model or dataclass type (empty for any other type)."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {name: info.annotation for name, info in kind.model_fields.items()}
    return typing.get_type_hints(kind) if dataclasses.is_dataclass(kind) else {}


def _keys_at(kind: Any, loc: tuple) -> list[str]:
    """The keys accepted by the mapping that `loc` leads to, inside a value of type `kind`."""
    owner = kind
    for part in (*loc, None):
        kind = owner if kind is Self else kind
        if typing.get_origin(kind) in (Union, UnionType):  # X | None
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        fields = _fields(kind)
        if part is None:
            return sorted(fields)
        if fields:
            owner, kind = kind, fields.get(part)
        elif typing.get_origin(kind) in (dict, list):
            kind = typing.get_args(kind)[-1]
    return []


R = TypeVar("R", bound=BaseModel)


def overridden(defaults: R, overrides: BaseModel) -> R:
    """`defaults` with the values that the config gave `overrides`."""
    return defaults.model_copy(update={name: getattr(overrides, name) for name in overrides.model_fields_set})


class LanguageRules(Strict):
    """Rules that a config can change per language: `per_lang: {zh: {<rule>: value, ...}}`
    overrides any of the rules for documents whose `lang` is zh."""

    per_lang: dict[str, Self] = {}

    @field_validator("per_lang")
    @classmethod
    def _one_level(cls, per_lang: dict) -> dict:
        if any(rules.per_lang for rules in per_lang.values()):
            raise ValueError("per_lang cannot contain per_lang")
        return per_lang


class PerLanguage(Generic[R]):
    """Rules with per-language overrides: `params[lang]` gives the rules to use.

    Rules tuned on English (word lengths, stop words, line lengths) need other
    values for Chinese or Japanese; configs override them per ISO 639-1 code.
    """

    def __init__(self, defaults: R, per_lang: dict[str, Any] | None = None):
        """`per_lang`: config values, `defaults.per_lang` when None."""
        overrides = defaults.per_lang
        if per_lang is not None:
            overrides = validated(dict[str, type(defaults)], per_lang, "per_lang")
        self.defaults = defaults
        self.by_lang = {lang: overridden(defaults, rules) for lang, rules in overrides.items()}

    def __getitem__(self, lang: str | None) -> R:
        return self.by_lang.get(lang, self.defaults)


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
    """A stage that must see the whole dataset (deduplication), in two steps.

    `find` reads the dataset on the cluster and returns *marks*: a Ray dataset with one row per
    document to change (its `id`, then the stage's columns, `marks_schema`); nothing whose size
    grows with the corpus may come back to the driver. `mark` then applies marks to a batch of
    documents, given (at least) the marks of those documents. The pipeline groups the marks by
    input file and marks each file's rows as it reads them (pipelines/corpus.py); `stages.dedup.
    mark_table` does both steps for a table in memory. `stats` (small) are merged into
    stats.json under the stage's name.
    """

    name: ClassVar[str]
    writes: ClassVar[dict[str, pa.DataType]] = {}
    marks_schema: ClassVar[pa.Schema]
    resources: ClassVar[Resources] = Resources()

    def __init__(self) -> None:
        self.stats: dict = {}

    @abstractmethod
    def find(self, ds, context: RunContext):
        """The marks (a ray.data.Dataset of `marks_schema` rows) of `ds`; sets `stats`."""

    @abstractmethod
    def mark(self, batch: pa.Table, marks: pa.Table) -> pa.Table:
        """`batch` with this stage's columns added and its marked documents changed or dropped."""
