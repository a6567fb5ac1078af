"""Benchmark inputs made of the real text in ../shared/data, built once and cached under bench/work/.

- `shared_texts`: the real documents by origin, the one reader of ../shared/data.
- `build_pipeline_input`: JSONL shards of whole copies of a mix of those documents
  (bench.pipeline_throughput, bench.row_decisions).
- `build_dedup_input`: Parquet of near-duplicate copies (bench.dedup_throughput).
- `vocabulary` and `replace_units`: what near-duplicate copies are made with (also bench.scale).

Every builder is deterministic (fixed seeds); a change to a recipe must bump its version, which is
part of the cache's folder name.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import random
import re
import shutil
import sys
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "bench", "work")
DEFAULT_SHARED = os.path.join(REPO, "..", "shared", "data")
MB = 1e6
ORIGINS = ("c4", "ccnet", "wikipedia", "zh")
PIPELINE_INPUT_VERSION = 1
DEDUP_INPUT_VERSION = 1
DOC_MIN_CHARS, DOC_MAX_CHARS = 2000, 5000  # documents cut out of long texts
CJK = re.compile(r"[\u4e00-\u9fff]")
_WORDS = re.compile(r"[a-z]{3,12}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BLANK_LINES = re.compile(r"\n\s*\n")


def log(message: str) -> None:
    print(f"[inputs] {message}", file=sys.stderr, flush=True)


def shared_texts(shared: str) -> dict[str, list[str]]:
    """The real documents of `shared` (../shared/data) by origin, in a fixed order: "c4" and "ccnet"
    (web pages), "wikipedia" (one article per line), "zh" (the Chinese Debian Reference, one text)."""
    web = os.path.join(shared, "web")
    ccnet = sorted(glob.glob(os.path.join(web, "multiple_files_cc_en_head-*.jsonl")))
    texts = {"c4": _jsonl_texts([os.path.join(web, "c4_sample.jsonl")]), "ccnet": _jsonl_texts(ccnet)}
    with open(os.path.join(web, "wikipedia_en_sample.txt"), encoding="utf-8") as handle:
        texts["wikipedia"] = [line.strip() for line in handle if line.strip()]
    with gzip.open(os.path.join(shared, "zh", "debian-reference.zh-cn.txt.gz"), "rt", encoding="utf-8") as handle:
        texts["zh"] = [handle.read()]
    return texts


def _jsonl_texts(paths: list[str]) -> list[str]:
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle if line.strip()]
    return texts


# The two ways of cutting a long text into documents below are each part of a recipe whose figures
# docs/BENCHMARKS.md records; one cutter for both would change those inputs, so both stay.


def split_chinese(text: str, seed: int = 0) -> list[str]:
    """Split the Debian Reference into documents of DOC_MIN..DOC_MAX_CHARS characters, at blank
    lines where possible (at any line when a paragraph runs past the maximum)."""
    rng = random.Random(seed)
    out, current, size = [], [], 0
    target = rng.randint(DOC_MIN_CHARS, DOC_MAX_CHARS)
    for line in text.split("\n"):
        if (not line.strip() and size >= target) or size + len(line) > DOC_MAX_CHARS and size >= DOC_MIN_CHARS:
            out.append("\n".join(current).strip("\n"))
            current, size, target = [], 0, rng.randint(DOC_MIN_CHARS, DOC_MAX_CHARS)
            if not line.strip():
                continue
        current.append(line)
        size += len(line) + 1
    rest = "\n".join(current).strip("\n")
    if rest.strip():
        if len(rest) < DOC_MIN_CHARS // 4 and out:
            out[-1] += "\n\n" + rest
        else:
            out.append(rest)
    return [doc for doc in out if doc.strip()]


def pieces(text: str, rng: random.Random, separator: re.Pattern) -> list[str]:
    """Cut `text` into documents of DOC_MIN..DOC_MAX_CHARS characters at `separator` matches."""
    out, start = [], 0
    cuts = [m.end() for m in separator.finditer(text)] + [len(text)]
    target = rng.randint(DOC_MIN_CHARS, DOC_MAX_CHARS)
    for cut in cuts:
        if cut - start >= target:
            out.append(text[start:cut].strip())
            start, target = cut, rng.randint(DOC_MIN_CHARS, DOC_MAX_CHARS)
    if len(text) - start > DOC_MIN_CHARS // 2:
        out.append(text[start:].strip())
    return [p for p in out if p]


def vocabulary(english: list[str], chinese: list[str]) -> tuple[list[str], list[str]]:
    """The replacement units near-duplicates are made with: the lowercase words of 3-12 letters of
    `english` and the CJK characters of `chinese`, each sorted."""
    words = sorted({w for text in english for w in _WORDS.findall(text.lower())})
    return words, sorted({ch for text in chinese for ch in CJK.findall(text)})


def replace_units(text: str, lang: str, rate: float, rng: random.Random, words: list[str], cjk: list[str]) -> str:
    """`text` with a fraction `rate` of its words (Chinese: of its CJK characters), at least one,
    replaced by random ones of `words` (`cjk`)."""
    if lang == "zh":
        chars = list(text)
        positions = [i for i, ch in enumerate(chars) if CJK.match(ch)]
        for i in rng.sample(positions, max(1, round(rate * len(positions)))) if positions else []:
            chars[i] = rng.choice(cjk)
        return "".join(chars)
    tokens = text.split(" ")
    for i in rng.sample(range(len(tokens)), max(1, round(rate * len(tokens)))):
        tokens[i] = rng.choice(words)
    return " ".join(tokens)


def cached_manifest(path: str) -> dict | None:
    """The manifest saved at `path`, if it and every file it lists exist."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    return manifest if all(os.path.exists(p) for p in manifest["files"]) else None


def save_manifest(path: str, manifest: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)


def describe(manifest: dict) -> str:
    return f"{manifest['text_bytes'] / MB:.1f} MB, {manifest['documents']:,} docs ({manifest['copies']} copies)"


# --------------------------------------------------------------------------- pipeline input


def build_pipeline_input(shared: str, mb: float, shards: int) -> dict:
    """Write (or reuse) `shards` JSONL files holding >= `mb` MB of text; return their manifest.

    Every base document (C4, CCNet, Wikipedia articles, the Chinese Debian Reference split into
    2-5k-character documents) is repeated until the size is reached. Each copy gets a distinct id
    (`origin/index/cN`) AND a distinct first word (`cN ` prepended to the text), so that no text is
    processed twice as the same string (nothing in our stages may profit from exact repeats that
    real data would not have)."""
    name = f"input-{mb:g}mb-{shards}shards-v{PIPELINE_INPUT_VERSION}"
    folder = os.path.join(WORK, name)
    manifest_path = os.path.join(WORK, name + ".json")
    manifest = cached_manifest(manifest_path)
    if manifest is not None:
        return manifest
    log(f"building {name} from {shared}")
    texts = shared_texts(shared)
    base = [(origin, text) for origin in ORIGINS[:3] for text in texts[origin]]
    base += [("zh", text) for text in split_chinese(texts["zh"][0])]
    random.Random(0).shuffle(base)  # mix origins within batches and shards
    base_bytes = sum(len(t.encode()) for _, t in base)
    copies = max(1, int(-(-mb * MB // base_bytes)))
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    files = [os.path.join(folder, f"part-{i:05d}.jsonl") for i in range(shards)]
    handles = [open(path, "w", encoding="utf-8") for path in files]
    shard_bytes = [0] * shards
    docs, text_bytes = Counter(), Counter()
    try:
        for copy in range(copies):
            for index, (origin, text) in enumerate(base):
                text = f"c{copy} {text}"
                size = len(text.encode())
                shard = shard_bytes.index(min(shard_bytes))  # greedy balance by bytes
                shard_bytes[shard] += size
                record = {"text": text, "id": f"{origin}/{index}/c{copy}", "origin": origin}
                handles[shard].write(json.dumps(record, ensure_ascii=False) + "\n")
                docs[origin] += 1
                text_bytes[origin] += size
    finally:
        for handle in handles:
            handle.close()
    manifest = {
        "name": name,
        "files": files,
        "copies": copies,
        "base_documents": len(base),
        "documents": sum(docs.values()),
        "text_bytes": sum(text_bytes.values()),
        "file_bytes": sum(os.path.getsize(p) for p in files),
        "per_origin": {o: {"documents": docs[o], "text_bytes": text_bytes[o]} for o in ORIGINS},
    }
    save_manifest(manifest_path, manifest)
    return manifest


# --------------------------------------------------------------------------- dedup input


def dedup_base_documents(shared: str) -> list[tuple[str, str]]:
    """(lang, text) of every real document the dedup input is made of, in a fixed order: C4 and
    CCNet pages, Wikipedia articles cut at sentence ends, the Debian Reference cut at blank lines."""
    rng = random.Random(0)
    texts = shared_texts(shared)
    docs = [("en", text) for origin in ("c4", "ccnet") for text in texts[origin]]
    for article in texts["wikipedia"]:
        docs += [("en", p) for p in pieces(article, rng, _SENTENCE_END)]
    return docs + [("zh", p) for p in pieces(texts["zh"][0], rng, _BLANK_LINES)]


def build_dedup_input(shared: str, mb: float, concat: int = 1) -> dict:
    """Parquet shards of >= `mb` MB of text under bench/work/ (cached); `concat` > 1 joins that many
    consecutive documents into one (same text, fewer, longer documents).

    Copy 0 of each document is the original; every other copy has a fraction r ~ U(0, 0.10) of its
    words replaced by random corpus words (Chinese: of its CJK characters), at least one. Stored in
    the document schema plus `lang` (en, or zh for the Debian Reference)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stages.base import DOCUMENT_SCHEMA

    name = f"dedup-{mb:g}mb{f'-x{concat}' if concat > 1 else ''}-v{DEDUP_INPUT_VERSION}"
    folder = os.path.join(WORK, name)
    manifest_path = os.path.join(folder, "manifest.json")
    manifest = cached_manifest(manifest_path)
    if manifest is not None:
        return manifest
    log(f"building {folder}")
    base = dedup_base_documents(shared)
    words, cjk = vocabulary([t for lang, t in base if lang == "en"], [t for lang, t in base if lang == "zh"])
    base_bytes = sum(len(t.encode()) for _, t in base)
    copies = max(1, -int(-mb * MB // base_bytes))
    rng = random.Random(0)
    order = list(range(len(base)))
    rows: dict[str, list] = {"id": [], "text": [], "lang": []}
    text_bytes = 0
    for copy in range(copies):
        rng.shuffle(order)  # mix languages and copies across blocks
        for index in order:
            lang, text = base[index]
            if copy:
                text = replace_units(text, lang, rng.uniform(0.0, 0.10), rng, words, cjk)
            rows["id"].append(f"{index}/c{copy}")
            rows["text"].append(text)
            rows["lang"].append(lang)
            text_bytes += len(text.encode())
            if text_bytes >= mb * MB:
                break
        if text_bytes >= mb * MB:
            break
    if concat > 1:  # join documents of the same language, `concat` at a time
        joined: dict[str, list] = {"id": [], "text": [], "lang": []}
        for lang in ("en", "zh"):
            idx = [i for i, doc_lang in enumerate(rows["lang"]) if doc_lang == lang]
            for k in range(0, len(idx), concat):
                group = idx[k : k + concat]
                joined["id"].append("+".join(rows["id"][i] for i in group))
                joined["text"].append("\n\n".join(rows["text"][i] for i in group))
                joined["lang"].append(lang)
        rows = joined
    n = len(rows["id"])
    columns = {
        "id": rows["id"],
        "source": ["bench"] * n,
        "text": rows["text"],
        "url": [None] * n,
        "metadata": ["{}"] * n,
        "drop_stage": [None] * n,
        "drop_reason": [None] * n,
    }
    schema = DOCUMENT_SCHEMA.append(pa.field("lang", pa.string()))
    table = pa.table({**columns, "lang": rows["lang"]}, schema=schema)
    os.makedirs(folder, exist_ok=True)
    shards = 8
    step = -(-n // shards)
    files = []
    for k in range(shards):
        path = os.path.join(folder, f"part-{k:03d}.parquet")
        pq.write_table(table.slice(k * step, step), path)
        files.append(path)
    manifest = {
        "name": name,
        "folder": folder,
        "files": files,
        "documents": n,
        "copies": copies,
        "base_documents": len(base),
        "text_bytes": sum(len(t.encode()) for t in rows["text"]),
        "zh_documents": rows["lang"].count("zh"),
    }
    save_manifest(manifest_path, manifest)
    return manifest
