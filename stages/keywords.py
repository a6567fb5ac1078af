"""Keyword filter with per-language word lists (as C4's bad-words filter).

Lists come from the config, inline (`words`) or from files (`files`, one
entry per line, `#` starts a comment line), keyed by ISO 639-1 code; `"*"` applies to every language.
Space-delimited languages match whole words, case-insensitively; Chinese,
Japanese, Thai etc. match substrings, since they have no word boundaries.
"""

from __future__ import annotations

import re

import pyarrow as pa
from pydantic import NonNegativeInt

from stages.base import Filter, Strict, column_or_none, make_params
from stages.text import UNSPACED_LANGS

# Korean spaces its words but attaches particles to them (도박은, 도박을): its keywords match
# inside words, as those of languages without spaces do.
SUBSTRING_LANGS = UNSPACED_LANGS | {"ko"}


class KeywordsParams(Strict):
    words: dict[str, list[str]] | None = None  # language (or "*") -> words
    files: dict[str, str] | None = None  # language (or "*") -> file of words
    max_matches: NonNegativeInt = 0  # a document with more matches is removed


class Keywords(Filter):
    name = "keywords"
    reads = ("text", "lang")
    writes = {"keyword_matches": pa.int32()}

    def __init__(self, **params):
        p = make_params(KeywordsParams, params)
        lists: dict[str, set[str]] = {
            lang: {w.strip().lower() for w in ws if w.strip()} for lang, ws in (p.words or {}).items()
        }
        for lang, path in (p.files or {}).items():
            with open(path, encoding="utf-8") as handle:
                lists.setdefault(lang, set()).update(
                    line.strip().lower() for line in handle if line.strip() and not line.startswith("#")
                )
        common = lists.pop("*", set())
        self.max_matches = p.max_matches
        self.patterns = {lang: self._compile(lang, ws | common) for lang, ws in lists.items()}
        self.default_pattern = self._compile(None, common)

    @staticmethod
    def _compile(lang: str | None, words: set[str]) -> re.Pattern | None:
        if not words:
            return None  # an empty alternation would match at every position of every text
        alternation = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
        if lang in SUBSTRING_LANGS:
            return re.compile(alternation)
        return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")

    def score(self, batch: pa.Table) -> dict[str, list]:
        counts = []
        for text, lang in zip(batch["text"].to_pylist(), column_or_none(batch, "lang")):
            pattern = self.patterns.get(lang, self.default_pattern)
            counts.append(len(pattern.findall(text.lower())) if pattern else 0)
        return {"keyword_matches": counts}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        return ["keyword_match" if n > self.max_matches else None for n in signals["keyword_matches"]]
