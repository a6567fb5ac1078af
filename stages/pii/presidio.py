"""Presidio, imported and set up for corpus use: without its deep-learning extras, with a blank
spaCy pipeline for context words, and nothing downloaded."""

from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def _without_deep_learning():
    """presidio imports transformers' pipeline, and thinc imports torch, whenever they are
    installed (the trainer needs both): ~8 s in every Ray worker, for engines we never use. A None
    entry in sys.modules makes such an optional import fail fast; modules a process has already
    imported cost nothing and are left alone. The entries are removed afterwards."""
    hidden = [name for name in ("transformers", "torch") if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        yield
    finally:
        for name in hidden:
            del sys.modules[name]


with _without_deep_learning():
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry, RecognizerResult
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )


# The presidio classes the other modules of the package use come from here, imported once, the
# workaround above applied.
__all__ = [
    "CreditCardRecognizer",
    "EmailRecognizer",
    "IbanRecognizer",
    "IpRecognizer",
    "PhoneRecognizer",
    "UsSsnRecognizer",
    "Pattern",
    "PatternRecognizer",
    "RecognizerResult",
    "LANGUAGE",
    "NER_ENTITIES",
    "BlankSpacyEngine",
    "pattern_analyzer",
    "ner_analyzer",
]

LANGUAGE = "en"  # pattern recognizers do not depend on the language; presidio needs one name
NER_ENTITIES = ["PERSON", "LOCATION"]


class BlankSpacyEngine(SpacyNlpEngine):
    """spaCy for tokens only (presidio's context words): a blank pipeline, so no model is loaded
    or downloaded. Blank pipelines have no lemmatizer; the lower-cased word stands in for it.
    Context words are never stop words (spaCy's English list has "call")."""

    def __init__(self, model: str | None = None, context_words: set[str] = frozenset()):
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": model or "blank"}])
        self.model = model
        self.context_words = context_words

    def load(self) -> None:
        import spacy

        # A model name or path; spacy.load never downloads (presidio's own load would try).
        nlp = spacy.load(self.model) if self.model else spacy.blank(LANGUAGE)
        self.nlp = {LANGUAGE: nlp}

    def _doc_to_nlp_artifact(self, doc, language) -> NlpArtifacts:
        if self.model:
            return super()._doc_to_nlp_artifact(doc, language)
        # Token texts rather than the Doc: presidio's context search walks `tokens` once per
        # result, and each step over a Doc builds a Token object (a fifth of the stage's time).
        words = [(token.idx, token.text, token.lower_) for token in doc]
        return NlpArtifacts(
            entities=[],
            tokens=[w[1] for w in words],
            tokens_indices=[w[0] for w in words],
            lemmas=[w[2] for w in words],
            nlp_engine=self,
            language=language,
        )

    def is_stopword(self, word: str, language: str) -> bool:
        return word not in self.context_words and super().is_stopword(word, language)


def pattern_analyzer(recognizers: list) -> AnalyzerEngine:
    """An analyzer running `recognizers`, with their context words matched as whole words."""
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    engine = BlankSpacyEngine(context_words={w.lower() for r in recognizers for w in r.context or []})
    engine.load()
    # Labels often follow a number ("28-64-66-98 office"); presidio counts the number's own
    # tokens in the suffix, hence 5.
    enhancer = LemmaContextAwareEnhancer(
        context_prefix_count=5, context_suffix_count=5, context_matching_mode="whole_word"
    )
    return AnalyzerEngine(
        registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE], context_aware_enhancer=enhancer
    )


def ner_analyzer(model: str) -> AnalyzerEngine:
    """An analyzer for PERSON and LOCATION with the installed spaCy `model` (name or path)."""
    engine = BlankSpacyEngine(model)
    engine.load()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.add_recognizer(SpacyRecognizer(supported_entities=NER_ENTITIES))
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])
