"""Corpus stages, one per module. `STAGES` maps the names used in YAML configs
to their classes; modules are imported only when a pipeline uses them."""

from __future__ import annotations

import importlib
import inspect

from stages.base import ConfigError, GlobalStage, Stage

STAGES = {
    "langid": "stages.langid:LanguageId",
    "gopher_quality": "stages.gopher_quality:GopherQuality",
    "gopher_repetition": "stages.gopher_repetition:GopherRepetition",
    "c4_quality": "stages.c4_quality:C4Quality",
    "fineweb_quality": "stages.fineweb_quality:FineWebQuality",
    "keywords": "stages.keywords:Keywords",
    "quality_classifier": "stages.quality_classifier:QualityClassifier",
    "pii": "stages.pii:PiiScrubber",
    "exact_dedup": "stages.exact_dedup:ExactDedup",
    "minhash_dedup": "stages.minhash_dedup:MinHashDedup",
    "sentence_dedup": "stages.sentence_dedup:SentenceDedup",
    "decontaminate": "stages.decontaminate:Decontaminate",
}


def stage_class(name: str) -> type[Stage | GlobalStage]:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; available: {', '.join(sorted(STAGES))}")
    module, _, cls = STAGES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_stage(name: str, params: dict | None = None) -> Stage | GlobalStage:
    """Instantiate a stage from its config entry. Wrong parameters raise a ConfigError
    naming each one (paths relative to `params`)."""
    cls = stage_class(name)
    if params and not inspect.signature(cls).parameters:
        raise ConfigError([("", f"{name} takes no parameters")])
    return cls(**(params or {}))
