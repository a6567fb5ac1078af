"""PII stage throughput: `python -m bench.pii_throughput [--mb 100] [--reference-mb 2] [--show]`.

Builds a web corpus of at least `--mb` MB by repeating the real web text of
../shared/data/web (C4, CCNet, Wikipedia, and the WARC/WET pages through the
ingest stage), cached under bench/work/. Runs the `pii` stage over all of it
on one core, and presidio's pattern recognizers over whole documents
(`bench.pii.reference_analyzer`) on the first `--reference-mb` MB, then
checks on that subset that the stage's prefilter loses nothing: the stage
without prefilter (presidio over whole documents with the same recognizers)
must find the same spans. `--show` prints every replacement in the unique
text with its context, for inspecting false positives. Ends with
`mb_per_s S reference_mb_per_s R speedup X`. Speeds are MB of UTF-8 text per
CPU-second of this process (one core), so other load on the machine does not
skew the ratio; wall-clock MB/s is printed beside them.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from collections import Counter

from stages.base import document_batch
from stages.pii import PiiScrubber

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")
BATCH = 256


def unique_texts(shared: str) -> list[str]:
    """Every document of ../shared/data/web once, in a fixed order."""
    from stages.ingest import InputFile, detect_format, read_file

    texts = []
    for path in sorted(glob.glob(os.path.join(shared, "web", "*"))):
        if path.endswith(".txt"):  # Wikipedia: one article per line
            with open(path, encoding="utf-8") as handle:
                texts += [line.strip() for line in handle if line.strip()]
            continue
        fmt = detect_format(path)
        file = InputFile("web", path, os.path.basename(path), fmt, "text", None, "url")
        for batch in read_file(file):
            kept = batch.filter(batch["drop_stage"].is_null())
            texts += kept["text"].to_pylist()
    return texts


def corpus(shared: str, megabytes: int) -> tuple[list[str], int]:
    """The unique texts repeated to >= `megabytes` MB (cached); returns texts and the unique count."""
    path = os.path.join(WORK, f"pii-web-{megabytes}mb-v1.jsonl")
    if not os.path.exists(path):
        base = unique_texts(shared)
        size = sum(len(t.encode()) for t in base)
        os.makedirs(WORK, exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"unique": len(base)}) + "\n")
            for _ in range(-(-megabytes * 10**6 // size)):
                for text in base:
                    handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        os.replace(path + ".tmp", path)
    with open(path, encoding="utf-8") as handle:
        unique = json.loads(handle.readline())["unique"]
        return [json.loads(line)["text"] for line in handle], unique


def megabytes(texts: list[str]) -> float:
    return sum(len(t.encode()) for t in texts) / 1e6


def timed(function, *args) -> tuple[float, float, object]:
    """CPU seconds, wall seconds and result of `function(*args)`."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args)
    return time.process_time() - cpu, time.perf_counter() - wall, result


def run_stage(stage: PiiScrubber, texts: list[str]) -> Counter:
    counts: Counter = Counter()
    for i in range(0, len(texts), BATCH):
        out = stage.process(document_batch(texts[i : i + BATCH]))
        for column in out.column_names:
            if column.startswith("pii_"):
                counts[column] += sum(out[column].to_pylist())
    return counts


def head(texts: list[str], mb: float) -> list[str]:
    out, size = [], 0
    for text in texts:
        if size >= mb * 1e6:
            break
        out.append(text)
        size += len(text.encode())
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.pii import reference_analyzer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--mb", type=int, default=100, help="corpus size (default: %(default)s)")
    parser.add_argument("--reference-mb", type=float, default=2.0, help="subset for whole-document presidio")
    parser.add_argument("--show", action="store_true", help="print each replacement in the unique text")
    args = parser.parse_args(argv)
    texts, unique = corpus(args.shared, args.mb)
    stage = PiiScrubber()
    stage.setup()
    run_stage(stage, texts[:BATCH])  # warm-up: lazy loads (suffix list, regex compilation)
    seconds, wall, counts = timed(run_stage, stage, texts)
    size = megabytes(texts)
    print(
        f"stage: {size:.1f} MB, {len(texts)} documents in {seconds:.1f} CPU s: {size / seconds:.2f} MB/s "
        f"(wall {size / wall:.2f} MB/s)"
    )
    repeats = len(texts) / unique
    print(
        "replacements per copy of the unique text:",
        {column: round(n / repeats, 1) for column, n in sorted(counts.items()) if n},
    )

    subset = head(texts, args.reference_mb)
    reference = reference_analyzer()
    reference(subset[0])
    reference_seconds, wall, _ = timed(lambda: [reference(text) for text in subset])
    sub_size = megabytes(subset)
    print(
        f"presidio whole documents: {sub_size:.1f} MB in {reference_seconds:.1f} CPU s: "
        f"{sub_size / reference_seconds:.3f} MB/s (wall {sub_size / wall:.3f} MB/s)"
    )

    whole = PiiScrubber(prefilter=False)
    whole.setup()
    same = sum(stage.find(text) == whole.find(text) for text in subset)
    print(f"prefilter lossless: {same}/{len(subset)} documents with identical spans to whole-document analysis")

    if args.show:
        for text in texts[:unique]:
            for span in stage.find(text):
                print(
                    f"{span.entity}\t{text[span.start : span.end]!r}\t{text[max(0, span.start - 50) : span.end + 20]!r}"
                )
    speed, reference_speed = size / seconds, sub_size / reference_seconds
    print(f"mb_per_s {speed:.2f} reference_mb_per_s {reference_speed:.3f} speedup {speed / reference_speed:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
