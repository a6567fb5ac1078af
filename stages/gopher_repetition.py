"""Gopher repetition rules (Rae et al. 2021): duplicated lines/paragraphs and
repeated n-grams. The counting functions are datatrove's; words come from the
language-aware segmentation in `stages.text`."""

from __future__ import annotations

import pyarrow as pa
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)
from pydantic import PositiveInt

from stages.base import Filter, Fraction, LanguageRules, PerLanguage, column_or_none, make_params
from stages.text import analyse


class GopherRepetitionParams(LanguageRules):
    dup_line_frac: Fraction = 0.3
    dup_para_frac: Fraction = 0.3
    dup_line_char_frac: Fraction = 0.2
    dup_para_char_frac: Fraction = 0.2
    top_n_grams: tuple[tuple[PositiveInt, Fraction], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))  # (n, max fraction)
    dup_n_grams: tuple[tuple[PositiveInt, Fraction], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11),
                                                             (10, 0.10))


class GopherRepetition(Filter):
    name = "gopher_repetition"
    reads = ("text", "lang")
    writes = {"dup_line_frac": pa.float32()}

    def __init__(self, **params):
        self.params = PerLanguage(make_params(GopherRepetitionParams, params))

    def score(self, batch: pa.Table) -> dict[str, list]:
        fracs = []
        for text in batch["text"].to_pylist():
            lines = [line for line in text.split("\n") if line.strip()]
            fracs.append(find_duplicates(lines)[0] / len(lines) if lines else 0.0)
        return {"dup_line_frac": fracs}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        return [
            self._reason(text, lang, frac)
            for text, lang, frac in zip(batch["text"].to_pylist(), column_or_none(batch, "lang"), signals["dup_line_frac"])
        ]

    def _reason(self, text: str, lang: str | None, dup_line_frac: float) -> str | None:
        p = self.params[lang]
        analysis = analyse(text, lang)
        paragraphs = analysis.paragraphs
        n_chars = len(text)
        if not paragraphs or not n_chars:
            return None
        dup_paras, dup_para_chars = find_duplicates(paragraphs)
        if dup_paras / len(paragraphs) > p.dup_para_frac:
            return "dup_para_frac"
        if dup_para_chars / n_chars > p.dup_para_char_frac:
            return "dup_para_char_frac"
        if dup_line_frac > p.dup_line_frac:
            return "dup_line_frac"
        if find_duplicates(analysis.nonempty_lines)[1] / n_chars > p.dup_line_char_frac:
            return "dup_line_char_frac"
        words = analysis.words
        for n, threshold in p.top_n_grams:
            n_grams = get_n_grams(words, n)
            if n_grams and find_top_duplicate(n_grams) / n_chars > threshold:
                return f"top_{n}_gram"
        for n, threshold in p.dup_n_grams:
            if find_all_duplicate(words, n) / n_chars > threshold:
                return f"duplicated_{n}_n_grams"
        return None
