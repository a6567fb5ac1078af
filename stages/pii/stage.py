"""The `pii` stage: replaces PII in `text` with typed placeholders and counts them per type."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import NonNegativeInt, field_validator, model_validator

from stages.base import Fraction, Resources, Stage, Strict, make_params, set_column
from stages.pii.candidates import CJK_LETTERS, candidate_bounds, candidate_windows
from stages.pii.lookalikes import plausible
from stages.pii.presidio import (
    LANGUAGE,
    NER_ENTITIES,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
    ner_analyzer,
    pattern_analyzer,
)
from stages.pii.recognizers import PATTERN_ENTITIES, build_recognizers

PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "IP_ADDRESS": "<IP_ADDRESS>",
    "US_SSN": "<US_SSN>",
    "CN_RESIDENT_ID": "<ID_NUMBER>",
    "PERSON": "<PERSON>",
    "LOCATION": "<LOCATION>",
}


class CustomRecognizer(Strict):
    """{name: EMPLOYEE_ID, regex: 'EMP-\\d{6}', placeholder: '<EMPLOYEE_ID>', score: 1.0, context: [..]}"""

    name: str
    regex: str
    placeholder: str | None = None  # default <NAME>
    score: Fraction = 1.0
    context: list[str] | None = None  # words that raise the score when near

    @model_validator(mode="before")
    @classmethod
    def _named(cls, spec: Any) -> Any:
        if isinstance(spec, dict) and not {"name", "regex"} <= set(spec):
            raise ValueError("needs name and regex (optional: placeholder, score, context)")
        return spec

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return regex


class PiiParams(Strict):
    entities: list[str] = list(PATTERN_ENTITIES)
    placeholders: dict[str, str] = {}  # entity type -> replacement
    custom: list[CustomRecognizer] = []
    score_threshold: Fraction = 0.4  # presidio scores: weak patterns reach it only with a context word
    # National formats libphonenumber validates without a context word. Presidio's default adds IL,
    # IN, CA (same plan as US) and BR, whose permissive plans accept year pairs such as "1987.2004";
    # each region costs as much as all other recognizers together.
    phone_regions: list[str] = ["US", "GB", "DE", "FR"]
    window_chars: NonNegativeInt = 32  # text analysed on each side of a candidate (context words live there)
    prefilter: bool = True  # false: presidio over whole documents (slow; the benchmark's reference)
    # Also replace loopback, private, link-local, multicast and documentation IP addresses
    # (127.0.0.1, 192.168.0.1 in every network how-to; they identify nobody on their own).
    private_ips: bool = False
    ner_model: str | None = None  # installed spaCy model name or path for PERSON/LOCATION
    ner_langs: list[str] = ["en"]  # `lang` values NER runs on

    @field_validator("entities")
    @classmethod
    def _known(cls, entities: list[str]) -> list[str]:
        if set(entities) - set(PATTERN_ENTITIES):
            raise ValueError(
                f"unknown entities {sorted(set(entities) - set(PATTERN_ENTITIES))}; available: {PATTERN_ENTITIES}"
            )
        return entities

    @property
    def types(self) -> list[str]:
        """Every entity type replaced: the pattern entities, the custom ones, NER's."""
        return self.entities + [spec.name for spec in self.custom] + (NER_ENTITIES if self.ner_model else [])

    @model_validator(mode="after")
    def _placeholders_known(self) -> PiiParams:
        if set(self.placeholders) - set(self.types):
            raise ValueError(f"placeholders for unknown types {sorted(set(self.placeholders) - set(self.types))}")
        return self


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    score: float


class PiiScrubber(Stage):
    """Replaces PII in `text` with typed placeholders; `pii_<type>` counts what was replaced.

    Every row is scrubbed, also rows an earlier stage removed: their text is written to
    rejects/ (and quarantine/), which are outputs too."""

    name = "pii"
    reads = ("text", "lang")
    resources = Resources(num_cpus=1, memory_mb=500)

    def __init__(self, **params):
        self.params = make_params(PiiParams, params)
        p = self.params
        self.custom = [(spec.name, re.compile(spec.regex), spec.score, spec.context) for spec in p.custom]
        types = p.types
        self.placeholders = {t: PLACEHOLDERS.get(t, f"<{t}>") for t in types}
        self.placeholders.update({spec.name: spec.placeholder for spec in p.custom if spec.placeholder is not None})
        self.placeholders.update(p.placeholders)
        self.writes = {"text": pa.string(), **{f"pii_{t.lower()}": pa.int32() for t in types}}
        self.summed = tuple(name for name in self.writes if name != "text")
        self.analyzer = None
        self.ner_analyzer = None

    def setup(self) -> None:
        import tldextract

        # Recognizers log the text they fail to validate: keep PII out of worker logs.
        logging.getLogger("presidio-analyzer").setLevel(logging.CRITICAL)
        extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        recognizers = build_recognizers(self.params.entities, self.params.phone_regions, extract)
        recognizers += [
            PatternRecognizer(
                name, patterns=[Pattern(name, regex.pattern, score)], context=context, name=f"custom:{name}"
            )
            for name, regex, score, context in self.custom
        ]
        self.analyzer = pattern_analyzer(recognizers)
        if self.params.ner_model:
            self.ner_analyzer = ner_analyzer(self.params.ner_model)

    def process(self, batch: pa.Table) -> pa.Table:
        if self.analyzer is None:
            self.setup()
        texts = batch["text"]
        langs = batch["lang"].to_pylist() if "lang" in batch.column_names else [None] * batch.num_rows
        bounded = self.params.prefilter and not self.custom and not self.ner_analyzer
        bounds = candidate_bounds(texts) if bounded else [(0, None)] * batch.num_rows
        counts = {t: [0] * batch.num_rows for t in self.placeholders}
        out = []
        for row, (text, lang, bound) in enumerate(zip(texts.to_pylist(), langs, bounds)):
            if not text or bound is None:
                out.append(text)
                continue
            spans = self.find(text, lang, *bound)
            for span in spans:
                counts[span.entity][row] += 1
            out.append(self.replace(text, spans))
        batch = set_column(batch, "text", pa.array(out, pa.string()))
        for entity, values in counts.items():
            batch = set_column(batch, f"pii_{entity.lower()}", pa.array(values, pa.int32()))
        return batch

    def find(self, text: str, lang: str | None = None, first: int = 0, last: int | None = None) -> list[Span]:
        """Non-overlapping PII spans of `text`, in order; candidates are looked for from `first`
        to `last` (see `candidate_bounds`)."""
        if self.analyzer is None:
            self.setup()
        spans = []
        everything = set(self.params.entities) | {name for name, *_ in self.custom}
        last = len(text) if last is None else last
        windows = (
            candidate_windows(
                text,
                first,
                last,
                everything,
                [(name, regex) for name, regex, *_ in self.custom],
                self.params.window_chars,
            )
            if self.params.prefilter
            else [(0, len(text), everything)]
        )
        for start, end, entities in windows:
            window = CJK_LETTERS.sub(" ", text[start:end])
            for result in self.analyzer.analyze(
                window, language=LANGUAGE, entities=sorted(entities), score_threshold=self.params.score_threshold
            ):
                spans.append(self._span(result, start))
        if self.ner_analyzer and (lang is None or lang in self.params.ner_langs):
            spans += [
                self._span(r, 0) for r in self.ner_analyzer.analyze(text, language=LANGUAGE, entities=NER_ENTITIES)
            ]
        spans = [s for s in spans if plausible(s.entity, text, s.start, s.end, self.params.private_ips)]
        return resolve_overlaps(spans)

    @staticmethod
    def _span(result: RecognizerResult, offset: int) -> Span:
        return Span(result.start + offset, result.end + offset, result.entity_type, result.score)

    def replace(self, text: str, spans: list[Span]) -> str:
        parts, position = [], 0
        for span in spans:
            parts += [text[position : span.start], self.placeholders[span.entity]]
            position = span.end
        parts.append(text[position:])
        return "".join(parts)


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the highest-scoring, then longest, span where spans overlap (a card number also
    parses as a phone number; a validated card wins)."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= k.start or k.end <= span.start for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
