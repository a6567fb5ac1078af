"""Decontamination: documents sharing a long n-gram with an evaluation set.

Each configured eval file (JSONL with a text field, or plain text with one
example per line) is cut into n-grams of normalised words (default 13, as
GPT-3 and the Pile did) or, for text without spaces (Chinese, Japanese),
of characters; a document containing any of them is removed (`mode: remove`)
or only flagged in `contaminated_by` (`mode: flag`). The column names the
eval file and record, e.g. `eval/mmlu.jsonl#12`.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import pyarrow as pa
import xxhash
from pydantic import PositiveInt

from stages.base import Filter, Strict, column_or_none, make_params
from stages.minhash_dedup import CHAR_SHINGLE_LANGS
from stages.text import simplify_text

_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0x0E00, 0x0E7F))


class DecontaminateParams(Strict):
    files: list[str] = []
    text_field: str = "text"
    ngram: PositiveInt = 13  # words
    char_ngram: PositiveInt = 25  # characters, for scripts without spaces
    mode: Literal["remove", "flag"] = "remove"


def _mostly_unspaced(text: str) -> bool:
    sample = text[:2000]
    unspaced = sum(any(lo <= ord(ch) <= hi for lo, hi in _CJK_RANGES) for ch in sample)
    return unspaced > 0.3 * max(len(sample), 1)


def ngram_hashes(text: str, unspaced: bool, params: DecontaminateParams) -> set[int]:
    normalised = simplify_text(text)
    if unspaced:
        chars = normalised.replace(" ", "")
        n, units, sep = params.char_ngram, chars, ""
    else:
        units, n, sep = normalised.split(), params.ngram, " "
    return {xxhash.xxh3_64_intdigest(sep.join(units[i : i + n])) for i in range(len(units) - n + 1)}


def read_eval_texts(path: str, text_field: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        if path.endswith((".jsonl", ".json")):
            return [json.loads(line)[text_field] for line in handle if line.strip()]
        return [line.rstrip("\n") for line in handle if line.strip()]


class Decontaminate(Filter):
    name = "decontaminate"
    reads = ("text", "lang")
    writes = {"contaminated_by": pa.string()}

    def __init__(self, **params):
        self.params = make_params(DecontaminateParams, params)
        for path in self.params.files:
            if not os.path.exists(path):
                raise FileNotFoundError(f"decontaminate: eval file {path!r} not found (cwd {os.getcwd()})")
        self.index: dict[int, str] | None = None

    def setup(self) -> None:
        self.index = {}
        for path in self.params.files:
            for number, text in enumerate(read_eval_texts(path, self.params.text_field)):
                for key in ngram_hashes(text, _mostly_unspaced(text), self.params):
                    self.index.setdefault(key, f"{os.path.basename(path)}#{number}")

    def score(self, batch: pa.Table) -> dict[str, list]:
        if self.index is None:
            self.setup()
        hits = []
        for text, lang in zip(batch["text"].to_pylist(), column_or_none(batch, "lang")):
            unspaced = lang in CHAR_SHINGLE_LANGS if lang else _mostly_unspaced(text)
            hit = min((self.index[k] for k in ngram_hashes(text, unspaced, self.params) if k in self.index), default=None)
            hits.append(hit)
        return {"contaminated_by": hits}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        if self.params.mode == "flag":
            return [None] * batch.num_rows
        return ["eval_overlap" if hit else None for hit in signals["contaminated_by"]]
