"""C4 rules (Raffel et al. 2020, datatrove's C4QualityFilter): drops lines that
do not end in terminal punctuation, have too few words, mention javascript or
cookie/privacy policies; drops documents with lorem ipsum, curly brackets or
too few sentences. It rewrites `text` to the kept lines, as C4 does.
Terminal punctuation and sentence splitting handle CJK full stops. Words come
from the document's segmentation in `stages.text`, and the rewritten text's
words are handed on to the next filters."""

from __future__ import annotations

import pyarrow as pa
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, POLICY_SUBSTRINGS
from pydantic import NonNegativeInt

from stages.base import Filter, LanguageRules, PerLanguage, make_params
from stages.text import END_PUNCTUATION, Analysis, analyses, sentence_spans, share, words_of


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

    def judge(self, batch: pa.Table) -> tuple[dict[str, list], list[str | None]]:
        kept_texts, removed, reasons, new_analyses = [], [], [], []
        for doc in analyses(batch):
            kept, n_removed, reason = self._clean(doc)
            kept_texts.append(kept.text)
            removed.append(n_removed)
            reasons.append(reason)
            if kept is not doc:
                new_analyses.append(kept)
        share(new_analyses)
        return {"c4_lines_removed": removed, "text": kept_texts}, reasons

    def _clean(self, doc: Analysis) -> tuple[Analysis, int, str | None]:
        """The analysis of the text made of the kept lines (with their words), the number of lines
        removed and the reason to drop the document (then with its own analysis)."""
        p = self.params[doc.lang]
        kept_lines, kept_words, n_sentences, n_removed = [], [], 0, 0
        for line, words in zip(doc.text.splitlines(), doc.line_words):
            original = line = line.strip()  # the same words
            if not line:
                continue
            # Same order of checks as datatrove/C4: a line is dropped at its first failing check.
            if p.max_word_length > 0 and words and max(map(len, words)) > p.max_word_length:
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
                return doc, n_removed, "lorem_ipsum"
            if p.filter_javascript and "javascript" in lowered:
                n_removed += 1
                continue
            if p.filter_curly_bracket and "{" in line:
                return doc, n_removed, "curly_bracket"
            if p.filter_policy and any(s in lowered for s in POLICY_SUBSTRINGS):
                n_removed += 1
                continue
            n_sentences += len(sentence_spans(line))
            kept_lines.append(line)
            kept_words.append(words if line == original else None)  # removing "[1]" can join two words
        if n_sentences < p.min_num_sentences:
            return doc, n_removed, "too_few_sentences"
        return rewritten(doc, kept_lines, kept_words), n_removed, None


def rewritten(doc: Analysis, lines: list[str], line_words: list[list[str] | None]) -> Analysis:
    """The analysis of `lines` joined as a text, with the words known for each line (None: not known)."""
    text = "\n".join(lines)
    if text == doc.text:
        return doc
    kept = Analysis(text, doc.lang)
    kept.words = [
        word
        for line, words in zip(lines, line_words)
        for word in (words if words is not None else words_of(line, doc.lang))
    ]
    return kept
