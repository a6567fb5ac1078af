"""Real documents for the heuristic filters' equivalence tests: the filter fixtures and part of
the sample corpus (C4, CCNet, the Chinese Debian Reference), each with its language."""

import gzip
import io
import json
import os
from functools import cache

import zstandard

from tests.helpers import ROOT, fixture_text

SAMPLE = os.path.join(ROOT, "data", "sample")


@cache
def english_documents() -> tuple[str, ...]:
    texts = [fixture_text("good_en.json"), fixture_text("spam.json")]
    with gzip.open(os.path.join(SAMPLE, "web", "c4-0000.jsonl.gz"), "rt", encoding="utf-8") as handle:
        texts += [json.loads(line)["text"] for line in handle][:120]
    with open(os.path.join(SAMPLE, "web", "ccnet-0000.jsonl"), encoding="utf-8") as handle:
        texts += [json.loads(line)["text"] for line in handle][:10]
    return tuple(texts)


@cache
def chinese_documents() -> tuple[str, ...]:
    texts = list(fixture_text("good_zh.json"))
    with open(os.path.join(SAMPLE, "zh", "debian-reference-0000.jsonl.zst"), "rb") as raw:
        lines = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
        texts += [json.loads(line)["text"] for line in lines][:60]
    return tuple(texts)


def documents() -> list[tuple[str, str]]:
    """(text, lang) pairs: English, Chinese, German and Japanese."""
    return (
        [(text, "en") for text in english_documents()]
        + [(text, "zh") for text in chinese_documents()]
        + [(fixture_text("german.json"), "de"), (fixture_text("japanese.json"), "ja")]
    )


def looped(text: str, times: int = 4) -> str:
    """`text` with its first eighth repeated `times` times in the middle: repeated n-grams inside
    otherwise real text."""
    passage, middle = text[: len(text) // 8], len(text) // 2
    return text[:middle] + " " + (passage + " ") * times + text[middle:]
