"""Gopher repetition rules (Rae et al. 2021): duplicated lines/paragraphs and
repeated n-grams. The quantities are datatrove's (GopherRepetitionFilter's
counting functions; tests compare them); words come from the language-aware
segmentation in `stages.text`. n-grams are counted as arrays of 64-bit keys
(`Analysis.word_keys`, `run_keys`), sorted, rather than as joined strings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import PositiveInt

from stages.base import Filter, Fraction, LanguageRules, PerLanguage, make_params
from stages.text import Analysis, analyses, duplicates


class GopherRepetitionParams(LanguageRules):
    dup_line_frac: Fraction = 0.3
    dup_para_frac: Fraction = 0.3
    dup_line_char_frac: Fraction = 0.2
    dup_para_char_frac: Fraction = 0.2
    top_n_grams: tuple[tuple[PositiveInt, Fraction], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))  # (n, max fraction)
    dup_n_grams: tuple[tuple[PositiveInt, Fraction], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )


_NGRAM_BASE = np.uint64(0xD6E8FEB86659FD93)  # combines word keys into n-gram keys (odd: a bijection mod 2^64)


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of equal values of the sorted array `ordered` starts, and its length."""
    bounds = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1], [True])))
    return bounds[:-1], np.diff(bounds)


def top_ngram_chars(analysis: Analysis, n: int) -> int | None:
    """Characters of the most frequent word n-gram (words joined by spaces) times its count, the
    first such n-gram on ties; None without n words. datatrove's `find_top_duplicate(get_n_grams(words, n))`."""
    word_keys = analysis.word_keys
    count = len(word_keys) - n + 1
    if count <= 0:
        return None
    keys = word_keys[:count]
    for k in range(1, n):
        keys = keys * _NGRAM_BASE + word_keys[k : k + count]
    ordered = np.sort(keys)
    starts, lengths = _runs(ordered)
    most = int(lengths.max())
    at = int(np.flatnonzero(np.isin(keys, ordered[starts[lengths == most]]))[0]) if most > 1 else 0
    offsets = analysis.word_offsets
    return int(offsets[at + n] - offsets[at] + n - 1) * most


def duplicated_ngram_chars(analysis: Analysis, n: int) -> int:
    """Characters of the n-grams (words joined without spaces) that repeat an earlier one, scanning
    left to right and jumping over a repeat: datatrove's `find_all_duplicate(words, n)`."""
    offsets = analysis.word_offsets
    count = len(offsets) - n
    if count <= 0:
        return 0
    starts, ends = offsets[:count], offsets[n:]
    keys = analysis.run_keys(starts, ends)
    ordered = np.sort(keys)
    run_starts, lengths = _runs(ordered)
    if len(lengths) == count:
        return 0
    # Only n-grams that occur more than once can be found again, so the scan visits only those.
    positions = np.flatnonzero(np.isin(keys, ordered[run_starts[lengths > 1]]))
    seen, resume, chars = set(), 0, 0
    for position, key in zip(positions.tolist(), keys[positions].tolist()):
        if position < resume:
            continue
        if key in seen:
            chars += int(ends[position] - starts[position])
            resume = position + n
        else:
            seen.add(key)
    return chars


class GopherRepetition(Filter):
    name = "gopher_repetition"
    reads = ("text", "lang")
    writes = {"dup_line_frac": pa.float32()}

    def __init__(self, **params):
        self.params = PerLanguage(make_params(GopherRepetitionParams, params))

    def score(self, batch: pa.Table) -> dict[str, list]:
        docs = analyses(batch)
        fracs = []
        for doc in docs:
            lines = doc.nonempty_lines
            fracs.append(duplicates(lines)[0] / len(lines) if lines else 0.0)
        return {"dup_line_frac": fracs}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        return [self._reason(doc, frac) for doc, frac in zip(analyses(batch), signals["dup_line_frac"])]

    def _reason(self, doc: Analysis, dup_line_frac: float) -> str | None:
        p = self.params[doc.lang]
        paragraphs = doc.paragraphs
        n_chars = len(doc.text)
        if not paragraphs or not n_chars:
            return None
        dup_paras, dup_para_chars = duplicates(paragraphs)
        if dup_paras / len(paragraphs) > p.dup_para_frac:
            return "dup_para_frac"
        if dup_para_chars / n_chars > p.dup_para_char_frac:
            return "dup_para_char_frac"
        if dup_line_frac > p.dup_line_frac:
            return "dup_line_frac"
        if duplicates(doc.nonempty_lines)[1] / n_chars > p.dup_line_char_frac:
            return "dup_line_char_frac"
        for n, threshold in p.top_n_grams:
            top_chars = top_ngram_chars(doc, n)
            if top_chars is not None and top_chars / n_chars > threshold:
                return f"top_{n}_gram"
        for n, threshold in p.dup_n_grams:
            if duplicated_ngram_chars(doc, n) / n_chars > threshold:
                return f"duplicated_{n}_n_grams"
        return None
