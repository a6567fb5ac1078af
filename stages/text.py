"""Language-aware text measurements shared by the heuristic filters.

datatrove's filters each re-tokenise a document with spaCy/NLTK, and its
default tokenizer keeps a whole Chinese clause as one "word", so the Gopher
rules reject every Chinese document. Here a document is segmented once
(`analyses`: one `Analysis` per document, shared by every filter of the chain)
and words are counted the way each script needs:
- Chinese: jieba's segmentation (offline, dictionary ships in the wheel), computed mostly
  by jieba-rs with the same words (`_chinese_line_words`);
- Japanese, Thai, Lao, Khmer, Burmese (no spaces between words): one word
  per character, so thresholds for these are set per language in configs;
- everything else: runs of word characters, as a whitespace+punctuation
  splitter would give.
An analysis also holds its words as arrays (lengths, code points, 64-bit keys of
any run of characters), so that filters count with numpy instead of looping in
Python over words, n-grams or characters.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import deque
from collections.abc import Callable
from functools import cache, cached_property, lru_cache
from itertools import chain

import numpy as np
import pyarrow as pa
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION, TERMINAL_PUNCTUATION

from stages.base import column_or_none

# Languages written without spaces between words (ISO 639-1): Chinese, Japanese, Thai, Lao,
# Khmer, Burmese. Korean is not one: it spaces its words. Chinese words come from jieba, the
# others' from runs of letters (CHARACTER_WORD_LANGS); n-gram stages shingle them by characters.
UNSPACED_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my"})
CHARACTER_WORD_LANGS = UNSPACED_LANGS - {"zh"}
# Their scripts, for text whose language is not known (an eval set): kana, CJK ideographs,
# Thai, Lao, Myanmar, Khmer (character ranges, for regex classes).
UNSPACED_SCRIPT_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
_UNSPACED_SCRIPT = re.compile(f"[{UNSPACED_SCRIPT_CHARS}]")


def is_unspaced(text: str, lang: str | None) -> bool:
    """Whether `text` is written without spaces: by its language, or when that is unknown, by
    its script (over 30 % of its first 2,000 characters)."""
    if lang:
        return lang in UNSPACED_LANGS
    sample = text[:2000]
    return len(_UNSPACED_SCRIPT.findall(sample)) > 0.3 * max(len(sample), 1)


# Terminal punctuation for sentence/line ends in any script (datatrove's set
# covers CJK full stops, Devanagari danda, etc.), plus closing quotes.
END_PUNCTUATION = tuple(TERMINAL_PUNCTUATION) + ('"', "'", "”", "」", "』", "’")

_WORD = re.compile(r"\w+", re.UNICODE)
_CHAR_WORD = re.compile(r"[^\W\d_]|\d+", re.UNICODE)


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(60)  # silence its "Building prefix dict" banner
    jieba.initialize()
    return jieba


# Chinese words are jieba's (`jieba.lcut`, its default mode: the most probable route through the
# dictionary, an HMM for the stretches it does not know), computed mostly by jieba-rs (`rjieba`),
# the same algorithm with the same dictionary and HMM in Rust. jieba is pure Python: ~0.7 MB/s of
# Chinese text per core, more than half of the row stages' time on a mix with 30 % Chinese.
# jieba-rs alone is ~6x faster but gives other words on 17 % of the lines of ../shared/data's
# Chinese text, all outside runs of the ideographs U+4E00..U+9FD5, for three reasons:
# - ASCII. Both cut text into blocks of ideographs and [a-zA-Z0-9+#&._%-] and hand each unknown
#   stretch of a block (consecutive one-character steps of its route) to the HMM, which cuts its
#   non-ideograph parts at matches of [a-zA-Z0-9]+(?:\.\d+)?%?; jieba-rs's pattern has an
#   unescaped dot, so `1.1.1` or `2013-2021` stay whole. Here each ASCII run reaches jieba-rs as
#   one character, `_ASCII_STAND_IN`, which is in no dictionary word: like the run, it is a
#   one-character step that joins its neighbours' stretch and splits it at the same places. Its
#   words are cut here with jieba's pattern.
# - Dictionary words that contain ASCII (T恤, X光, C语言, AT&T, C++: 70 of 349,046), which the
#   stand-in would break: a line containing one is cut by jieba.
# - Ideographs outside U+4E00..U+9FD5 (extension A, compatibility ideographs, planes 2 and 3):
#   jieba-rs puts them in its blocks, jieba cuts them one by one and so starts a new block, which
#   can change its neighbours' words. A line containing one is cut by jieba. (`_JIEBA_RS_ONLY_HAN`
#   holds exactly the characters that jieba-rs 0.11 treats so, found by cutting "1" + c + "1"
#   with `rjieba.cut_all` for every code point c.)
# Tested equal to jieba on every line of the Chinese text in ../shared/data and tests/fixtures
# (60,673 lines; docs/BENCHMARKS.md), and ~6x faster.
_JIEBA_ASCII = "a-zA-Z0-9+#&._%\\-"  # the ASCII of jieba's blocks
_JIEBA_HAN = "\u4e00-\u9fd5"
_ASCII_RUN = re.compile(f"[{_JIEBA_ASCII}]+")
_ASCII_STAND_IN = "0"
# The words of an ASCII run that our word filter keeps: jieba's pattern's matches, and the
# punctuation between them where it holds a "_".
_ASCII_WORD = re.compile(r"[a-zA-Z0-9]+(?:\.\d+)?%?|[+#&.%\-]*_[+#&._%\-]*")
_JIEBA_RS_ONLY_HAN = re.compile(
    "[\u3400-\u4dbf\u9fd6-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f]"
)


@lru_cache(maxsize=1)
def _chinese_segmenters() -> tuple[Callable[[str], list[str]], Callable[[str], re.Match | None]]:
    """jieba-rs's cut, and a search for jieba's dictionary words that contain ASCII and fit in
    its blocks (the others can never be one of its words). Loads jieba too (~1 s), with the other
    dictionaries at a worker's first Chinese text rather than in the batch whose line first needs it."""
    import rjieba
    from jieba import dt

    with dt.get_dict_file() as handle:
        entries = handle.read().decode("utf-8")
    block = _JIEBA_HAN + _JIEBA_ASCII
    words = re.findall(f"^([{block}]*[{_JIEBA_ASCII}][{block}]*) ", entries, re.M)
    _jieba()
    return rjieba.cut, re.compile("|".join(map(re.escape, sorted(set(words))))).search


def _jieba_words(line: str) -> list[str]:
    return list(filter(_WORD.search, _jieba().lcut(line)))


def _chinese_line_words(lines: list[str], text: str) -> list[list[str]]:
    """jieba's words of each line of `text` (its `lines`) that `_WORD` keeps."""
    cut, jieba_only = _chinese_segmenters()
    if not (_JIEBA_RS_ONLY_HAN.search(text) or jieba_only(text)):
        return _jieba_rs_words(lines, text, cut)
    by_jieba = [bool(_JIEBA_RS_ONLY_HAN.search(line) or jieba_only(line)) for line in lines]
    others = [line for line, jieba in zip(lines, by_jieba) if not jieba]
    others_words = iter(_jieba_rs_words(others, "\n".join(others), cut) if others else [])
    return [_jieba_words(line) if jieba else next(others_words) for line, jieba in zip(lines, by_jieba)]


def _jieba_rs_words(lines: list[str], text: str, cut: Callable[[str], list[str]]) -> list[list[str]]:
    """`_chinese_line_words` by jieba-rs, for a text without dictionary words with ASCII or
    ideographs outside U+4E00..U+9FD5."""
    try:
        # jieba-rs's tokens here are ideograph words or single characters (never "_"), so `_WORD`
        # keeps those that are alphanumeric.
        runs = _ASCII_RUN.findall(text)
        if not runs:
            return [list(filter(str.isalnum, cut(line))) for line in lines]
        run_words = map(_ASCII_WORD.findall, runs)
        out = []
        for line in _ASCII_RUN.sub(_ASCII_STAND_IN, "\n".join(lines)).split("\n"):
            words = list(filter(str.isalnum, cut(line)))
            if _ASCII_STAND_IN in words:
                restored, start = [], 0
                for end, word in enumerate(words):
                    if word == _ASCII_STAND_IN:
                        restored += words[start:end]
                        restored += next(run_words)
                        start = end + 1
                words = restored + words[start:]
            out.append(words)
        return out
    except UnicodeEncodeError:  # a lone surrogate, which Rust strings cannot hold (Arrow text has none)
        return [_jieba_words(line) for line in lines]


def line_words_of(text: str, lang: str | None) -> list[list[str]]:
    """Words of each line of `text.splitlines()`, segmented according to `lang` (an ISO 639-1
    code). No word spans a line break (none is a word character, and jieba cuts at them), so the
    lines' words together are the text's."""
    lines = text.splitlines()
    if lang == "zh":
        return _chinese_line_words(lines, text) if lines else []
    findall = (_CHAR_WORD if lang in CHARACTER_WORD_LANGS else _WORD).findall
    return [findall(line) for line in lines]


def words_of(text: str, lang: str | None) -> list[str]:
    """Words of `text`, segmented according to `lang` (an ISO 639-1 code)."""
    return list(chain.from_iterable(line_words_of(text, lang)))


# Latin terminal punctuation ends a sentence only before whitespace (not in "3.14", "e.g.x").
_SENTENCE = re.compile(r"(?:[^\n.!?。！？]|[.!?]+(?!\s|$))*(?:[.!?]+(?=\s|$)|[。！？]+|\n|$)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: text up to terminal punctuation (Latin or CJK)
    or a newline, surrounding whitespace excluded."""
    spans = []
    for match in _SENTENCE.finditer(text):
        sentence = match.group()
        stripped = sentence.lstrip()
        if stripped:
            start = match.start() + len(sentence) - len(stripped)
            spans.append((start, start + len(stripped.rstrip())))
    return spans


# simplify_text: datatrove's `simplify_text` with its default config, same output (tested), 2-3x
# faster. The dedup stages run it on every document and sentence, and datatrove's version spends
# most of its time in a per-character Python loop (diacritics) and a dict-based str.translate
# (punctuation); here these are a regex character class, a skip for ASCII text (nothing to strip)
# and a deletion table (built on first use: scanning every code point takes ~0.2 s, which every
# Ray worker importing this module would otherwise pay).
_PUNCTUATION = re.compile("[" + "".join(re.escape(ch) for ch in sorted(set(PUNCTUATION))) + "]")


@lru_cache(maxsize=1)
def _nonspacing_marks() -> dict[int, None]:
    return dict.fromkeys(cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Mn")


def simplify_text(text: str, normalize_digits: bool = True) -> str:
    """Lower case, digit runs -> "0" (unless not `normalize_digits`), punctuation -> space,
    whitespace runs -> one space, NFD without combining marks (datatrove's `simplify_text`,
    default config): what exact and sentence dedup and decontamination compare."""
    text = text.lower()
    if normalize_digits:
        text = NUMBERS_PATTERN.sub("0", text)
    text = " ".join(_PUNCTUATION.sub(" ", text).split())
    if not text.isascii():
        text = unicodedata.normalize("NFD", text).translate(_nonspacing_marks()).strip()
    return text


def duplicates(items: list[str]) -> tuple[int, int]:
    """(number, total length) of the items equal to an earlier one: datatrove's `find_duplicates`."""
    unique = set(items)
    return len(items) - len(unique), sum(map(len, items)) - sum(map(len, unique))


@cache
def char_table(predicate: Callable[[str], bool]) -> np.ndarray:
    """`predicate` of every code point, as a boolean array to index with code points."""
    return np.fromiter(map(predicate, map(chr, range(sys.maxunicode + 1))), bool, sys.maxunicode + 1)


# Keys of character runs: polynomial hashes of code points modulo 2^64 (numpy's uint64 arithmetic
# wraps), key(s) = sum_j s[j] * B^-j. With the prefix sums P of codes[j] * B^-j, the run
# codes[a:b] has the key (P[b] - P[a]) * B^a, wherever it is. Equal runs get equal keys; unequal
# runs of natural text collide with probability about 2^-64 per pair (the known weakness of
# power-of-two moduli needs Thue-Morse strings of thousands of characters).
_KEY_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2^64
_KEY_BASE_INVERSE = pow(_KEY_BASE, -1, 2**64)
_powers: dict[int, np.ndarray] = {}


def _power_table(base: int, size: int) -> np.ndarray:
    """base^0 .. base^(size-1) modulo 2^64 (at least; grown by doubling and kept)."""
    table = _powers.get(base)
    if table is None or len(table) < size:
        length = max(size, 2 * len(table) if table is not None else 1 << 16)
        table = np.full(length, base, np.uint64)
        table[0] = 1
        _powers[base] = table = np.cumprod(table)
    return table


_PARAGRAPH_BREAK = re.compile(r"\n{2,}")


class Analysis:
    """Views of one document, each computed on first use and shared by every filter."""

    def __init__(self, text: str, lang: str | None):
        self.text, self.lang = text, lang

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @cached_property
    def nonempty_lines(self) -> list[str]:
        return [line for line in self.lines if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p for p in _PARAGRAPH_BREAK.split(self.text.strip()) if p.strip()]

    @cached_property
    def line_words(self) -> list[list[str]]:
        """The words of each line of `text.splitlines()` (the segmentation)."""
        return line_words_of(self.text, self.lang)

    @cached_property
    def words(self) -> list[str]:
        return list(chain.from_iterable(self.line_words))

    @cached_property
    def word_offsets(self) -> np.ndarray:
        """Word i is `codes[offsets[i]:offsets[i + 1]]`."""
        offsets = np.zeros(len(self.words) + 1, np.int64)
        np.cumsum(np.fromiter(map(len, self.words), np.int64, len(self.words)), out=offsets[1:])
        return offsets

    @cached_property
    def codes(self) -> np.ndarray:
        """Code points of the words, concatenated."""
        return np.frombuffer("".join(self.words).encode("utf-32-le", "surrogatepass"), np.uint32)

    @cached_property
    def _key_prefix(self) -> np.ndarray:
        inverse_powers = _power_table(_KEY_BASE_INVERSE, len(self.codes))
        prefix = np.zeros(len(self.codes) + 1, np.uint64)
        np.cumsum(self.codes * inverse_powers[: len(self.codes)], out=prefix[1:])
        return prefix

    def run_keys(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """64-bit keys of `codes[starts[i]:ends[i]]`: equal runs of characters, equal keys."""
        prefix = self._key_prefix
        return (prefix[ends] - prefix[starts]) * _power_table(_KEY_BASE, len(prefix))[starts]

    @cached_property
    def word_keys(self) -> np.ndarray:
        return self.run_keys(self.word_offsets[:-1], self.word_offsets[1:])


class _RecentAnalyses:
    """The analyses of the texts asked for by the last few calls: each filter asks once per batch,
    so the next filters of the chain find the analyses the first one made. Memory stays at a few
    batches whatever their size, and a batch costs one dict look-up per document."""

    def __init__(self, calls: int):
        self.calls: deque[dict] = deque(maxlen=calls)

    def get(self, texts: list[str], langs: list[str | None]) -> list[Analysis]:
        found: dict[tuple[str, str | None], Analysis] = {}
        for key in zip(texts, langs):
            if key not in found:
                found[key] = next((call[key] for call in reversed(self.calls) if key in call), None) or Analysis(*key)
        self.calls.append(found)
        return [found[key] for key in zip(texts, langs)]

    def add(self, analyses: list[Analysis]) -> None:
        self.calls.append({(a.text, a.lang): a for a in analyses})


_recent = _RecentAnalyses(calls=3)


def analyses(batch: pa.Table) -> list[Analysis]:
    """The analysis of each document of `batch` (its `text` in its `lang`), shared with the filters
    before and after in the chain."""
    return _recent.get(batch["text"].to_pylist(), column_or_none(batch, "lang"))


def forget_analyses() -> None:
    """Drop the shared analyses (a benchmark's timed pass then computes them again)."""
    _recent.calls.clear()


def share(analyses: list[Analysis]) -> None:
    """Make these analyses (of texts a stage wrote, with parts already computed) found by the next
    stages' `analyses`."""
    _recent.add(analyses)
