"""`python -m pipelines.perplexity_model --config configs/perplexity_model.yaml`: train the
per-language n-gram models that `stages/perplexity.py` scores documents with.

Per language: the reference sources' documents (Wikipedia, curated prose) are split into train
and held-out sets by a hash of their id, tokenised as the stage tokenises them, and an
interpolated modified Kneser-Ney model (Chen & Goodman; KenLM's estimator, as CCNet uses) is
estimated from the training documents. The model is hand-written in numpy because no maintained
PyPI package trains Kneser-Ney models offline: `kenlm` only queries (its `lmplz` trainer is a
C++ build), NLTK's `KneserNeyInterpolated` is pure Python and scores a few thousand words a
second. The held-out reference documents and each language's raw web sources are then scored:
the web documents' perplexity percentiles (CCNet's head/middle/tail cuts at 30 and 60) and the
separation of reference from web text (ROC AUC) go into models/perplexity/perplexity.json with
the sources, their files' sha256 digests, the n-gram counts and the discounts.

Files: `<lang>.npz` per language (vocabulary, per order sorted n-gram hashes, log10
probabilities and backoff weights as float16) and `perplexity.json`. The zip entries carry a fixed
date, so the same input gives byte-identical files (the digests in the metadata show it).
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field

import numpy as np

from pipelines.model_training import read_training_config, training_main
from pipelines.quality_model import documents, heldout, roc_auc
from stages.ingest import SourceConfig, list_input_files
from stages.perplexity import (
    BOS,
    METADATA,
    SPECIALS,
    UNK,
    NgramModel,
    id_stream,
    line_units,
    ngram_keys,
    since_bos,
)
from tokenizer.models import file_sha256

FORMAT_VERSION = 1  # of the files: bump when the stage could no longer read older ones


@dataclass
class TrainConfig:
    languages: dict[str, dict[str, list[dict]]]  # lang -> {reference: [source], web: [source]}
    output: str = "models/perplexity"
    seed: int = 0
    heldout_fraction: float = 0.2
    order: int = 4
    min_word_count: int = 2  # rarer words are <unk> (which so learns how often rare words occur)
    min_ngram_count: dict[int, int] = field(default_factory=dict)  # order -> least raw count kept
    max_chars: int = 20_000  # the stage's scored prefix, for the held-out and web figures


def load_config(path: str) -> TrainConfig:
    config = read_training_config(path, TrainConfig)
    for lang, kinds in config.languages.items():
        if set(kinds) - {"reference", "web"} or not kinds.get("reference"):
            raise ValueError(f"{path}: languages.{lang} takes a reference source list and optionally web")
    if config.order < 2:
        raise ValueError(f"{path}: order must be at least 2")
    return config


def discounts(adjusted: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D(0), D(1), D(2), D(3+) from the counts of counts."""
    n = [int(np.count_nonzero(adjusted == c)) for c in (1, 2, 3, 4)]
    if min(n) == 0:  # too little text for the estimate: absolute discounting
        return np.array([0.0, 0.5, 0.5, 0.5])
    y = n[0] / (n[0] + 2 * n[1])
    found = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    return np.array([0.0] + [min(max(d, 0.0), c) for d, c in zip(found, (1, 2, 3))])


def estimate(ids: np.ndarray, order: int, vocab_size: int, min_counts: dict[int, int]) -> tuple[dict, dict]:
    """Interpolated modified Kneser-Ney from an id stream (lines as <s> ... </s>): the arrays of
    an `NgramModel` and figures for the metadata. Orders below the highest use continuation
    counts (distinct words seen before), except n-grams starting with <s>, which use raw counts.
    N-grams below `min_counts[k]` occurrences are pruned after estimation; a pruned one falls
    back to its lower order with its context's backoff weight (not renormalised, as KenLM's
    --prune)."""
    dist = since_bos(ids)
    keys = ngram_keys(ids, order)
    tables: dict[int, dict] = {}
    for k in range(1, order + 1):
        valid = np.flatnonzero((dist >= k - 1) & (ids != BOS))
        unique, first, raw = np.unique(keys[k][valid], return_index=True, return_counts=True)
        where = valid[first]  # a position where each k-gram ends
        tables[k] = {
            "keys": unique,
            "raw": raw,
            "context": keys[k - 1][where - 1] if k > 1 else None,
            "suffix": keys[k - 1][where] if k > 1 else None,
            "starts_bos": ids[where - k + 1] == BOS if k > 1 else np.zeros(len(unique), bool),
        }
    for k in range(1, order + 1):
        table = tables[k]
        adjusted = table["raw"].copy()
        if k < order:  # continuation counts: the distinct (k+1)-grams this k-gram ends
            suffixes, extensions = np.unique(tables[k + 1]["suffix"], return_counts=True)
            continuation = extensions[np.searchsorted(suffixes, table["keys"])]
            adjusted = np.where(table["starts_bos"], table["raw"], continuation)
        table["adjusted"] = adjusted
    figures: dict = {"ngrams": {}, "kept_ngrams": {}, "discounts": {}}
    probs: dict[int, np.ndarray] = {}
    gammas: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # k -> (context keys, gamma) of order k
    for k in range(1, order + 1):
        table = tables[k]
        a = table["adjusted"]
        d = discounts(a)
        figures["discounts"][k] = [round(float(x), 4) for x in d[1:]]
        discounted = a - d[np.minimum(a, 3)]
        if k == 1:
            total = a.sum()
            gamma = (d[1] * np.sum(a == 1) + d[2] * np.sum(a == 2) + d[3] * np.sum(a >= 3)) / total
            prob = np.full(vocab_size, gamma / (vocab_size - 1))  # uniform over all but <s>
            prob[table["keys"].astype(np.int64)] += discounted / total
            prob[BOS] = 0.0
            probs[1] = prob
            continue
        contexts, inverse = np.unique(table["context"], return_inverse=True)
        total = np.bincount(inverse, weights=a)
        mass = sum(d[c] * np.bincount(inverse, weights=(np.minimum(a, 3) == c)) for c in (1, 2, 3))
        gamma = mass / total
        gammas[k] = (contexts, gamma)
        lower = lookup(probs, tables, k - 1, table["suffix"])
        probs[k] = discounted / total[inverse] + gamma[inverse] * lower
    arrays: dict[str, np.ndarray] = {"order": np.array(order)}
    for k in range(1, order + 1):
        table = tables[k]
        if k < order:  # backoff weight of each k-gram as the context of a (k+1)-gram
            contexts, gamma = gammas[k + 1]
            own = np.arange(vocab_size, dtype=np.uint64) if k == 1 else table["keys"]
            index = np.minimum(np.searchsorted(contexts, own), len(contexts) - 1)
            backoff = np.where(contexts[index] == own, np.log10(gamma[index]), 0.0)
        if k == 1:
            with np.errstate(divide="ignore"):
                arrays["logp1"] = np.where(probs[1] > 0, np.log10(probs[1]), -99.0).astype(np.float32)
            arrays["backoff1"] = backoff.astype(np.float32)
            figures["ngrams"][1] = figures["kept_ngrams"][1] = len(table["keys"])
            continue
        keep = table["raw"] >= min_counts.get(k, 1)
        arrays[f"keys{k}"] = table["keys"][keep]
        arrays[f"logp{k}"] = np.log10(probs[k][keep]).astype(np.float16)
        if k < order:
            arrays[f"backoff{k}"] = backoff[keep].astype(np.float16)
        figures["ngrams"][k], figures["kept_ngrams"][k] = len(table["keys"]), int(keep.sum())
    return arrays, figures


def lookup(probs: dict, tables: dict, k: int, keys: np.ndarray) -> np.ndarray:
    """Interpolated probabilities of order-k n-grams by their hashes (every suffix of a seen
    (k+1)-gram is a seen k-gram)."""
    if k == 1:
        return probs[1][keys.astype(np.int64)]
    return probs[k][np.searchsorted(tables[k]["keys"], keys)]


def save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed with a fixed date on every entry: same arrays, same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def source_files(specs: list[dict], name: str) -> list[dict]:
    """Each input file of the sources, relative to the cwd, with its sha256."""
    files = []
    for i, spec in enumerate(specs):
        for file in list_input_files(SourceConfig(name=f"{name}-{i}", **spec)):
            files.append({"path": os.path.relpath(file.path), "sha256": file_sha256(file.path)})
    return files


def train_language(lang: str, kinds: dict[str, list[dict]], config: TrainConfig) -> tuple[dict, dict]:
    """The model arrays and metadata entry of one language."""
    train_docs, heldout_docs = [], []
    for i, spec in enumerate(kinds["reference"]):
        for doc_id, text in documents(spec, f"{lang}-reference-{i}"):
            (heldout_docs if heldout(doc_id, config.heldout_fraction, config.seed) else train_docs).append(text)
    lines = [units for text in train_docs for units in line_units(text, lang)]
    words, counts = np.unique([unit for units in lines for unit in units], return_counts=True)
    frequent = counts >= config.min_word_count
    order = np.lexsort((words[frequent], -counts[frequent]))  # most frequent first, ties by spelling
    vocab = list(SPECIALS) + [str(w) for w in words[frequent][order]]
    ids = id_stream(lines, {word: i for i, word in enumerate(vocab)})
    arrays, figures = estimate(ids, config.order, len(vocab), config.min_ngram_count)
    arrays["vocab"] = np.frombuffer("\n".join(vocab).encode("utf-8"), np.uint8)
    arrays["unk_log10_types"] = np.array(np.log10(max(np.count_nonzero(~frequent), 1)))
    model = NgramModel(vocab, arrays)

    def perplexities(texts: list[str]) -> list[float]:
        values = model.perplexities([line_units(t[: config.max_chars], lang) for t in texts])
        return [v for v in values if np.isfinite(v)]

    web_docs = [text for i, spec in enumerate(kinds.get("web") or []) for _, text in documents(spec, f"{lang}-web-{i}")]
    reference_scores, web_scores = perplexities(heldout_docs), perplexities(web_docs)
    entry = {
        "file": f"{lang}.npz",
        "sources": {kind: source_files(specs, f"{lang}-{kind}") for kind, specs in kinds.items()},
        "train_documents": len(train_docs),
        "train_tokens": int(np.count_nonzero(ids != BOS)),
        "vocab_size": len(vocab),
        "unk_rate": round(float(np.mean(ids[ids != BOS] == UNK)), 4),
        **figures,
        "heldout": {
            "reference_documents": len(reference_scores),
            "reference_median": round(float(np.median(reference_scores)), 1) if reference_scores else None,
            "web_documents": len(web_scores),
            "web_median": round(float(np.median(web_scores)), 1) if web_scores else None,
            # lower perplexity = more reference-like: AUC of -perplexity, reference as the positives
            "auc": round(roc_auc([-s for s in reference_scores], [-s for s in web_scores]), 4)
            if reference_scores and web_scores
            else None,
        },
        # Perplexity at percentiles 0, 1, ..., 100 of the raw web documents (CCNet's buckets, max_percentile).
        "web_percentiles": [round(float(q), 2) for q in np.percentile(web_scores, np.arange(101))]
        if web_scores
        else None,
    }
    return arrays, entry


def train(config: TrainConfig) -> dict:
    """Train every language, save the models and perplexity.json; returns the metadata."""
    os.makedirs(config.output, exist_ok=True)
    languages = {}
    for lang, kinds in sorted(config.languages.items()):
        arrays, entry = train_language(lang, kinds, config)
        path = os.path.join(config.output, entry["file"])
        save_npz(path, arrays)
        entry["sha256"], entry["size_bytes"] = file_sha256(path), os.path.getsize(path)
        languages[lang] = entry
    metadata = {
        "format_version": FORMAT_VERSION,
        "model": "interpolated modified Kneser-Ney, backoff form, hashed n-grams",
        "order": config.order,
        "min_word_count": config.min_word_count,
        "min_ngram_count": config.min_ngram_count,
        "heldout_fraction": config.heldout_fraction,
        "seed": config.seed,
        "max_chars": config.max_chars,
        "languages": languages,
    }
    with open(os.path.join(config.output, METADATA), "w", encoding="utf-8") as handle:
        json.dump(metadata, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return metadata


def summary(config: TrainConfig, metadata: dict) -> list[str]:
    return [
        *(
            f"{lang}: {entry['train_tokens']} tokens, vocabulary {entry['vocab_size']}, n-grams kept "
            f"{entry['kept_ngrams']}, {entry['size_bytes'] / 2**20:.2f} MiB; held-out {entry['heldout']}"
            for lang, entry in metadata["languages"].items()
        ),
        f"models: {config.output}/ ({METADATA} and one .npz per language)",
    ]


def main(argv: list[str] | None = None) -> int:
    return training_main(
        argv,
        "perplexity_model",
        __doc__,
        "configs/perplexity_model.yaml",
        "model directory (overrides `output`)",
        load_config,
        train,
        summary,
    )


if __name__ == "__main__":
    sys.exit(main())
