"""`python -m pipelines.quality_model --config configs/quality_model.yaml`: train the
fastText quality classifier that `stages/quality_classifier.py` applies.

Per language, positive sources (reference text: Wikipedia, curated
documents) are labelled `__label__hq` and negative sources (raw web text)
`__label__lq`. Documents are split into train and held-out sets by a hash
of their id (a document never contributes to both), cut into chunks of
paragraphs so that a few long articles still give many examples, and the
larger class is down-sampled to the smaller one (seeded). A language
without both classes is skipped and recorded. The model is quantized to
stay small, and saved with its metadata: sources, example counts, fastText
parameters, the held-out evaluation (precision, recall at 0.5, ROC AUC;
on chunks and on whole documents scored as the stage scores them) and the
score quantiles of held-out negative documents that turn a `top_fraction`
into a threshold.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

from pipelines.model_training import read_training_config, training_main
from stages.ingest import SourceConfig, list_input_files, read_file
from stages.quality_classifier import NEGATIVE, POSITIVE, metadata_path, normalise
from tokenizer.sampling import split_value

LABELS = {"positive": POSITIVE, "negative": NEGATIVE}


@dataclass
class TrainConfig:
    languages: dict[str, dict[str, list[dict]]]  # lang -> {positive: [source], negative: [source]}
    output: str = "models/quality/quality.ftz"
    seed: int = 0
    heldout_fraction: float = 0.2
    min_chars: int = 200  # a chunk gathers paragraphs up to at least this many characters
    max_chars: int = 1500
    max_examples_per_class: int = 20_000
    fasttext: dict = field(default_factory=dict)  # fasttext.train_supervised arguments
    quantize: dict | None = field(default_factory=dict)  # model.quantize arguments; null: keep full size


def load_config(path: str) -> TrainConfig:
    config = read_training_config(path, TrainConfig)
    for lang, classes in config.languages.items():
        if set(classes) - set(LABELS):
            raise ValueError(f"{path}: languages.{lang} takes positive and negative source lists")
    return config


def documents(spec: dict, name: str) -> list[tuple[str, str]]:
    """(id, text) of every readable document of a source spec ({paths, format, text_field})."""
    source = SourceConfig(name=name, **spec)
    out = []
    for file in list_input_files(source):
        for batch in read_file(file):
            batch = batch.filter(batch["drop_stage"].is_null())
            out += zip(batch["id"].to_pylist(), batch["text"].to_pylist())
    return out


def chunks(text: str, min_chars: int, max_chars: int) -> list[str]:
    """Consecutive paragraphs joined until a chunk has `min_chars`; long paragraphs are cut at
    `max_chars`. The tail shorter than `min_chars` is dropped (menus, bylines)."""
    out, current = [], ""
    for paragraph in text.split("\n"):
        current = f"{current}\n{paragraph}" if current else paragraph
        while len(current) >= max_chars:
            out.append(current[:max_chars])
            current = current[max_chars:]
        if len(current) >= min_chars:
            out.append(current)
            current = ""
    return out


def heldout(doc_id: str, fraction: float, seed: int) -> bool:
    return split_value(doc_id, seed) < fraction


def roc_auc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores = np.array(positive + negative)
    ranks = np.empty(len(scores))
    order = scores.argsort(kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(model, positive: list[str], negative: list[str]) -> dict:
    def scores(texts: list[str]) -> list[float]:
        labels, probs = model.predict([normalise(t) for t in texts], k=2)
        return [float(dict(zip(ls, ps)).get(POSITIVE, 0.0)) for ls, ps in zip(labels, probs)]

    pos, neg = scores(positive), scores(negative)
    true_pos = sum(s >= 0.5 for s in pos)
    flagged = true_pos + sum(s >= 0.5 for s in neg)
    return {
        "positives": len(pos),
        "negatives": len(neg),
        "precision": round(true_pos / flagged, 4) if flagged else None,
        "recall": round(true_pos / len(pos), 4) if pos else None,
        "auc": round(roc_auc(pos, neg), 4) if pos and neg else None,
        "_negative_scores": neg,
    }


def build_examples(config: TrainConfig) -> dict:
    """Per language and class: train chunks, held-out chunks and held-out documents."""
    rng = random.Random(config.seed)
    data: dict = {}
    for lang, classes in sorted(config.languages.items()):
        per_class = {}
        for kind in LABELS:
            train, test_chunks, test_docs = [], [], []
            for i, spec in enumerate(classes.get(kind) or []):
                for doc_id, text in documents(spec, f"{lang}-{kind}-{i}"):
                    pieces = chunks(text, config.min_chars, config.max_chars)
                    if heldout(doc_id, config.heldout_fraction, config.seed):
                        test_chunks += pieces
                        test_docs.append(text)
                    else:
                        train += pieces
            per_class[kind] = (train, test_chunks, test_docs)
        if not all(per_class[kind][0] and per_class[kind][1] for kind in LABELS):
            data[lang] = None  # one class missing: nothing to separate
            continue
        n = min(len(per_class["positive"][0]), len(per_class["negative"][0]), config.max_examples_per_class)
        data[lang] = {
            kind: (rng.sample(train, n), test_chunks, test_docs)
            for kind, (train, test_chunks, test_docs) in per_class.items()
        }
    return data


def train(config: TrainConfig) -> dict:
    """Train, quantize, evaluate and save; returns the metadata written beside the model."""
    import fasttext

    data = build_examples(config)
    trained = {lang: d for lang, d in data.items() if d}
    if not trained:
        raise ValueError("no language has both positive and negative examples")
    lines = [f"{LABELS[kind]} {normalise(text)}" for d in trained.values() for kind in LABELS for text in d[kind][0]]
    random.Random(config.seed).shuffle(lines)
    params = {
        "epoch": 10,
        "lr": 0.1,
        "wordNgrams": 2,
        "dim": 32,
        "minCount": 2,
        "bucket": 200_000,
        **config.fasttext,
        "seed": config.seed,
        "thread": 1,
        "verbose": 0,
    }  # one thread: reproducible
    with tempfile.TemporaryDirectory() as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        model = fasttext.train_supervised(input=train_file, **params)
        if config.quantize is not None:
            model.quantize(
                input=train_file,
                **{"cutoff": 20_000, "qnorm": True, "retrain": True, **config.quantize, "thread": 1, "verbose": 0},
            )
    os.makedirs(os.path.dirname(os.path.abspath(config.output)), exist_ok=True)
    model.save_model(config.output)

    evaluation, calibration = {}, []
    for lang, d in trained.items():
        by_chunk = evaluate(model, d["positive"][1], d["negative"][1])
        by_doc = evaluate(model, d["positive"][2], d["negative"][2])
        calibration += by_doc.pop("_negative_scores")
        by_chunk.pop("_negative_scores")
        evaluation[lang] = {"chunks": by_chunk, "documents": by_doc}
    metadata = {
        "model": os.path.basename(config.output),
        "labels": {"positive": POSITIVE, "negative": NEGATIVE},
        "languages": sorted(trained),
        "skipped_languages": sorted(lang for lang, d in data.items() if not d),
        "sources": config.languages,
        "examples_per_class": {lang: len(d["positive"][0]) for lang, d in trained.items()},
        "fasttext": params,
        "quantize": config.quantize,
        "chunks": {"min_chars": config.min_chars, "max_chars": config.max_chars},
        "heldout_fraction": config.heldout_fraction,
        "seed": config.seed,
        "heldout": evaluation,
        # Score quantiles (0 %, 1 %, ... 100 %) of held-out raw-web documents: top_fraction -> threshold.
        "calibration": {
            "documents": len(calibration),
            "quantiles": [float(q) for q in np.quantile(calibration, np.linspace(0, 1, 101))],
        },
        "size_bytes": os.path.getsize(config.output),
    }
    with open(metadata_path(config.output), "w", encoding="utf-8") as handle:
        json.dump(metadata, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return metadata


def summary(config: TrainConfig, metadata: dict) -> list[str]:
    return [
        *(
            f"{lang}: {metadata['examples_per_class'][lang]} examples per class; held-out "
            f"chunks {result['chunks']}, documents {result['documents']}"
            for lang, result in metadata["heldout"].items()
        ),
        f"skipped (one class missing): {metadata['skipped_languages'] or 'none'}",
        f"model: {config.output} ({metadata['size_bytes'] / 2**20:.2f} MiB), metadata: {metadata_path(config.output)}",
    ]


def main(argv: list[str] | None = None) -> int:
    return training_main(
        argv,
        "quality_model",
        __doc__,
        "configs/quality_model.yaml",
        "model path (overrides `output`); metadata goes beside it as .json",
        load_config,
        train,
        summary,
    )


if __name__ == "__main__":
    sys.exit(main())
