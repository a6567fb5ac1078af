"""Pipeline configuration: YAML in, validated models out.

Every problem is reported at once, each naming its YAML path (sources, sections, and
each stage's parameters checked by the stage itself), before Ray starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from stages import build_stage, stage_class
from stages.base import DEFAULT_PRIORITY, ConfigError, GlobalStage, Stage, Strict, validated
from stages.ingest import FORMATS, MAX_BATCH_BYTES, MAX_DOC_BYTES, SourceConfig
from tokenizer.config import read_yaml


class Source(Strict):
    """One named input source: the fields of stages.ingest.SourceConfig but its name (the key)."""

    paths: list[str] = Field(min_length=1)  # globs or directories; a single string is one path
    format: Literal[("auto", *FORMATS)] = "auto"
    text_field: str = "text"
    id_field: str | None = None
    url_field: str = "url"
    priority: int = DEFAULT_PRIORITY

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, paths: Any) -> Any:
        return [paths] if isinstance(paths, str) else paths


class StageSpec(Strict):
    name: str  # a key of stages.STAGES, or `package.module:Class`
    params: dict[str, Any] = {}  # checked by the stage's constructor

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        stage_class(name)
        return name

    @field_validator("params", mode="before")
    @classmethod
    def _empty(cls, params: Any) -> Any:
        return {} if params is None else params


class OutputConfig(Strict):
    dir: str = "out"
    rejects_text: bool = True  # keep the text of removed documents in rejects/


class IngestConfig(Strict):
    max_doc_bytes: PositiveInt = MAX_DOC_BYTES  # UTF-8 bytes of one document's text; a longer one is quarantined
    max_batch_bytes: PositiveInt = MAX_BATCH_BYTES  # bytes of text in one batch read from a file


class ExecutionConfig(Strict):
    batch_size: PositiveInt = 256  # documents per Arrow batch handed to a stage chain
    num_cpus: PositiveInt | None = None  # cores for a local Ray instance (default: all)
    workers: PositiveInt | None = None  # max parallel stage-chain actors (default: cluster CPUs)
    max_retries: NonNegativeInt = 3  # Ray task retries
    max_restarts: int = Field(3, ge=-1)  # stage actor restarts (-1: unlimited)
    max_task_retries: int = Field(3, ge=-1)  # retries of a task on a restarted actor (-1: unlimited)
    object_store_memory: PositiveInt | None = None  # bytes, for a local Ray instance (default: Ray's)


# Settings that change how a run executes but never what it writes: left out of the digest.
EXECUTION_ONLY = {"num_cpus", "workers", "max_retries", "max_restarts", "max_task_retries", "object_store_memory"}


class CorpusFile(Strict):
    """The YAML file (configs/corpus.yaml)."""

    seed: int = 0
    sources: dict[str, Source] = Field(min_length=1)
    stages: list[StageSpec] = []
    output: OutputConfig = OutputConfig()
    ingest: IngestConfig = IngestConfig()
    execution: ExecutionConfig = ExecutionConfig()


@dataclass(frozen=True)
class CorpusConfig:
    sources: dict[str, SourceConfig]
    stages: list[StageSpec]
    output: OutputConfig
    ingest: IngestConfig
    execution: ExecutionConfig
    seed: int
    raw: dict = field(compare=False, repr=False)  # the YAML as read, overrides applied
    # The stages, built once while validating their parameters (building one may read files).
    built_stages: list[Stage | GlobalStage] = field(default_factory=list, compare=False, repr=False)

    @property
    def digest(self) -> str:
        """What identifies a run's output: a hash of the validated config with every default filled
        in (seed, sources, stages with their parameters as written, ingest, batch_size, rejects_text),
        without output.dir and the execution settings that cannot change the output (EXECUTION_ONLY).
        The same in every process: keys sorted, plain JSON values."""
        resolved = {
            "seed": self.seed,
            "sources": {name: dataclasses.asdict(source) for name, source in self.sources.items()},
            "stages": [stage.model_dump() for stage in self.stages],
            "output": self.output.model_dump(exclude={"dir"}),
            "ingest": self.ingest.model_dump(),
            "execution": self.execution.model_dump(exclude=EXECUTION_ONLY),
        }
        return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_config(raw: dict) -> CorpusConfig:
    """The validated config; a ConfigError lists every problem, stage parameters included."""
    problems = []
    try:
        config = validated(CorpusFile, raw)
    except ConfigError as error:
        config, problems = None, error.problems
    built = []
    if isinstance(raw, dict) and isinstance(raw.get("stages"), list):
        sources = raw["sources"] if isinstance(raw.get("sources"), dict) else None
        for position, entry in enumerate(raw["stages"]):
            stage, stage_errors = checked_stage(position, entry, sources)
            built.append(stage)
            problems += stage_errors
    if problems:
        raise ConfigError(problems)
    return CorpusConfig(
        sources={name: SourceConfig(name=name, **source.model_dump()) for name, source in config.sources.items()},
        stages=config.stages,
        output=config.output,
        ingest=config.ingest,
        execution=config.execution,
        seed=config.seed,
        raw=raw,
        built_stages=built,
    )


def checked_stage(
    position: int, entry: Any, sources: dict | None
) -> tuple[Stage | GlobalStage | None, list[tuple[str, str]]]:
    """stages[position] built, and what is wrong with its parameters: found by building it, and
    `per_source` rules naming no source (when `sources` is known)."""
    params = (entry.get("params") or {}) if isinstance(entry, dict) else None
    try:
        if not (isinstance(params, dict) and isinstance(entry.get("name"), str) and stage_class(entry["name"])):
            return None, []  # not a stage entry: reported by the schema
    except ValueError:
        return None, []  # an unknown stage: reported by the schema
    path = f"stages[{position}] ({entry['name']}).params"
    problems = []
    rules = params.get("per_source")
    if isinstance(rules, dict) and sources is not None:
        problems += [
            (f"{path}.per_source.{name}", f"no such source; sources: {', '.join(sources)}")
            for name in rules
            if name not in sources
        ]
    try:
        return build_stage(entry["name"], params), problems
    except ConfigError as error:
        problems += error.within(path).problems
    except (ValueError, OSError) as error:  # a stage's own check, e.g. a file it reads
        problems.append((path, str(error)))
    return None, problems


def load_config(path: str, overrides: dict[str, Any] | None = None) -> CorpusConfig:
    """Read the YAML file at `path` and apply `overrides` ({"execution.batch_size": 512, ...})."""
    return parse_config(read_yaml(path, overrides))
