"""An output folder holding every part report.html shows, in the formats the parts write them: a
corpus run's stats.json (the sample run's when given), a tokenizer and its extension reports, a
shards manifest, pre-training and fine-tuning metrics.jsonl, recorded commands."""

from __future__ import annotations

import json
import os

# Section headings of the report of any run write_run writes (the page's contents).
HEADINGS = (
    "Corpus",
    "Funnel",
    "Removals by stage and reason",
    "Kept share per source",
    "Languages",
    "Distribution of quality_score",
    "Duplicate clusters",
    "PII replacements",
    "Quarantine",
    "Removed examples",
    "Where the time went",
    "Shards",
    "Tokenizer",
    "Training and fine-tuning",
    "Provenance",
)

STATS = {
    "input_documents": 115,
    "kept_documents": 70,
    "removed_documents": 40,
    "quarantined_documents": 5,
    "removed": {
        "langid": {"language_not_allowed:de": 10, "low_language_score": 2},
        "gopher_quality": {"gopher_short_doc": 20},
        "exact_dedup": {"exact_duplicate": 8},
        "pii": {},
    },
    "quarantined": {"bad_json": 3, "stage_error:gopher_quality": 2},
    "removed_bytes": {"langid": 30_000, "gopher_quality": 4_000, "exact_dedup": 16_000},
    "quarantined_bytes": {"bad_json": 0, "stage_error:gopher_quality": 1_000},
    "bytes_in": 251_000,
    "bytes_out": 200_000,
    "per_source": {
        "web": {
            "input_documents": 95,
            "kept_documents": 55,
            "removed_documents": 35,
            "quarantined_documents": 5,
            "kept_bytes": 150_000,
        },
        "wiki": {
            "input_documents": 20,
            "kept_documents": 15,
            "removed_documents": 5,
            "quarantined_documents": 0,
            "kept_bytes": 50_000,
        },
    },
    "kept_languages": {"en": 60, "zh": 10},
    "signal_sums": {"pii_email_address": 4, "pii_phone_number": 0},
    "histograms": {
        "quality_score": {
            "web": {"kept": [0, 0, 0, 0, 0, 5, 10, 20, 10, 10], "removed": [3, 4, 1, 0, 0, 0, 0, 0, 0, 0]}
        }
    },
    "stages": ["langid", "gopher_quality", "exact_dedup", "pii"],
    "config_digest": "0123456789abcdef",
    "config": {"seed": 0, "sources": {"web": {"paths": ["data/web"]}}},
    "seed": 0,
    "seconds": 12.5,
    "docs_per_s": 9.6,
    "exact_dedup": {"duplicates": 8, "cluster_sizes": {"2": 6, "3": 1}},
    "timing": [
        {
            "phase": "phase 0 (ingest, langid, gopher_quality)",
            "what": "documents",
            "count": 115,
            "bytes": 251_000,
            "seconds": 10.0,
        },
        {"phase": "phase 1 (exact_dedup)", "what": "marks found", "count": 8, "bytes": 0, "seconds": 2.0},
        {"phase": "phase 1 (exact_dedup)", "what": "documents", "count": 115, "bytes": 251_000, "seconds": 4.0},
        {"phase": "phase 2 (pii)", "what": "documents", "count": 115, "bytes": 251_000, "seconds": 5.0},
    ],
    # As pipelines/stats.py builds it: documents as each stage got them (the funnel's), text MB
    "stage_timing": [
        {
            "stage": "ingest",
            "kind": "row",
            "documents": 115,
            "mb": 0.251,
            "cpu_seconds": 1.2,
            "wall_seconds": 1.5,
            "docs_per_s": 76.7,
            "mb_per_cpu_second": 0.209,
        },
        {
            "stage": "langid",
            "kind": "row",
            "documents": 112,
            "mb": 0.251,
            "cpu_seconds": 3.0,
            "wall_seconds": 3.4,
            "docs_per_s": 32.9,
            "mb_per_cpu_second": 0.084,
        },
        {
            "stage": "gopher_quality",
            "kind": "row",
            "documents": 100,
            "mb": 0.221,
            "cpu_seconds": 0.8,
            "wall_seconds": 0.9,
            "docs_per_s": 111.1,
            "mb_per_cpu_second": 0.276,
        },
        {
            "stage": "exact_dedup",
            "kind": "global",
            "documents": 78,
            "mb": 0.216,
            "cpu_seconds": None,
            "wall_seconds": 2.0,
            "docs_per_s": 39.0,
            "mb_per_cpu_second": None,
        },
        {
            "stage": "pii",
            "kind": "row",
            "documents": 70,
            "mb": 0.2,
            "cpu_seconds": 5.0,
            "wall_seconds": 5.5,
            "docs_per_s": 12.7,
            "mb_per_cpu_second": 0.04,
        },
    ],
    "examples": {
        "gopher_quality/gopher_short_doc": [{"id": "web/a.jsonl#3", "text": "Too short <b>not bold</b>."}],
        "quarantine/bad_json": [{"id": "web/b.jsonl#0", "text": ""}],
    },
}

TOKENIZER = {
    "title": "Tokenizer report",
    "model": "bpe",
    "vocab_size": 8192,
    "results": {
        "tokenizer": {
            "en": {
                "documents": 9,
                "characters": 67888,
                "words": 10938,
                "tokens": 19675,
                "chars_per_token": 3.4505,
                "tokens_per_word": 1.7988,
            },
            "zh": {
                "documents": 8,
                "characters": 5828,
                "words": 1860,
                "tokens": 3046,
                "chars_per_token": 1.9133,
                "tokens_per_word": 1.6376,
            },
        }
    },
}

EXTENSION = {
    "title": "Vocabulary extension report",
    "added": 1024,
    "results": {
        "base": TOKENIZER["results"]["tokenizer"],
        "extended": {
            "en": {
                "documents": 9,
                "characters": 67888,
                "words": 10938,
                "tokens": 19653,
                "chars_per_token": 3.4543,
                "tokens_per_word": 1.7968,
            },
            "zh": {
                "documents": 8,
                "characters": 5828,
                "words": 1860,
                "tokens": 2977,
                "chars_per_token": 1.9577,
                "tokens_per_word": 1.6005,
            },
        },
    },
}

MANIFEST = {
    "format": "lmforge-token-shards/1",
    "dtype": "uint16",
    "vocab_size": 8192,
    "total_tokens": 583719,
    "config": {"seed": 0, "shards": {"weights": {"web": 0.75, "wiki": 0.25}}},
    "sources": {
        "web": {
            "documents": 204,
            "tokens_available": 219730,
            "requested_share": 0.75,
            "target_tokens": 437789,
            "tokens": 437800,
            "achieved_share": 0.7500,
            "epochs": 1.99,
            "documents_used": 406,
        },
        "wiki": {
            "documents": 23,
            "tokens_available": 268929,
            "requested_share": 0.25,
            "target_tokens": 145930,
            "tokens": 145919,
            "achieved_share": 0.2500,
            "epochs": 0.54,
            "documents_used": 12,
        },
    },
    "splits": {"train": {"documents": 418, "tokens": 583719}, "val": {"documents": 5, "tokens": 14467}},
    "files": [{"split": "train", "path": "train-00000.arrow"}, {"split": "val", "path": "val-00000.arrow"}],
    "seconds": 28.65,
}


def pretrain_metrics() -> list[dict]:
    """Two logged windows, an evaluation, then a resume from step 2 that logs steps 3-4 again; every
    record with its wall-clock `time`, as train/runtime.py's MetricsLog writes them."""
    train = [
        {
            "step": s,
            "loss": 6.0 - s / 2,
            "lr": 0.001 * s,
            "grad_norm": 0.5,
            "tokens": 128 * s,
            "tokens_per_s": 10_000.0 + s,
            "time": 1.8e9 + s,
        }
        for s in range(1, 5)
    ]
    return [
        *train[:2],
        {"step": 2, "val_loss": 5.2, "val_ppl": 181.3, "val_bpb": 4.9, "time": 1.8e9 + 2.5},
        *train[2:],
        {**train[2], "loss": 4.4},
        {**train[3], "loss": 3.9},
        {"step": 4, "val_loss": 4.1, "val_ppl": 60.3, "val_bpb": 3.8, "time": 1.8e9 + 5},
    ]


def dpo_metrics() -> list[dict]:
    return [
        {
            "step": s,
            "loss": 0.69 - 0.1 * s,
            "chosen_reward": 0.1 * s,
            "rejected_reward": -0.1 * s,
            "margin": 0.2 * s,
            "accuracy": min(1.0, 0.5 + 0.2 * s),
            "lr": 0.005,
            "grad_norm": 0.4,
            "tokens_per_s": 5e4,
        }
        for s in range(1, 4)
    ] + [{"step": 3, "time": 1.8e9}]


def sft_metrics() -> list[dict]:
    return [{"step": s, "loss": 2.0 - 0.3 * s, "lr": 0.001, "grad_norm": 0.3, "tokens_per_s": 2e4} for s in (1, 2)] + [
        {"step": 2, "val_loss": 1.6}
    ]


def write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def write_jsonl(path: str, records: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)


def write_run(root: str, stats: dict | None = None) -> None:
    """Every part, in the order `make corpus`, `make train`, `make finetune` write them (file times
    increase: none of them is out of date)."""
    write_json(os.path.join(root, "stats.json"), stats or STATS)
    write_json(os.path.join(root, "tokenizer", "report.json"), TOKENIZER)
    write_json(os.path.join(root, "tokenizer", "extended", "report.json"), EXTENSION)
    write_json(os.path.join(root, "shards", "manifest.json"), MANIFEST)
    write_jsonl(os.path.join(root, "model", "metrics.jsonl"), pretrain_metrics())
    write_jsonl(os.path.join(root, "finetune", "sft", "metrics.jsonl"), sft_metrics())
    write_jsonl(os.path.join(root, "finetune", "metrics.jsonl"), dpo_metrics())
    write_jsonl(
        os.path.join(root, "logs", "runs.jsonl"),
        [
            {
                "part": "corpus",
                "command": "python -m pipelines.corpus --config configs/corpus.yaml --out out",
                "returncode": 0,
                "seconds": 91.4,
                "finished": "2026-12-01T10:00:00+00:00",
                "versions": {"ray": "2.60.0"},
            },
            {
                "part": "pretrain",
                "command": "python -m train.pretrain --config configs/train/tiny.yaml",
                "returncode": 1,
                "seconds": 3.0,
                "finished": "2026-12-01T10:05:00+00:00",
                "versions": {"ray": "2.60.0"},
            },
        ],
    )
    for index, relpath in enumerate(["stats.json", "shards/manifest.json", "model/metrics.jsonl"]):
        os.utime(os.path.join(root, relpath), (1_000_000 + index, 1_000_000 + index))
