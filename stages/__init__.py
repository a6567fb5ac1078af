"""Corpus stages, one per module. `STAGES` maps the names used in YAML configs
to their classes; modules are imported only when a pipeline uses them. A name of
the form `package.module:Class` loads a stage of the user's own (it must be
importable on every Ray worker)."""

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
    "perplexity": "stages.perplexity:Perplexity",
    "pii": "stages.pii:PiiScrubber",
    "exact_dedup": "stages.exact_dedup:ExactDedup",
    "minhash_dedup": "stages.minhash_dedup:MinHashDedup",
    "sentence_dedup": "stages.sentence_dedup:SentenceDedup",
    "decontaminate": "stages.decontaminate:Decontaminate",
}


def stage_class(name: str) -> type[Stage | GlobalStage]:
    target = STAGES.get(name, name if ":" in name else None)
    if target is None:
        raise ValueError(
            f"unknown stage {name!r}; available: {', '.join(sorted(STAGES))}, "
            "or `package.module:Class` for a stage of your own"
        )
    module, _, attribute = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"stage {name!r}: cannot load it: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, (Stage, GlobalStage))):
        raise ValueError(f"stage {name!r}: {target} is not a Stage or GlobalStage subclass")
    return cls


def build_stage(name: str, params: dict | None = None) -> Stage | GlobalStage:
    """Instantiate a stage from its config entry. Wrong parameters raise a ConfigError naming
    each one (paths relative to `params`): a stage taking `**params` checks them with
    stages.base.make_params; for any other constructor, its signature is checked here."""
    cls, params = stage_class(name), params or {}
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as error:
        raise ConfigError([("", f"{error}; valid keys: {', '.join(signature.parameters) or 'none'}")]) from None
    return cls(**params)
