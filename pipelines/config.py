"""Pipeline configuration: YAML in, validated dataclasses out.

Errors name the offending key, so a typo in a config fails before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from stages import build_stage
from stages.ingest import FORMATS, SourceConfig


@dataclass(frozen=True)
class StageSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "out"
    rejects_text: bool = True  # keep the text of removed documents in rejects/


@dataclass(frozen=True)
class ExecutionConfig:
    batch_size: int = 256  # documents per Arrow batch handed to a stage chain
    num_cpus: int | None = None  # cores for a local Ray instance (default: all)
    workers: int | None = None  # max parallel stage-chain actors (default: cluster CPUs)


@dataclass(frozen=True)
class CorpusConfig:
    sources: dict[str, SourceConfig]
    stages: list[StageSpec]
    output: OutputConfig = OutputConfig()
    execution: ExecutionConfig = ExecutionConfig()
    seed: int = 0
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def digest(self) -> str:
        """Hash of the resolved config, recorded with every output."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _only_known(section: str, values: dict, cls) -> dict:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {sorted(unknown)}; valid: {sorted(known - {'name', 'raw'})}")
    return values


def parse_config(raw: dict) -> CorpusConfig:
    if not isinstance(raw, dict):
        raise ValueError("config must be a mapping with `sources` and `stages`")
    _only_known("config", raw, CorpusConfig)
    sources_raw = raw.get("sources") or {}
    if not sources_raw:
        raise ValueError("config: `sources` is empty; name at least one input source")
    sources = {}
    for name, spec in sources_raw.items():
        spec = dict(spec or {})
        _only_known(f"sources.{name}", spec, SourceConfig)
        paths = spec.get("paths")
        if isinstance(paths, str):
            spec["paths"] = [paths]
        if not spec.get("paths"):
            raise ValueError(f"sources.{name}: `paths` is required (globs or directories)")
        fmt = spec.get("format", "auto")
        if fmt != "auto" and fmt not in FORMATS:
            raise ValueError(f"sources.{name}.format: {fmt!r} is not one of auto, {', '.join(FORMATS)}")
        sources[name] = SourceConfig(name=name, **spec)
    stages = []
    for position, entry in enumerate(raw.get("stages") or []):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"stages[{position}]: expected a mapping with `name` (and optional `params`)")
        _only_known(f"stages[{position}]", entry, StageSpec)
        spec = StageSpec(entry["name"], dict(entry.get("params") or {}))
        build_stage(spec.name, spec.params)  # validate now, not inside a Ray worker
        stages.append(spec)
    output = OutputConfig(**_only_known("output", raw.get("output") or {}, OutputConfig))
    execution = ExecutionConfig(**_only_known("execution", raw.get("execution") or {}, ExecutionConfig))
    return CorpusConfig(sources, stages, output, execution, int(raw.get("seed", 0)), raw)


def load_config(path: str, overrides: dict[str, Any] | None = None) -> CorpusConfig:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_config(raw)
