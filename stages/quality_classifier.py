"""Classifier quality filter: a fastText model scores how much a document
looks like reference text (Wikipedia, curated sources) rather than raw web
text, as GPT-3 and DCLM filter Common Crawl.

Adds `quality_score` (probability of the reference class, null for documents
in a language the model was not trained on) and removes documents below the
source's threshold (`low_quality_score`). A threshold is given directly or
as a fraction to keep (`top_fraction`): an exact per-source top fraction
needs a global pass over the corpus, so the fraction is turned into a fixed
threshold with the score quantiles of held-out raw web documents measured
when the model was trained (`calibration` in its metadata). Batches are
then decided independently, and a source distributed like that web sample
keeps about that fraction.

The default model (models/quality/) is trained on the embedded sample by
`python -m pipelines.quality_model --config configs/quality_model.yaml`.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow as pa
from pydantic import Field, PositiveInt, model_validator

from stages.base import Filter, Resources, Strict, column_or_none, make_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "quality", "quality.ftz")
POSITIVE, NEGATIVE = "__label__hq", "__label__lq"
_SPACE = re.compile(r"\s+")


def normalise(text: str, max_chars: int = 10_000) -> str:
    """One line of lower-cased text, as the model is trained and queried (fastText reads lines)."""
    return _SPACE.sub(" ", text[:max_chars]).strip().lower()


def metadata_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".json"


class SourceCut(Strict):
    """A source's own cut: one of threshold, top_fraction."""

    threshold: float | None = None
    top_fraction: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> SourceCut:
        if (self.threshold is None) == (self.top_fraction is None):
            raise ValueError("takes one of threshold, top_fraction")
        return self


class QualityParams(Strict):
    model: str | None = None  # fastText model; its metadata is the .json beside it
    threshold: float = 0.5
    # instead of threshold: keep about this fraction of web-like text
    top_fraction: float | None = Field(None, gt=0, le=1)
    per_source: dict[str, SourceCut] = {}
    max_chars: PositiveInt = 10_000  # scored prefix: the score is stable long before, and it bounds cost


class QualityClassifier(Filter):
    name = "quality_classifier"
    reads = ("text", "lang", "source")
    writes = {"quality_score": pa.float32()}
    binned = ("quality_score",)
    resources = Resources(num_cpus=1, memory_mb=300)

    def __init__(self, **params):
        self.params = make_params(QualityParams, params)
        self.model_path = self.params.model or DEFAULT_MODEL
        with open(metadata_path(self.model_path), encoding="utf-8") as handle:
            self.metadata = json.load(handle)
        self.default_threshold = self._threshold(self.params.threshold, self.params.top_fraction)
        self.thresholds = {
            source: self._threshold(rule.threshold, rule.top_fraction)
            for source, rule in self.params.per_source.items()
        }
        self.model = None

    def _threshold(self, threshold: float | None, top_fraction: float | None) -> float:
        if top_fraction is None:
            return threshold
        quantiles = self.metadata["calibration"]["quantiles"]
        return float(np.interp(1 - top_fraction, np.linspace(0, 1, len(quantiles)), quantiles))

    def setup(self) -> None:
        import fasttext

        self.model = fasttext.load_model(self.model_path)

    def score(self, batch: pa.Table) -> dict[str, list]:
        if self.model is None:
            self.setup()
        languages = set(self.metadata["languages"])
        texts = [normalise(t, self.params.max_chars) for t in batch["text"].to_pylist()]
        labels, probs = self.model.predict(texts, k=2)
        scores = [float(dict(zip(ls, ps)).get(POSITIVE, 0.0)) for ls, ps in zip(labels, probs)]
        # Unknown language (no `lang` column) is scored; a language the model never saw is not.
        langs = column_or_none(batch, "lang")
        return {
            "quality_score": [
                min(s, 1.0) if lang is None or lang in languages else None for s, lang in zip(scores, langs)
            ]
        }

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        reasons = []
        for source, score in zip(batch["source"].to_pylist(), signals["quality_score"]):
            threshold = self.thresholds.get(source, self.default_threshold)
            reasons.append("low_quality_score" if score is not None and score < threshold else None)
        return reasons
