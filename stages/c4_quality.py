"""C4 rules (Raffel et al. 2020, datatrove's C4QualityFilter): drops lines that
do not end in terminal punctuation, have too few words, mention javascript or
cookie/privacy policies; drops documents with lorem ipsum, curly brackets or
too few sentences. It rewrites `text` to the kept lines, as C4 does.
Terminal punctuation and sentence splitting handle CJK full stops."""

from __future__ import annotations

import pyarrow as pa
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, POLICY_SUBSTRINGS
from pydantic import NonNegativeInt

from stages.base import Filter, LanguageRules, PerLanguage, column_or_none, make_params
from stages.text import END_PUNCTUATION, sentences_of, words_of


class C4QualityParams(LanguageRules):
    min_num_sentences: NonNegativeInt = 5
    min_words_per_line: NonNegativeInt = 3
    max_word_length: int = 1000  # 0 = no limit
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class C4Quality(Filter):
    name = "c4_quality"
    reads = ("text", "lang")
    writes = {"c4_lines_removed": pa.int32(), "text": pa.string()}

    def __init__(self, **params):
        self.params = PerLanguage(make_params(C4QualityParams, params))

    def score(self, batch: pa.Table) -> dict[str, list]:
        kept_texts, removed, reasons = [], [], []
        for text, lang in zip(batch["text"].to_pylist(), column_or_none(batch, "lang")):
            kept, n_removed, reason = self._clean(text, lang)
            kept_texts.append(kept)
            removed.append(n_removed)
            reasons.append(reason)
        return {"c4_lines_removed": removed, "text": kept_texts, "_reason": reasons}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        return signals["_reason"]

    def _clean(self, text: str, lang: str | None) -> tuple[str, int, str | None]:
        p = self.params[lang]
        kept_lines, n_sentences, n_removed = [], 0, 0
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            words = words_of(line, lang)
            # Same order of checks as datatrove/C4: a line is dropped at its first failing check.
            if p.max_word_length > 0 and any(len(w) > p.max_word_length for w in words):
                n_removed += 1
                continue
            if p.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if p.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(("...", "…"))):
                n_removed += 1
                continue
            if len(words) < p.min_words_per_line:
                n_removed += 1
                continue
            lowered = line.lower()
            if p.filter_lorem_ipsum and "lorem ipsum" in lowered:
                return text, n_removed, "lorem_ipsum"
            if p.filter_javascript and "javascript" in lowered:
                n_removed += 1
                continue
            if p.filter_curly_bracket and "{" in line:
                return text, n_removed, "curly_bracket"
            if p.filter_policy and any(s in lowered for s in POLICY_SUBSTRINGS):
                n_removed += 1
                continue
            n_sentences += len(sentences_of(line))
            kept_lines.append(line)
        if n_sentences < p.min_num_sentences:
            return text, n_removed, "too_few_sentences"
        return "\n".join(kept_lines), n_removed, None
