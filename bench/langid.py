"""Language ID: accuracy on labelled sentences, speed on real documents, worker memory.

    python -m bench.langid DIR [--model ensemble|lid176|lingua] [--half even|odd] [--brief]
    python -m bench.langid --docs configs/corpus.yaml
    python -m bench.langid --startup DIR

DIR holds `<iso639-1>.txt` files, one sentence per line; every line goes through the langid stage
as one document. Prints per-language accuracy, the most frequent confusions, and ends with
`macro_accuracy A macro_supported S micro_accuracy M sentences_per_s T`: A is the mean over every
language of DIR, S over those lid.176 supports (as published figures are), M over sentences.
`--half` keeps the even or odd lines of each file (the ensemble rule was tuned on both: the two
halves show how much of its gain is fit to the particular sentences).

`--docs` runs lid176 and ensemble over the web, wiki and zh sources of a corpus config in the same
process, alternating, and prints documents/s of each, their ratio, and the fraction of documents
the ensemble sent to lingua. `--startup` starts one worker per model in a fresh process and
prints its start-up seconds and peak RSS, after setup and after labelling all of DIR (every
language's models then loaded: the worst case).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import time

import pyarrow as pa

from stages.base import document_batch
from stages.langid import LACKING, LanguageId, normalise_lang

MODELS = ("lid176", "ensemble", "lingua")
DOC_SOURCES = ("web", "wiki", "zh")


def read_sentences(directory: str, half: str | None = None) -> dict[str, list[str]]:
    sentences = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".txt"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                lines = [line.strip() for line in handle if line.strip()]
            sentences[normalise_lang(name[:-4])] = lines if half is None else lines[half == "odd" :: 2]
    return sentences


def accuracy(directory: str, model: str, half: str | None, brief: bool = False) -> None:
    stage = LanguageId(model=model)
    stage.setup()
    results, confusions, seconds = {}, collections.Counter(), 0.0
    for lang, sentences in read_sentences(directory, half).items():
        started = time.perf_counter()
        predicted = stage.score(document_batch(sentences))["lang"]
        seconds += time.perf_counter() - started
        confusions.update((lang, p) for p in predicted if p != lang)
        results[lang] = (sum(p == lang for p in predicted), len(sentences))
    for lang, (correct, n) in [] if brief else results.items():
        note = "  (not supported by lid.176)" if lang in LACKING else ""
        print(f"{lang}\t{correct / n:.4f}\t{n}{note}")
    print(
        "most frequent confusions (true -> predicted: sentences):",
        ", ".join(f"{true}->{predicted}: {n}" for (true, predicted), n in confusions.most_common(15)),
    )
    total = sum(n for _, n in results.values())
    accuracies = {lang: correct / n for lang, (correct, n) in results.items()}
    supported = [a for lang, a in accuracies.items() if lang not in LACKING]
    below = sorted((a, lang) for lang, a in accuracies.items())[:5]
    print(
        f"model {model} languages {len(results)} sentences {total} lingua_consulted {stage.consulted / total:.3f} "
        f"group_refined {stage.refined / total:.3f} lowest " + " ".join(f"{lang} {a:.3f}" for a, lang in below)
    )
    print(
        f"macro_accuracy {sum(accuracies.values()) / len(accuracies):.4f} "
        f"macro_supported {sum(supported) / len(supported):.4f} "
        f"micro_accuracy {sum(c for c, _ in results.values()) / total:.4f} sentences_per_s {total / seconds:.0f}"
    )


def corpus_documents(config_path: str) -> tuple[list[pa.Table], int]:
    """The web, wiki and zh documents of a corpus config (quarantined records left out), in batches
    of the config's batch_size; and their text bytes."""
    from pipelines.config import load_config
    from stages.ingest import list_input_files, read_file

    config = load_config(config_path)
    texts = []
    for name in DOC_SOURCES:
        for file in list_input_files(config.sources[name]):
            for table in read_file(file):
                texts += [
                    t for t, stage in zip(table["text"].to_pylist(), table["drop_stage"].to_pylist()) if stage is None
                ]
    size = config.execution.batch_size
    return [document_batch(texts[i : i + size]) for i in range(0, len(texts), size)], sum(
        len(t.encode()) for t in texts
    )


def documents(config_path: str, rounds: int = 3) -> None:
    batches, size = corpus_documents(config_path)
    n = sum(b.num_rows for b in batches)
    print(f"documents {n} ({size / 1e6:.1f} MB) from sources {', '.join(DOC_SOURCES)} of {config_path}")
    stages = {model: LanguageId(model=model) for model in ("lid176", "ensemble")}
    best = {}
    for stage in stages.values():
        stage.setup()
    for _ in range(rounds):  # alternating, best of `rounds`: the machine is shared
        for model, stage in stages.items():
            stage.consulted = stage.refined = 0
            started = time.process_time()
            langs = collections.Counter(lang for batch in batches for lang in stage.score(batch)["lang"])
            seconds = time.process_time() - started
            best[model] = min(best.get(model, float("inf")), seconds)
            print(
                f"  {model}: {n / seconds:.0f} documents/CPU-s; labels "
                + ", ".join(f"{lang} {count}" for lang, count in langs.most_common(6))
            )
    ensemble = stages["ensemble"]
    print(
        f"lid176_docs_per_s {n / best['lid176']:.0f} ensemble_docs_per_s {n / best['ensemble']:.0f} "
        f"ratio {best['lid176'] / best['ensemble']:.2f} lingua_consulted {ensemble.consulted / n:.3f} "
        f"group_refined {ensemble.refined / n:.3f}"
    )


def measure_worker(model: str, directory: str) -> None:
    """In this (fresh) process: one worker's start-up time and peak RSS."""

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = rss_mb()
    started = time.perf_counter()
    stage = LanguageId(model=model)
    stage.setup()
    setup_s = time.perf_counter() - started
    after_setup = rss_mb()
    for sentences in read_sentences(directory).values():
        stage.score(document_batch(sentences))
    print(
        f"model {model} setup_s {setup_s:.2f} rss_mb_base {base:.0f} rss_mb_after_setup {after_setup:.0f} "
        f"rss_mb_peak_all_languages {rss_mb():.0f} declared_memory_mb {stage.resources.memory_mb}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", help="folder of <iso639-1>.txt files, one sentence per line")
    parser.add_argument("--model", choices=MODELS, default="ensemble")
    parser.add_argument("--half", choices=("even", "odd"), help="only the even or odd lines of each file")
    parser.add_argument("--brief", action="store_true", help="no per-language lines")
    parser.add_argument("--docs", metavar="CONFIG", help="documents/s on the config's web, wiki and zh sources")
    parser.add_argument("--startup", action="store_true", help="start-up time and memory of one worker per model")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)  # one --startup measurement
    args = parser.parse_args(argv)
    if args.docs:
        documents(args.docs)
    elif args.worker:
        measure_worker(args.worker, args.dir)
    elif args.startup:
        for model in MODELS:
            subprocess.run([sys.executable, "-m", "bench.langid", args.dir, "--worker", model], check=True)
    elif args.dir:
        accuracy(args.dir, args.model, args.half, args.brief)
    else:
        parser.error("give DIR, --docs CONFIG, or --startup DIR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
