#!/usr/bin/env python3
"""Build data/ablate/: the raw web input and the held-out reference text of `make ablate`.

    python scripts/build_ablate_input.py [--shared PATH]   # default ../shared/data

`data/ablate/web/` is raw English web text as a crawl delivers it: the C4 and CCNet documents and
the WARC pages of ../shared/data/web, with crawl-style redundancy added (seeded exact copies and
near-duplicates of some documents, made by build_sample's `near_duplicate`). `data/ablate/heldout/`
is English prose used nowhere else in the repository (Leipzig sentences the sample and the
fixtures do not take), the text every ablation variant is evaluated on; input documents sharing a
13-word n-gram with it (the decontaminate stage's index) are left out. Deterministic (seed 0):
a rebuild gives byte-identical files. data/ablate/README.md is written from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from build_sample import (  # noqa: E402  (scripts/ is on sys.path when run as a script)
    DEFAULT_SHARED,
    _jsonl_bytes,
    _lines,
    _read_text,
    _write,
    _zstd_bytes,
    load_c4,
    load_ccnet,
    near_duplicate,
)

from stages.decontaminate import DecontaminateParams, ngram_hashes  # noqa: E402

SEED = 0
OUT = os.path.join(REPO, "data", "ablate")
WARC_FILES = ["warc_sample-0000.warc.gz", "warc_sample-0001.warc.gz", "whirlwind.warc.gz"]
# Crawl redundancy: half the documents get copies, 1 + Geometric(0.5) of them (at most MAX_COPIES),
# each an exact copy or a near-duplicate with even odds: about one copy per document on average.
COPY_SHARE, MAX_COPIES = 0.5, 8
# Held-out: lines of langid/sentences/en.txt that data/sample (lines 1-120) and tests/fixtures
# (none of en.txt) do not use, 10 consecutive sentences per document.
HELDOUT_FIRST_LINE, HELDOUT_SENTENCES_PER_DOC = 121, 10


def with_copies(docs: list[dict], rng: random.Random) -> tuple[list[dict], dict]:
    """The documents plus their copies, shuffled; counts of each kind."""
    out, counts = list(docs), {"originals": len(docs), "exact": 0, "near": 0}
    for doc in docs:
        if rng.random() >= COPY_SHARE:
            continue
        copies = 1
        while copies < MAX_COPIES and rng.random() < 0.5:
            copies += 1
        for _ in range(copies):
            if rng.random() < 0.5:
                out.append(dict(doc))
                counts["exact"] += 1
            else:
                text, _ = near_duplicate(doc["text"], rng)
                out.append({**doc, "text": text})
                counts["near"] += 1
    rng.shuffle(out)
    return out, counts


def heldout_docs(shared: str) -> list[dict]:
    lines = _lines(_read_text(os.path.join(shared, "langid", "sentences", "en.txt")))
    sentences = [s.strip() for s in lines[HELDOUT_FIRST_LINE - 1 :] if s.strip()]
    step = HELDOUT_SENTENCES_PER_DOC
    return [
        {"text": " ".join(sentences[i : i + step]), "source": f"langid/sentences/en.txt#{HELDOUT_FIRST_LINE + i}"}
        for i in range(0, len(sentences), step)
    ]


def without_overlap(docs: list[dict], index: set[int], params: DecontaminateParams) -> tuple[list[dict], int]:
    kept = [doc for doc in docs if not (ngram_hashes(doc["text"], False, params) & index)]
    return kept, len(docs) - len(kept)


def build(shared: str) -> dict:
    rng = random.Random(SEED)
    shutil.rmtree(OUT, ignore_errors=True)
    heldout = heldout_docs(shared)
    params = DecontaminateParams()
    index = set().union(*(ngram_hashes(doc["text"], False, params) for doc in heldout))
    _, c4 = load_c4(shared)
    _, ccnet = load_ccnet(shared)
    info: dict = {"heldout_docs": len(heldout), "heldout_bytes": sum(len(d["text"].encode()) for d in heldout)}
    for name, docs in (("c4", c4), ("ccnet", ccnet)):
        docs, info[f"{name}_overlap"] = without_overlap(docs, index, params)
        records, info[name] = with_copies(docs, rng)
        info[f"{name}_bytes"] = sum(len(r["text"].encode()) for r in records)
        _write(os.path.join(OUT, "web", f"{name}.jsonl.zst"), _zstd_bytes(_jsonl_bytes(records)))
    for name in WARC_FILES:  # as the crawler wrote them: HTML, boilerplate, wget's own records
        shutil.copyfile(os.path.join(shared, "web", name), os.path.join(OUT, "web", name))
    _write(os.path.join(OUT, "heldout", "leipzig_en.jsonl"), _jsonl_bytes(heldout))
    info["disk_bytes"] = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(OUT) for f in files)
    _write(os.path.join(OUT, "README.md"), readme(info).encode("utf-8"))
    return info


def readme(info: dict) -> str:
    def row(name: str) -> str:
        c = info[name]
        return (
            f"{c['originals']} documents + {c['exact']} exact copies + {c['near']} near-duplicates "
            f"= {c['originals'] + c['exact'] + c['near']} records, {info[f'{name}_bytes'] / 2**20:.2f} MiB of text"
        )

    apache = "allenai/dolma test data (Apache-2.0)"
    files = [
        (
            "web/c4.jsonl.zst",
            f"{row('c4')}; {info['c4_overlap']} left out for sharing a 13-word n-gram with `heldout/`",
            "web/c4_sample.jsonl",
            "C4 (ODC-BY 1.0) via LLaMA-Factory demo data (Apache-2.0)",
        ),
        (
            "web/ccnet.jsonl.zst",
            f"{row('ccnet')} (Dolma records: `id`, `text`, `metadata`, ...); {info['ccnet_overlap']} left out",
            "web/multiple_files_cc_en_head-*.jsonl",
            f"{apache}; text: Common Crawl",
        ),
        (
            "web/warc_sample-000{0,1}.warc.gz",
            "22 + 15 HTML pages of one wget crawl, with wget's own records, copied as-is",
            "web/warc_sample-000{0,1}.warc.gz",
            apache,
        ),
        (
            "web/whirlwind.warc.gz",
            "one CC-MAIN-2024-22 capture (an Aragonese Wikipedia page), copied as-is",
            "web/whirlwind.warc.gz",
            "commoncrawl/whirlwind-python (Apache-2.0); page CC BY-SA 4.0",
        ),
        (
            "heldout/leipzig_en.jsonl",
            f"{info['heldout_docs']} documents ({info['heldout_bytes'] / 1024:.1f} KiB) of 10 consecutive English "
            f"sentences: lines {HELDOUT_FIRST_LINE}-500 of the file, which `data/sample` (lines 1-120) and "
            "`tests/fixtures` do not use",
            "langid/sentences/en.txt",
            "Leipzig corpora via pemistahl/lingua-py test data (Apache-2.0)",
        ),
    ]
    table = "\n".join(f"| `{name}` | {what} | `{source}` | {license} |" for name, what, source, license in files)
    return f"""# data/ablate/

Generated by `python scripts/build_ablate_input.py` from `../shared/data` (seed 0, byte-identical
on a rebuild). Do not edit by hand. `make ablate` (`python -m pipelines.ablate --config
configs/ablate.yaml`) builds its corpus variants from `web/` and evaluates every proxy model
on `heldout/`. Total on disk: {info["disk_bytes"] / 2**20:.2f} MiB.

| file | what | source (`../shared/data/...`) | license |
| --- | --- | --- | --- |
{table}

**Junk and duplicates.** The C4, CCNet and WARC text is real web text with its real junk (navigation,
cookie notices, spam, HTML extraction leftovers, a page in another language). The sources hold few
duplicates of their own, so crawl redundancy is added: with seed 0, half the C4 and CCNet documents
get 1 + Geometric(0.5) copies (at most {MAX_COPIES}), each a byte-identical copy or a near-duplicate
(`near_duplicate` of `scripts/build_sample.py`: one middle paragraph dropped, up to 3 words replaced
by synonyms, a synthetic site header and footer added; see data/README.md), shuffled into the file.
How much the `dedup` variant gains therefore depends on this synthetic duplication rate.

**Why this held-out set.** Every article of `web/wikipedia_en_sample.txt` is already in
`data/sample/wiki` (and the quality classifier trained on most of them), so no Wikipedia text is
left that nothing in the repository has seen. The Leipzig sentences (curated news and web prose)
after line 120 are used nowhere else. `make ablate` checks again, with the decontaminate stage's
13-gram index, that no variant contains any of it.

Licenses: `data/licenses/Apache-2.0.txt`; C4: ODC-BY 1.0 (https://opendatacommons.org/licenses/by/1-0/)
and the Common Crawl terms of use.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=DEFAULT_SHARED, help="source data folder (default: ../shared/data)")
    args = parser.parse_args(argv)
    shared = os.path.abspath(args.shared)
    if not os.path.isdir(os.path.join(shared, "web")):
        print(f"error: {shared} does not look like the shared data folder (no web/)", file=sys.stderr)
        return 2
    info = build(shared)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
