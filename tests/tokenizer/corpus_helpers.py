"""A small kept-documents corpus (the corpus pipeline's out/docs schema) built from
data/sample: English Wikipedia paragraphs, Tang poems (Chinese) and the
multilingual lingua documents, as three sources with uneven sizes."""

from __future__ import annotations

import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from tests.helpers import ROOT
from tokenizer.config import Config, parse_config, set_dotted

SAMPLE = os.path.join(ROOT, "data", "sample")


def documents() -> dict[str, list]:
    rows: dict[str, list] = {"id": [], "source": [], "text": [], "lang": []}

    def add(doc_id: str, source: str, text: str, lang: str) -> None:
        for key, value in zip(rows, (doc_id, source, text, lang)):
            rows[key].append(value)

    articles = pq.read_table(os.path.join(SAMPLE, "wiki", "wiki-0000.parquet"))["text"].to_pylist()
    for a, article in enumerate(articles[:8]):
        for p, paragraph in enumerate(article.split("\n")):
            if len(paragraph) >= 200:
                add(f"wiki/{a}#{p}", "wiki", paragraph, "en")
    for path in sorted(glob.glob(os.path.join(SAMPLE, "zh", "tang300", "*.txt"))):
        with open(path, encoding="utf-8") as handle:
            for p, poem in enumerate(handle.read().split("\n\n")):
                if poem.strip():
                    add(f"zh/{os.path.basename(path)}#{p}", "zh", poem.strip(), "zh")
    with open(os.path.join(SAMPLE, "multilingual", "lingua-0000.jsonl"), encoding="utf-8") as handle:
        for n, line in enumerate(handle):
            record = json.loads(line)
            add(f"multilingual#{n}", "multilingual", record["content"], record["metadata"]["label"])
    return rows


def write_docs(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    pq.write_table(pa.table(documents()), os.path.join(directory, "part-0.parquet"))
    return directory


def small_config(root: str, **overrides) -> Config:
    """Config reading root/docs and writing root/tokenizer, root/shards; small vocabulary."""
    raw = {
        "docs": os.path.join(root, "docs"),
        "tokenizer": {
            "dir": os.path.join(root, "tokenizer"),
            "vocab_size": 1024,
            "sample": {"by": "lang", "weights": {"en": 0.6, "zh": 0.3, "*": 0.1}},
            "heldout_fraction": 0.1,
        },
        "shards": {
            "dir": os.path.join(root, "shards"),
            "val_fraction": 0.05,
            "shard_tokens": 20000,
            "weights": {"wiki": 0.3, "zh": 0.3, "multilingual": 0.4},
        },
    }
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return parse_config(raw)
