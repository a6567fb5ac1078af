"""`python -m tokenizer.train`: train the tokenizer on a balanced sample of the cleaned corpus.

Two streaming passes over the documents: the first measures each one (group,
characters, held-out or not) and keeps some held-out text per language for
the report; the second feeds the chosen documents, each as many times as the
balance requires, to the HF `tokenizers` trainer. Writes tokenizer.json,
tokenizer_config.json, special_tokens_map.json and report.{json,md}; with
`tokenizer.extension.add` set, also the extended tokenizer and its before/after
report in `extended/` (tokenizer.extend).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc
from tqdm import tqdm

from pipelines.workdir import file_info, is_uri
from tokenizer.config import Config, load_config, parse_set
from tokenizer.corpus import iter_documents, list_files
from tokenizer.extend import comparison, extend_files
from tokenizer.models import complete_wordpiece, new_tokenizer, save
from tokenizer.report import measure, write_report
from tokenizer.sampling import heldout_mask, weighted_counts

EXTENSION_DIR = "extended"  # inside tokenizer.dir


@dataclass
class Scan:
    """What the first pass learns: one entry per document, in reading order."""

    groups: list[str] = field(default_factory=list)
    chars: list[np.ndarray] = field(default_factory=list)
    heldout: list[np.ndarray] = field(default_factory=list)
    heldout_texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def scan(docs: str | list[str], by: str, heldout_fraction: float, report_max_chars: int) -> Scan:
    result = Scan()
    kept_chars: dict[str, int] = defaultdict(int)
    with tqdm(desc="tokenizer: scanning documents", unit=" docs", file=sys.stderr) as progress:
        for batch in iter_documents(docs):
            held = heldout_mask(batch["id"].to_pylist(), heldout_fraction)
            result.groups += [g or "unknown" for g in batch[by].to_pylist()]
            result.chars.append(pc.utf8_length(batch["text"]).to_numpy(zero_copy_only=False))
            result.heldout.append(held)
            for index in np.flatnonzero(held):
                lang = batch["lang"][int(index)].as_py() or "unknown"
                if kept_chars[lang] < report_max_chars:
                    text = batch["text"][int(index)].as_py()
                    result.heldout_texts[lang].append(text)
                    kept_chars[lang] += len(text)
            progress.update(batch.num_rows)
    return result


def training_texts(docs: str | list[str], counts: np.ndarray) -> Iterator[str]:
    """Second pass: each document's text `counts[i]` times (same order as the scan)."""
    position = 0
    for batch in iter_documents(docs, columns=("text",)):
        chosen = counts[position : position + batch.num_rows]
        for index in np.flatnonzero(chosen):
            text = batch["text"][int(index)].as_py()
            for _ in range(chosen[index]):
                yield text
        position += batch.num_rows


def fingerprint(config: Config) -> str:
    """What the tokenizer depends on: its settings, the seed and the documents (names and
    sizes: the corpus pipeline's output is deterministic, so a rerun on the same input
    keeps it). `pipelines.shards` retrains when this changes."""
    settings = dataclasses.asdict(config.tokenizer)
    settings.pop("dir")
    files = [(os.path.basename(path), file_info(path).size) for path in list_files(config.docs)]
    data = json.dumps({"tokenizer": settings, "seed": config.seed, "docs": files}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def train(config: Config, show_progress: bool = True) -> dict:
    """Train, save into `config.tokenizer.dir` (and extend into its `extended/` when configured);
    returns the report's figures: {"tokenizer": per language, "extension": {"base", "extended"}}.
    The documents may be at a URI; the tokenizer is saved locally (HF tokenizers writes files)."""
    tok = config.tokenizer
    if is_uri(tok.dir):
        raise ValueError(
            f"tokenizer.dir {tok.dir!r}: train into a local folder (python -m pipelines.shards "
            "trains a tokenizer whose dir is a URI locally, then uploads it)"
        )
    found = scan(config.docs, tok.sample.by, tok.heldout_fraction, tok.report_max_chars)
    chars = np.concatenate(found.chars) if found.chars else np.zeros(0, dtype=np.int64)
    heldout = np.concatenate(found.heldout) if found.heldout else np.zeros(0, dtype=bool)
    if not (~heldout).any():
        raise ValueError(f"no training documents in {config.docs!r}")
    groups = np.array(found.groups, dtype=object)
    training = np.flatnonzero(~heldout)
    total = min(tok.sample.max_chars, int(chars[training].sum()))
    counts = np.zeros(len(chars), dtype=np.int64)
    counts[training], sample_stats = weighted_counts(
        groups[training], chars[training], tok.sample.weights, total, tok.sample.max_repeats, config.seed
    )
    tokenizer, trainer = new_tokenizer(tok, show_progress)
    tokenizer.train_from_iterator(training_texts(config.docs, counts), trainer, length=int(counts.sum()))
    if tok.model == "wordpiece":
        complete_wordpiece(tokenizer)
    save(tokenizer, tok.dir, tok)
    results = {"tokenizer": measure(tokenizer, dict(found.heldout_texts))}
    notes = [
        f"`{tok.model}`, vocabulary {tokenizer.get_vocab_size()} (special tokens included), trained on "
        f"{int((counts * chars).sum())} characters; measured on held-out documents "
        f"(id hash < {tok.heldout_fraction}), never seen in training.",
        "",
        "Training text by " + tok.sample.by + " (characters):",
        "",
        "| group | documents | available | requested share | achieved share | repeats |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes += [
        f"| {g} | {s['documents']} | {s['available']} | {s['requested_share']:.3f} | "
        f"{s['achieved_share']:.3f} | {s['epochs']:.2f} |"
        for g, s in sample_stats.items()
    ]
    extension_dir = os.path.join(tok.dir, EXTENSION_DIR)
    shutil.rmtree(extension_dir, ignore_errors=True)  # never leave one extended from an older tokenizer
    extension = {}
    if tok.extension.add:
        # Same held-out fraction: the extension never learns from the documents measured.
        extension["extension"] = extend_files(
            os.path.join(tok.dir, "tokenizer.json"),
            tok.extension.docs or config.docs,
            tok.extension.add,
            extension_dir,
            tok.extension.langs,
            tok.heldout_fraction,
            tok.report_max_chars,
            tok.extension.script,
        )
        notes += [
            "",
            f"Extended by {tok.extension.add} tokens in `{EXTENSION_DIR}/` (before/after: "
            f"`{EXTENSION_DIR}/report.md`).",
        ]
    # Written last: its fingerprint tells `pipelines.shards` that this run completed.
    write_report(
        tok.dir,
        "Tokenizer report",
        results,
        notes,
        {
            "model": tok.model,
            "vocab_size": tokenizer.get_vocab_size(),
            "sample_by": tok.sample.by,
            "sample": sample_stats,
            "heldout_fraction": tok.heldout_fraction,
            "fingerprint": fingerprint(config),
        },
    )
    return {**results, **extension}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tokenizer.train",
        description="Train a byte-level BPE (or Unigram/WordPiece) tokenizer on the cleaned corpus, balanced "
        "across languages or sources; writes tokenizer.json, tokenizer_config.json, special_tokens_map.json "
        "and report.{json,md} (characters per token, tokens per word on held-out text).",
        epilog="Example: python -m tokenizer.train --config configs/shards.yaml --set tokenizer.vocab_size=16384",
    )
    parser.add_argument("--config", default="configs/shards.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--docs", help="documents: Parquet/.txt files, folders or globs (overrides `docs`)")
    parser.add_argument("--out", help="output folder (overrides tokenizer.dir)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. tokenizer.model=unigram (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = parse_set(args.set)
        if args.docs:
            overrides["docs"] = args.docs
        if args.out:
            overrides["tokenizer.dir"] = args.out
        config = load_config(args.config, overrides)
        results = train(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"tokenizer.train: {error}", file=sys.stderr)
        return 2
    for lang, figures in results["tokenizer"].items():
        print(f"{lang}\tchars/token {figures['chars_per_token']}\ttokens/word {figures['tokens_per_word']}")
    print(f"tokenizer: {config.tokenizer.dir}/tokenizer.json")
    if "extension" in results:
        print(comparison(results["extension"]))
        print(f"extended tokenizer: {os.path.join(config.tokenizer.dir, EXTENSION_DIR)}/tokenizer.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
