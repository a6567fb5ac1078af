"""Gopher quality rules (Rae et al. 2021, as in datatrove's GopherQualityFilter),
measured per language: words come from `stages.text`, so Chinese is counted in
jieba words and gets its own stop words and word-length bounds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import NonNegativeFloat, NonNegativeInt

from stages.base import Filter, Fraction, LanguageRules, PerLanguage, make_params
from stages.text import Analysis, analyses, char_table

# datatrove's English list, plus the commonest Chinese function words.
STOP_WORDS = {
    "en": {"the", "be", "to", "of", "and", "that", "have", "with"},
    "zh": {"的", "了", "是", "在", "和", "有", "我", "不", "这", "也", "就", "都", "与", "或"},
}


class GopherQualityParams(LanguageRules):
    min_doc_words: NonNegativeInt = 50
    max_doc_words: NonNegativeInt = 100_000
    min_avg_word_length: NonNegativeFloat = 3.0
    max_avg_word_length: NonNegativeFloat = 10.0
    max_symbol_word_ratio: NonNegativeFloat = 0.1
    max_bullet_lines_ratio: Fraction = 0.9
    max_ellipsis_lines_ratio: Fraction = 0.3
    min_alpha_words_ratio: Fraction = 0.8
    min_stop_words: NonNegativeInt = 2  # only where STOP_WORDS has a list for the language


BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "※", "·", "-", "*", "+", "–")


class GopherQuality(Filter):
    name = "gopher_quality"
    reads = ("text", "lang")
    writes = {"gopher_words": pa.int32(), "gopher_avg_word_length": pa.float32()}

    def __init__(self, **params):
        self.params = PerLanguage(make_params(GopherQualityParams, params))

    def score(self, batch: pa.Table) -> dict[str, list]:
        docs = analyses(batch)
        counts, lengths = [], []
        for doc in docs:
            n_words = len(doc.words)
            counts.append(n_words)
            lengths.append(int(doc.word_offsets[-1]) / n_words if n_words else 0.0)
        return {"gopher_words": counts, "gopher_avg_word_length": lengths}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        return [
            self._reason(doc, n_words, avg_len)
            for doc, n_words, avg_len in zip(
                analyses(batch), signals["gopher_words"], signals["gopher_avg_word_length"]
            )
        ]

    def _reason(self, doc: Analysis, n_words: int, avg_len: float) -> str | None:
        p = self.params[doc.lang]
        if n_words < p.min_doc_words:
            return "gopher_short_doc"
        if n_words > p.max_doc_words:
            return "gopher_long_doc"
        if not p.min_avg_word_length <= avg_len <= p.max_avg_word_length:
            return "gopher_avg_word_length"
        text = doc.text
        if (text.count("#") + text.count("...") + text.count("…")) / n_words > p.max_symbol_word_ratio:
            return "gopher_symbol_word_ratio"
        lines = doc.nonempty_lines
        if sum(line.lstrip().startswith(BULLETS) for line in lines) > p.max_bullet_lines_ratio * len(lines):
            return "gopher_bullet_lines_ratio"
        if sum(line.rstrip().endswith(("...", "…")) for line in lines) > p.max_ellipsis_lines_ratio * len(lines):
            return "gopher_ellipsis_lines_ratio"
        if words_with_letters(doc) < p.min_alpha_words_ratio * n_words:
            return "gopher_alpha_words_ratio"
        stop_words = STOP_WORDS.get(doc.lang or "")
        if stop_words is not None and sum(map(stop_words.__contains__, map(str.lower, doc.words))) < p.min_stop_words:
            return "gopher_few_stop_words"
        return None


def words_with_letters(doc: Analysis) -> int:
    """Words with at least one alphabetic character (datatrove counts them among the words that are
    not all punctuation; a punctuation character is never alphabetic, so that changes nothing)."""
    if not doc.words:
        return 0
    has_letter = np.logical_or.reduceat(char_table(str.isalpha)[doc.codes], doc.word_offsets[:-1])
    return int(np.count_nonzero(has_letter))
