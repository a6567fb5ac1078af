"""Perplexity filter (CCNet): score each document with an n-gram language model of its language
trained on curated reference text (Wikipedia for English, the Chinese reference prose for Chinese),
and remove documents that read least like it.

Adds `perplexity` (float, per document; null for a language without a model, and for documents
without a `lang` column value: no language ID ran) and `perplexity_bucket` (CCNet's `head`,
`middle`, `tail`: below the 30th, up to the 60th and above the 60th percentile of the model's raw
web sample of that language; null where the model has no web sample of the language). A source or
language is cut by buckets to keep (`keep: [head, middle]`), a fixed `max_perplexity`, or a
`max_percentile` of that web sample, or is `exempt` (reference sources: scored, never removed).
Drop reasons: `perplexity_<bucket>` (e.g. `perplexity_tail`), `perplexity_above_max`.

Tokens as in CCNet: text lower-cased, digits replaced by 0, punctuation removed, accents stripped
(`stages.text.simplify_text`), scored line by line with `<s>`/`</s>` around each line. Spaced
languages are scored on words, languages written without spaces (`stages.text.is_unspaced`) on
their characters (and runs of other letters, such as a Latin name inside Chinese text). Only a
prefix of `max_chars` characters is scored, which bounds the cost (CCNet scores whole documents):
on the 20 documents of ../shared/data's Wikipedia, C4 and CCNet text over 25,000 characters, the
20,000-character prefix's perplexity is within 9 % of the whole document's (median; at most 31 %).

The model is an interpolated modified Kneser-Ney n-gram model stored in backoff form (as KenLM's
ARPA/binary files), trained by `python -m pipelines.perplexity_model` (make perplexity-model) into
models/perplexity/. Its n-grams are 64-bit hashes of word-id sequences held in sorted arrays, so a
whole batch is scored with a few `searchsorted` calls per order.
"""

from __future__ import annotations

import json
import os
import re
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, PositiveInt

from stages.base import Filter, Resources, Strict, column_or_none, make_params, overridden
from stages.text import UNSPACED_SCRIPT_CHARS, is_unspaced, simplify_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "perplexity")
METADATA = "perplexity.json"
UNK, BOS, EOS = 0, 1, 2  # ids of <unk>, <s>, </s>; words start at 3
SPECIALS = ("<unk>", "<s>", "</s>")
BUCKETS = ("head", "middle", "tail")
BUCKET_PERCENTILES = (30, 60)  # CCNet's cuts between head, middle and tail

# Characters of scripts written without spaces (CJK ideographs, kana, Thai, Lao, Myanmar, Khmer) are
# one unit each; any other run of non-space characters is one unit.
_CHARACTER_UNITS = re.compile(f"[{UNSPACED_SCRIPT_CHARS}]|[^\\s{UNSPACED_SCRIPT_CHARS}]+")

# Hash of an n-gram: its (n-1)-gram prefix's hash and its last word id, mixed (splitmix64's
# finaliser), modulo 2^64. Models of a few million n-grams collide with probability ~2^-40.
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def line_units(text: str, lang: str | None) -> list[list[str]]:
    """The units the model reads, per non-empty line of `text`: normalised words, or for a
    language written without spaces, characters."""
    split = _CHARACTER_UNITS.findall if is_unspaced(text, lang) else str.split
    lines = (split(simplify_text(line)) for line in text.split("\n"))
    return [units for units in lines if units]


def id_stream(lines: list[list[str]], vocab: dict[str, int]) -> np.ndarray:
    """Word ids of the lines, each line as <s> w1 ... wn </s>; unknown words are <unk>."""
    get = vocab.get
    ids: list[int] = []
    for units in lines:
        ids.append(BOS)
        ids.extend([get(unit, UNK) for unit in units])
        ids.append(EOS)
    return np.array(ids, np.int64)


def since_bos(ids: np.ndarray) -> np.ndarray:
    """Distance of each position from the last <s> at or before it: an n-gram of order k ending
    there is valid when that is at least k - 1 (no n-gram reaches into the previous line)."""
    positions = np.arange(len(ids))
    last = np.where(ids == BOS, positions, 0)
    return positions - np.maximum.accumulate(last)


def ngram_keys(ids: np.ndarray, order: int) -> list[np.ndarray]:
    """keys[k][i]: hash of the k-gram ending at position i (keys[1] is the word id itself;
    keys[0] unused). keys[k][i] is only meaningful where since_bos(ids)[i] >= k - 1."""
    keys = [np.zeros(0, np.uint64), ids.astype(np.uint64)]
    for _ in range(2, order + 1):
        previous = np.zeros(len(ids), np.uint64)
        previous[1:] = keys[-1][:-1]
        x = previous * _MULTIPLIER + keys[1]
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        keys.append(x ^ (x >> np.uint64(31)))
    return keys


class NgramModel:
    """A backoff n-gram model: per order k >= 2 the sorted hashes of its k-grams with their log10
    probabilities and backoff weights; order 1 indexed by word id."""

    def __init__(self, vocab: list[str], arrays: dict[str, np.ndarray]):
        self.vocab = {word: i for i, word in enumerate(vocab)}
        self.order = int(arrays["order"])
        self.unigram_logp = arrays["logp1"].astype(np.float32)
        self.unigram_backoff = arrays["backoff1"].astype(np.float32)
        self.keys = {k: arrays[f"keys{k}"] for k in range(2, self.order + 1)}
        self.logp = {k: arrays[f"logp{k}"].astype(np.float32) for k in range(2, self.order + 1)}
        self.backoff = {k: arrays[f"backoff{k}"].astype(np.float32) for k in range(2, self.order)}
        # <unk> stands for every word rarer than the vocabulary's: its probability is that class's,
        # shared by the number of such words seen in training. Without the share, text made of
        # unknown words (keyword spam, foreign names, code) would score as fluent as Wikipedia.
        self.unk_log10_types = float(arrays["unk_log10_types"])

    @classmethod
    def load(cls, path: str) -> NgramModel:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        vocab = arrays.pop("vocab").tobytes().decode("utf-8").split("\n")
        return cls(vocab, arrays)

    def _lookup(self, k: int, keys: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, index) of each key among the model's k-grams; invalid positions are not found."""
        table = self.keys[k]
        index = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return valid & (table[index] == keys), index

    def log10_probs(self, ids: np.ndarray) -> np.ndarray:
        """log10 p(w_i | history) at every position (0 at <s>, which is never predicted): the
        longest known n-gram ending at i, plus the backoff weights of the longer contexts; an
        unknown word gets its share of <unk>."""
        dist = since_bos(ids)
        keys = ngram_keys(ids, self.order)
        logp = self.unigram_logp[ids]
        longest = np.ones(len(ids), np.int64)
        context_found = {}  # k -> (found, index) of the k-gram ending at i
        for k in range(2, self.order + 1):
            found, index = self._lookup(k, keys[k], dist >= k - 1)
            logp = np.where(found, self.logp[k][index], logp)
            longest[found] = k
            context_found[k] = (found, index)
        # The k-gram context of w_i is the k-gram ending at i - 1; its backoff weight applies when
        # no (k+1)-gram ending at i was found, i.e. k >= longest.
        backoff = np.zeros(len(ids), np.float32)
        for k in range(1, self.order):
            if k == 1:
                weights = self.unigram_backoff[ids]
            else:
                found, index = context_found[k]
                weights = np.where(found, self.backoff[k][index], 0.0)
            backoff[1:] += np.where(longest[1:] <= k, weights[:-1], 0.0)
        logp = logp + backoff - np.where(ids == UNK, self.unk_log10_types, 0.0)
        return np.where(ids == BOS, 0.0, logp)

    def perplexities(self, documents: list[list[list[str]]]) -> list[float]:
        """Perplexity of each document (its lines of units), CCNet's: 10 ** (-log10 p / tokens), the
        tokens being every word and every </s>; nan for a document without units."""
        streams = [id_stream(lines, self.vocab) for lines in documents]
        if not streams:
            return []
        ids = np.concatenate(streams)
        document = np.repeat(np.arange(len(streams)), [len(s) for s in streams])
        sums = np.bincount(document, weights=self.log10_probs(ids), minlength=len(streams))
        counts = np.bincount(document, weights=ids != BOS, minlength=len(streams))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (10 ** (-sums / counts)).tolist()


def load_models(directory: str) -> tuple[dict, dict[str, NgramModel]]:
    """The metadata (perplexity.json) and the model of each language it lists."""
    with open(os.path.join(directory, METADATA), encoding="utf-8") as handle:
        metadata = json.load(handle)
    models = {
        lang: NgramModel.load(os.path.join(directory, info["file"])) for lang, info in metadata["languages"].items()
    }
    return metadata, models


class Cut(Strict):
    """How documents of a language or source are removed; a source's cut overrides its language's,
    which overrides the stage-wide one, key by key."""

    keep: list[Literal["head", "middle", "tail"]] | None = None  # buckets kept (None: all)
    max_perplexity: float | None = Field(None, gt=0)
    # a percentile of the model's web sample of the language (none for a language without one)
    max_percentile: float | None = Field(None, gt=0, le=100)
    exempt: bool = False  # scored, never removed (the reference sources the model is trained on)


class PerplexityParams(Cut):
    model: str | None = None  # directory with perplexity.json and the models it names
    per_lang: dict[str, Cut] = {}
    per_source: dict[str, Cut] = {}
    max_chars: PositiveInt = 20_000  # scored prefix of each document


class Perplexity(Filter):
    name = "perplexity"
    reads = ("text", "lang", "source")
    writes = {"perplexity": pa.float32(), "perplexity_bucket": pa.string()}
    resources = Resources(num_cpus=1, memory_mb=300)

    def __init__(self, **params):
        self.params = make_params(PerplexityParams, params)
        self.directory = self.params.model or DEFAULT_MODEL
        with open(os.path.join(self.directory, METADATA), encoding="utf-8") as handle:
            self.metadata = json.load(handle)
        self.models: dict[str, NgramModel] | None = None
        self._cuts: dict[tuple[str, str | None], tuple[Cut, float | None]] = {}

    def setup(self) -> None:
        self.metadata, self.models = load_models(self.directory)

    def percentiles(self, lang: str | None) -> list[float] | None:
        """The perplexity at percentiles 0, 1, ..., 100 of the model's web sample of `lang`."""
        return (self.metadata["languages"].get(lang) or {}).get("web_percentiles")

    def cut(self, source: str, lang: str | None) -> tuple[Cut, float | None]:
        """The cut for documents of `source` in `lang`, and its perplexity ceiling (the lower of
        max_perplexity and max_percentile's perplexity; None: no ceiling)."""
        if (source, lang) not in self._cuts:
            rule: Cut = self.params
            for override in (self.params.per_lang.get(lang), self.params.per_source.get(source)):
                if override is not None:
                    rule = overridden(rule, override)
            ceilings = [rule.max_perplexity]
            percentiles = self.percentiles(lang)
            if rule.max_percentile is not None and percentiles:
                ceilings.append(float(np.interp(rule.max_percentile, np.arange(101), percentiles)))
            ceilings = [c for c in ceilings if c is not None]
            self._cuts[source, lang] = rule, min(ceilings) if ceilings else None
        return self._cuts[source, lang]

    def bucket(self, perplexity: float | None, lang: str | None) -> str | None:
        percentiles = self.percentiles(lang)
        if perplexity is None or not percentiles:
            return None
        cuts = [percentiles[p] for p in BUCKET_PERCENTILES]
        return BUCKETS[int(np.searchsorted(cuts, perplexity, side="left"))]

    def score(self, batch: pa.Table) -> dict[str, list]:
        if self.models is None:
            self.setup()
        texts = batch["text"].to_pylist()
        langs = column_or_none(batch, "lang")
        scores: list[float | None] = [None] * len(texts)
        for lang, model in self.models.items():
            rows = [i for i, doc_lang in enumerate(langs) if doc_lang == lang]
            documents = [line_units(texts[i][: self.params.max_chars], lang) for i in rows]
            for i, value in zip(rows, model.perplexities(documents)):
                scores[i] = None if np.isnan(value) else value
        return {
            "perplexity": scores,
            "perplexity_bucket": [self.bucket(score, lang) for score, lang in zip(scores, langs)],
        }

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        reasons: list[str | None] = []
        langs = column_or_none(batch, "lang")
        for source, lang, score, bucket in zip(
            batch["source"].to_pylist(), langs, signals["perplexity"], signals["perplexity_bucket"]
        ):
            rule, ceiling = self.cut(source, lang)
            if score is None or rule.exempt:
                reasons.append(None)
            elif rule.keep is not None and bucket is not None and bucket not in rule.keep:
                reasons.append(f"perplexity_{bucket}")
            elif ceiling is not None and score > ceiling:
                reasons.append("perplexity_above_max")
            else:
                reasons.append(None)
        return reasons
