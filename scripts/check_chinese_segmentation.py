#!/usr/bin/env python3
"""Check that the Chinese segmentation (stages/text.py) gives jieba's words, on real text.

    python scripts/check_chinese_segmentation.py [--all] [ROOT ...]   # default ../shared/data tests/fixtures

Every text under the ROOTs is segmented as Chinese by `stages.text.line_words_of(text, "zh")` and,
line by line, by `jieba.lcut` with the same word filter (what `line_words_of` gave before issue 17);
the script prints the numbers of documents, lines and lines whose words differ, the first differing
lines, and the CPU time of each. A document is a string of a .json/.jsonl file or a whole other file
(.gz read through); only documents with a Han character count, or all of them with --all (every
script as if it were Chinese). Exit status 1 when a line differs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from stages.text import _WORD, _jieba, line_words_of  # noqa: E402  (the repo root is on sys.path now)

HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
BINARY = (".parquet", ".zst", ".ftz", ".bin")


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for item in value for s in strings(item)] if isinstance(value, list) else []


def documents(path: str) -> list[str]:
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as handle:
        try:
            text = handle.read().decode("utf-8", "replace")
        except (OSError, EOFError):  # the truncated archives among the fixtures
            return []
    name = path.removesuffix(".gz")
    if name.endswith(".json"):
        try:
            return strings(json.loads(text))
        except ValueError:
            return [text]
    if name.endswith(".jsonl"):
        found = []
        for line in text.splitlines():
            try:
                found += strings(json.loads(line))
            except ValueError:
                found.append(line)
        return found
    return [text]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "roots",
        nargs="*",
        default=[os.path.join(REPO, "..", "shared", "data"), os.path.join(REPO, "tests", "fixtures")],
    )
    parser.add_argument("--all", action="store_true", help="also the documents without a Han character")
    args = parser.parse_args()
    texts = []
    for root in args.roots:
        for folder, _, names in sorted(os.walk(root)):
            for name in sorted(names):
                if not name.endswith(BINARY):
                    texts += [t for t in documents(os.path.join(folder, name)) if args.all or HAN.search(t)]
    jieba = _jieba()
    line_words_of("中文", "zh")  # loads its dictionaries
    lines = differing = 0
    ours = theirs = 0.0
    for text in texts:
        started = time.process_time()
        words = line_words_of(text, "zh")
        ours += time.process_time() - started
        started = time.process_time()
        expected = [list(filter(_WORD.search, jieba.lcut(line))) for line in text.splitlines()]
        theirs += time.process_time() - started
        lines += len(expected)
        for line, got, want in zip(text.splitlines(), words, expected):
            if got != want:
                differing += 1
                if differing <= 10:
                    print(f"{line[:80]!r}\n  jieba: {want}\n  ours:  {got}")
        differing += abs(len(words) - len(expected))
    size = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    print(
        f"{len(texts):,} documents, {size:.1f} MB, {lines:,} lines: {differing} differ; "
        f"CPU s: jieba {theirs:.2f}, line_words_of {ours:.2f}"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
