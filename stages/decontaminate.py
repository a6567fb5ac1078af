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
import sys
from typing import Literal

import pyarrow as pa
import xxhash
from pydantic import PositiveInt

from stages.base import Filter, Strict, column_or_none, make_params
from stages.text import is_unspaced, simplify_text


class DecontaminateParams(Strict):
    files: list[str] = []
    text_field: str = "text"
    ngram: PositiveInt = 13  # words
    char_ngram: PositiveInt = 25  # characters, for scripts without spaces
    mode: Literal["remove", "flag"] = "remove"


def ngram_units(text: str, unspaced: bool, params: DecontaminateParams) -> tuple[list[str] | str, int, str]:
    """The units n-grams are made of (normalised words, or characters for text without
    spaces), n, and the separator that joins them."""
    normalised = simplify_text(text)
    if unspaced:
        return normalised.replace(" ", ""), params.char_ngram, ""
    return normalised.split(), params.ngram, " "


def ngram_hashes(text: str, unspaced: bool, params: DecontaminateParams) -> set[int]:
    units, n, sep = ngram_units(text, unspaced, params)
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
        # Read once here (eval sets are small): the check below needs them where the run starts, and
        # setup() indexes the same texts instead of reading the files again.
        self.eval_texts: dict[str, list[str]] = {}
        for path in self.params.files:
            if not os.path.exists(path):
                raise FileNotFoundError(f"decontaminate: eval file {path!r} not found (cwd {os.getcwd()})")
            texts = self.eval_texts[path] = read_eval_texts(path, self.params.text_field)
            short = sum(
                len(units) < n
                for units, n, _ in (ngram_units(text, is_unspaced(text, None), self.params) for text in texts)
            )
            if short:  # they hold no n-gram, so no document can match them: say so once, where the run starts
                print(
                    f"decontaminate: {short} of {len(texts)} items of {path} are shorter than one n-gram "
                    f"({self.params.ngram} words, {self.params.char_ngram} characters without spaces) and "
                    "cannot be matched; lower ngram / char_ngram to cover them",
                    file=sys.stderr,
                )
        self.index: dict[int, str] | None = None

    def setup(self) -> None:
        self.index = {}
        for path, texts in self.eval_texts.items():
            for number, text in enumerate(texts):
                for key in ngram_hashes(text, is_unspaced(text, None), self.params):
                    self.index.setdefault(key, f"{os.path.basename(path)}#{number}")

    def score(self, batch: pa.Table) -> dict[str, list]:
        if self.index is None:
            self.setup()
        hits = []
        for text, lang in zip(batch["text"].to_pylist(), column_or_none(batch, "lang")):
            keys = ngram_hashes(text, is_unspaced(text, lang), self.params)
            hit = min((self.index[k] for k in keys if k in self.index), default=None)
            hits.append(hit)
        return {"contaminated_by": hits}

    def decide(self, batch: pa.Table, signals: dict[str, list]) -> list[str | None]:
        if self.params.mode == "flag":
            return [None] * batch.num_rows
        return ["eval_overlap" if hit else None for hit in signals["contaminated_by"]]
