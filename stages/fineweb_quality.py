"""FineWeb quality rules (Penedo et al. 2024, datatrove's FineWebQualityFilter):
line punctuation, short lines, duplicated-line characters, list-like documents.
Terminal punctuation covers CJK; line-length limits are per language."""

from __future__ import annotations

import pyarrow as pa
from pydantic import NonNegativeFloat, NonNegativeInt

from stages.base import Filter, Fraction, LanguageRules, PerLanguage, make_params
from stages.text import END_PUNCTUATION, Analysis, analyses, duplicates


class FineWebQualityParams(LanguageRules):
    line_punct_thr: Fraction = 0.12
    short_line_thr: Fraction = 0.67
    short_line_length: NonNegativeInt = 30
    char_duplicates_ratio: Fraction = 0.01
    new_line_ratio: NonNegativeFloat = 0.3


class FineWebQuality(Filter):
    name = "fineweb_quality"
    reads = ("text", "lang")
    writes = {"line_punct_ratio": pa.float32()}

    def __init__(self, **params):
        self.params = PerLanguage(make_params(FineWebQualityParams, params))

    def score(self, batch: pa.Table) -> dict[str, list]:
        docs = analyses(batch)
        ratios = []
        for doc in docs:
            lines = doc.nonempty_lines
            ratios.append(sum(line.rstrip().endswith(END_PUNCTUATION) for line in lines) / len(lines) if lines else 0.0)
        return {"line_punct_ratio": ratios}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        return [self._reason(doc, punct) for doc, punct in zip(analyses(batch), signals["line_punct_ratio"])]

    def _reason(self, doc: Analysis, line_punct_ratio: float) -> str | None:
        p = self.params[doc.lang]
        lines = doc.nonempty_lines
        if not lines:
            return "empty"
        if line_punct_ratio < p.line_punct_thr:
            return "line_punct_ratio"
        if sum(len(line) <= p.short_line_length for line in lines) / len(lines) > p.short_line_thr:
            return "short_line_ratio"
        text = doc.text
        newlines = text.count("\n")
        if duplicates(lines)[1] / max(len(text) - newlines, 1) > p.char_duplicates_ratio:
            return "char_dup_ratio"
        if newlines / max(len(doc.words), 1) > p.new_line_ratio:
            return "list_ratio"
        return None
