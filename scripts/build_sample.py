#!/usr/bin/env python3
"""Build the embedded sample corpus (data/sample/) and the test fixtures (tests/fixtures/).

Everything is derived from the real public text in ../shared/data (see data/README.md
for provenance and licenses). The build is deterministic (seed 0): gzip members carry
mtime 0 and no file name, every listing is sorted, JSON is written with a fixed layout,
so two runs give byte-identical files.

    python scripts/build_sample.py                 # data/sample + data/README.md + data/licenses + tests/fixtures
    python scripts/build_sample.py --sample        # only data/sample (+ data/README.md, data/licenses)
    python scripts/build_sample.py --fixtures      # only tests/fixtures
    python scripts/build_sample.py --shared PATH   # read the source data from PATH instead of ../shared/data

Dependencies: the standard library, pyarrow and zstandard.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import random
import re
import shutil
import sys
from string import Template

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard

SEED = 0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SHARED = os.path.join(REPO, "..", "shared", "data")
SAMPLE_DIR = os.path.join(REPO, "data", "sample")
TEMPLATES = os.path.join(REPO, "scripts", "templates")
LICENSE_DIR = os.path.join(REPO, "data", "licenses")
FIXTURE_DIR = os.path.join(REPO, "tests", "fixtures")
MAX_SAMPLE_BYTES = 5 * 1024 * 1024

LINGUA_LANGS = ["de", "fr", "es", "it", "pt", "nl", "ru", "pl", "sv", "ja", "ko", "ar", "tr", "vi", "en", "zh"]
LINGUA_SENTENCES_PER_LANG = 120
LINGUA_SENTENCES_PER_DOC = 15
NO_SPACE_LANGS = {"ja", "zh"}  # sentences are joined without a space in these scripts

ZH_MIN_CHARS, ZH_MAX_CHARS = 500, 8000
TANG_POEMS_PER_FILE = 10

# Synthetic boilerplate used for the near-duplicates (typical site chrome, not taken from C4).
NEAR_DUP_HEADERS = [
    "Home | About | Contact",
    "Home | About Us | Blog | Contact Us",
    "Skip to content | Home | Shop | Contact",
    "Menu | Home | News | About | Contact",
]
NEAR_DUP_FOOTERS = [
    "Copyright 2019 All rights reserved.",
    "Copyright 2019 | All rights reserved. | Privacy Policy | Terms of Use",
    "© Copyright 2019. All rights reserved. Powered by WordPress.",
    "Copyright © 2019 - All rights reserved.",
]
# Word substitutions for near-duplicates (whole words, case of the first letter kept).
SUBSTITUTIONS = {
    "about": "regarding",
    "also": "additionally",
    "because": "since",
    "best": "finest",
    "big": "large",
    "buy": "purchase",
    "easy": "simple",
    "find": "locate",
    "get": "obtain",
    "good": "fine",
    "great": "excellent",
    "help": "assist",
    "important": "essential",
    "just": "simply",
    "make": "create",
    "many": "numerous",
    "need": "require",
    "new": "fresh",
    "people": "folks",
    "provide": "offer",
    "quickly": "rapidly",
    "show": "display",
    "small": "little",
    "start": "begin",
    "use": "utilize",
    "very": "really",
}
N_SUBSTITUTIONS = 3
SPAM_LINE = "Click here to buy cheap watches now! Best prices guaranteed!"  # synthetic
SPAM_REPEATS = 60


# --------------------------------------------------------------------------- writers


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    # filename="" and mtime=0: no name and no timestamp in the header, so the output is reproducible.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _zstd_bytes(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=19, write_content_size=True, write_checksum=True).compress(data)


def _jsonl_bytes(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def _write_json(path: str, obj) -> None:
    _write(path, (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def _write_parquet(path: str, table: pa.Table) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=max(1, table.num_rows))


def _read_text(path: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _lines(text: str) -> list[str]:
    # Split on "\n" only: str.splitlines() would also split on NEL/U+2028, which occur inside
    # some lingua sentences (fr, pl) and are part of the real text.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --------------------------------------------------------------------------- sources


def load_c4(shared: str) -> tuple[bytes, list[dict]]:
    path = os.path.join(shared, "web", "c4_sample.jsonl")
    with open(path, "rb") as fh:
        raw = fh.read()
    docs = [json.loads(line) for line in _lines(raw.decode("utf-8")) if line.strip()]
    if not raw.endswith(b"\n"):
        raw += b"\n"
    return raw, docs


def ccnet_files(shared: str) -> list[str]:
    web = os.path.join(shared, "web")
    return sorted(
        os.path.join(web, n)
        for n in os.listdir(web)
        if n.startswith("multiple_files_cc_en_head-") and n.endswith(".jsonl")
    )


def load_ccnet(shared: str) -> tuple[bytes, list[dict]]:
    raw_lines: list[str] = []
    for path in ccnet_files(shared):
        raw_lines.extend(line for line in _lines(_read_text(path)) if line.strip())
    return ("".join(line + "\n" for line in raw_lines)).encode("utf-8"), [json.loads(line) for line in raw_lines]


def _substitute_words(text: str, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    matches = [m for m in re.finditer(r"\b[A-Za-z]+\b", text) if m.group(0).lower() in SUBSTITUTIONS]
    chosen = sorted(rng.sample(matches, min(N_SUBSTITUTIONS, len(matches))), key=lambda m: m.start())
    out, last, done = [], 0, []
    for m in chosen:
        word = m.group(0)
        repl = SUBSTITUTIONS[word.lower()]
        if word[0].isupper():
            repl = repl[0].upper() + repl[1:]
        out.append(text[last : m.start()])
        out.append(repl)
        last = m.end()
        done.append((word, repl))
    out.append(text[last:])
    return "".join(out), done


def near_duplicate(text: str, rng: random.Random) -> tuple[str, dict]:
    paragraphs = text.split("\n")
    dropped = None
    # Drop one middle paragraph (never the first or last) that is at most 20% of the document, so the
    # copy stays a near-duplicate rather than a different document.
    candidates = [k for k in range(1, len(paragraphs) - 1) if len(paragraphs[k]) <= 0.2 * len(text)]
    if candidates:
        dropped = candidates[rng.randrange(len(candidates))]
        del paragraphs[dropped]
    body, subs = _substitute_words("\n".join(paragraphs), rng)
    header = NEAR_DUP_HEADERS[rng.randrange(len(NEAR_DUP_HEADERS))]
    footer = NEAR_DUP_FOOTERS[rng.randrange(len(NEAR_DUP_FOOTERS))]
    return f"{header}\n{body}\n{footer}", {
        "header": header,
        "footer": footer,
        "dropped_paragraph": dropped,
        "substitutions": subs,
    }


def build_c4_dups(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    """15 exact copies + 15 near-duplicates of C4 docs of 500..8000 characters."""
    rng = random.Random(SEED)
    pool = [i for i, d in enumerate(docs) if 500 <= len(d["text"]) <= 8000]
    picked = rng.sample(pool, 30)
    exact, near = sorted(picked[:15]), sorted(picked[15:])
    rows = [("exact", i, docs[i]["text"], None) for i in exact]
    for i in near:
        text, info = near_duplicate(docs[i]["text"], rng)
        rows.append(("near", i, text, info))
    rng.shuffle(rows)
    records = [{"text": text} for _, _, text, _ in rows]
    manifest = [
        {"line": n + 1, "kind": kind, "c4_0000_line": i + 1, **({"perturbation": info} if info else {})}
        for n, (kind, i, _, info) in enumerate(rows)
    ]
    return records, manifest


_TITLE_VERB = re.compile(r"\s+(?:is|was|are|were|primarily refers to|may refer to)\b")


def wiki_title(text: str) -> str | None:
    """Best-effort title: the subject phrase before the first verb ("X is ..."), or None.

    The source has no titles; this recovers e.g. "Anarchism" from "Anarchism is a ...",
    "Abraham Lincoln" from "Abraham Lincoln (; February 12, 1809 ...) was ..." and
    "A" from "A, or a, is ...". Articles that do not open with their subject get None.
    """
    m = _TITLE_VERB.search(text[:300])
    if not m:
        return None
    subject = text[: m.start()]
    subject = re.split(r"\s*[(,;:]", subject, maxsplit=1)[0].strip()
    if not subject or len(subject) > 60 or not subject[0].isupper():
        return None
    if subject.split()[0] in {"In", "This", "It", "There", "These"} or subject == "The":
        return None
    return subject


# The source glues paragraphs together ("...the Années folles.Gershwin scored..."): a sentence end
# directly followed by a capital letter marks a lost paragraph break, which is restored.
_GLUED_PARAGRAPH = re.compile(r"(?<=[a-z0-9)\]][.!?])(?=[A-Z])")


def load_wiki(shared: str) -> list[dict]:
    text = _read_text(os.path.join(shared, "web", "wikipedia_en_sample.txt"))
    return [
        {"title": wiki_title(line), "text": _GLUED_PARAGRAPH.sub("\n\n", line)} for line in _lines(text) if line.strip()
    ]


_ZH_HEADING = re.compile(
    r"^(?:(?:\d+|[A-Z])(?:\.\d+)*\.\u00a0\S.*|第\u00a0\d+\u00a0章\u00a0\S.*|附录\u00a0[A-Z]\.\u00a0\S.*|序言)$"
)


def _split_paragraphs(text: str, max_chars: int) -> list[str]:
    """Split at blank lines (then at line breaks for an oversized paragraph) into chunks of at most
    max_chars, balanced to about the same length."""
    units: list[tuple[str, str]] = []  # (text, separator that preceded it)
    for para in re.split(r"\n\s*\n", text):
        if len(para) <= max_chars:
            units.append((para, "\n\n"))
        else:
            units.extend((line, "\n" if k else "\n\n") for k, line in enumerate(para.split("\n")))
    target = len(text) / math.ceil(len(text) / (max_chars * 0.9))
    chunks: list[str] = []
    cur = ""
    for unit, sep in units:
        if cur and (len(cur) >= target or len(cur) + len(sep) + len(unit) > max_chars):
            chunks.append(cur)
            cur = unit
        else:
            cur = cur + sep + unit if cur else unit
    if cur:
        if chunks and len(cur) < ZH_MIN_CHARS and len(chunks[-1]) + 2 + len(cur) <= max_chars:
            chunks[-1] += "\n\n" + cur
        else:
            chunks.append(cur)
    return chunks


def split_debian_reference(text: str) -> list[dict]:
    """Documents from the Chinese Debian Reference, split at section headings.

    Body headings are "1.2.\u00a0标题" (number, NO-BREAK SPACE, title), "第 N 章 标题" and
    "附录 A. 附录"; the table of contents at the top uses plain spaces and indentation, so it
    never matches. Everything before the body's "序言" (title page, TOC, list of tables) is
    skipped. Sections under 500 characters are merged into the next one; documents over
    8000 characters are split at paragraph boundaries.
    """
    lines = [line.rstrip() for line in _lines(text)]
    starts = [i for i, line in enumerate(lines) if _ZH_HEADING.match(line)]
    body_start = [i for i in starts if lines[i] == "序言"][-1]
    starts = [i for i in starts if i >= body_start]
    sections = []
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        sections.append((lines[a].replace("\u00a0", " "), "\n".join(lines[a:b]).strip("\n")))
    merged: list[tuple[str, str]] = []
    title, buf = None, []
    for sec_title, sec_text in sections:
        if title is None:
            title = sec_title
        buf.append(sec_text)
        if len("\n\n".join(buf)) >= ZH_MIN_CHARS:
            merged.append((title, "\n\n".join(buf)))
            title, buf = None, []
    if buf:
        if merged:
            merged[-1] = (merged[-1][0], merged[-1][1] + "\n\n" + "\n\n".join(buf))
        else:
            merged.append((title, "\n\n".join(buf)))
    docs = []
    for title, body in merged:
        if len(body) <= ZH_MAX_CHARS:
            docs.append({"text": body, "url": None, "title": title})
        else:
            parts = _split_paragraphs(body, ZH_MAX_CHARS)
            for k, part in enumerate(parts, 1):
                docs.append({"text": part, "url": None, "title": f"{title} ({k}/{len(parts)})"})
    return docs


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def load_tang(shared: str) -> list[str]:
    text = _ANSI.sub("", _read_text(os.path.join(shared, "zh", "tang300.txt")))
    poems = [p.strip("\n") for p in re.split(r"^%\n?", text, flags=re.M)]
    return [p for p in poems if p.strip()]


def load_lingua(shared: str) -> tuple[list[dict], dict]:
    root = os.path.join(shared, "langid", "sentences")
    records, present = [], {}
    for lang in LINGUA_LANGS:
        path = os.path.join(root, f"{lang}.txt")
        if not os.path.exists(path):
            continue
        sents = [s.strip() for s in _lines(_read_text(path)) if s.strip()][:LINGUA_SENTENCES_PER_LANG]
        present[lang] = len(sents)
        sep = "" if lang in NO_SPACE_LANGS else " "
        for k in range(0, len(sents), LINGUA_SENTENCES_PER_DOC):
            records.append({"content": sep.join(sents[k : k + LINGUA_SENTENCES_PER_DOC]), "metadata": {"label": lang}})
    return records, present


WEB_COPIES = ["warc_sample-0000.warc.gz", "warc_sample-0001.warc.gz", "whirlwind.warc.gz", "whirlwind.warc.wet.gz"]
LICENSE_COPIES = [
    ("langid/LICENSE.txt", "Apache-2.0.txt"),
    ("zh/debian-reference.copyright", "debian-reference.copyright"),
    ("zh/fortunes-zh.copyright", "fortunes-zh.copyright"),
]


# --------------------------------------------------------------------------- sample


EVAL_ARTICLES = (3, 11, 19)


def build_sample(shared: str) -> dict:
    if os.path.exists(SAMPLE_DIR):
        shutil.rmtree(SAMPLE_DIR)
    info: dict = {}

    c4_raw, c4_docs = load_c4(shared)
    assert len(c4_docs) == 300, len(c4_docs)
    _write(os.path.join(SAMPLE_DIR, "web", "c4-0000.jsonl.gz"), _gzip_bytes(c4_raw))
    dup_records, manifest = build_c4_dups(c4_docs)
    _write(os.path.join(SAMPLE_DIR, "web", "c4-0001.jsonl.zst"), _zstd_bytes(_jsonl_bytes(dup_records)))
    info["c4_dups"] = manifest

    ccnet_raw, ccnet_docs = load_ccnet(shared)
    _write(os.path.join(SAMPLE_DIR, "web", "ccnet-0000.jsonl"), ccnet_raw)
    info["ccnet_files"] = [os.path.basename(p) for p in ccnet_files(shared)]
    info["ccnet_count"] = len(ccnet_docs)

    for name in WEB_COPIES:
        shutil.copyfile(os.path.join(shared, "web", name), os.path.join(SAMPLE_DIR, "web", name))

    wiki = load_wiki(shared)
    _write_parquet(
        os.path.join(SAMPLE_DIR, "wiki", "wiki-0000.parquet"),
        pa.table(
            {
                "title": pa.array([w["title"] for w in wiki], pa.string()),
                "text": pa.array([w["text"] for w in wiki], pa.string()),
            }
        ),
    )
    info["wiki_titles"] = [w["title"] for w in wiki]
    # A stand-in evaluation set for decontamination: one 40-word passage from each of three
    # articles (a benchmark built from Wikipedia leaks into a crawl just like this).
    eval_records = []
    for index in EVAL_ARTICLES:
        words = wiki[index]["text"].split()
        eval_records.append({"text": " ".join(words[200:240]), "source": f"wiki row {index}"})
    _write(os.path.join(REPO, "data", "eval", "wiki_passages.jsonl"), _jsonl_bytes(eval_records))

    zh_docs = split_debian_reference(_read_text(os.path.join(shared, "zh", "debian-reference.zh-cn.txt.gz")))
    _write(os.path.join(SAMPLE_DIR, "zh", "debian-reference-0000.jsonl.zst"), _zstd_bytes(_jsonl_bytes(zh_docs)))
    info["zh_lengths"] = [len(d["text"]) for d in zh_docs]

    poems = load_tang(shared)
    info["tang_poems"] = len(poems)
    for k in range(0, len(poems), TANG_POEMS_PER_FILE):
        body = "\n\n".join(poems[k : k + TANG_POEMS_PER_FILE]) + "\n"
        _write(
            os.path.join(SAMPLE_DIR, "zh", "tang300", f"tang-{k // TANG_POEMS_PER_FILE:03d}.txt"), body.encode("utf-8")
        )

    lingua, present = load_lingua(shared)
    _write(os.path.join(SAMPLE_DIR, "multilingual", "lingua-0000.jsonl"), _jsonl_bytes(lingua))
    info["lingua_langs"] = present

    os.makedirs(LICENSE_DIR, exist_ok=True)
    for src, dst in LICENSE_COPIES:
        shutil.copyfile(os.path.join(shared, src), os.path.join(LICENSE_DIR, dst))

    total = sum(os.path.getsize(p) for p in _walk(SAMPLE_DIR))
    if total > MAX_SAMPLE_BYTES:
        raise SystemExit(f"data/sample is {total} bytes, over the {MAX_SAMPLE_BYTES} byte budget")
    info["total_bytes"] = total
    _write(os.path.join(REPO, "data", "README.md"), render_data_readme(info).encode("utf-8"))
    return info


def _walk(root: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names)


# --------------------------------------------------------------------------- counting


def count_docs(path: str) -> tuple[int, str]:
    """(documents, what was counted) for one sample file, read back with its own format."""
    name = os.path.basename(path)
    if ".warc" in name:
        return _count_warc(path)
    if name.endswith(".parquet"):
        return pq.ParquetFile(path).metadata.num_rows, "rows"
    if name.endswith(".txt"):
        return 1, "file"
    with open(path, "rb") as fh:
        data = fh.read()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().decompress(data)
    return sum(1 for line in data.split(b"\n") if line.strip()), "records"


def _count_warc(path: str) -> tuple[int, str]:
    """Count WARC records by type, reading the (multi-member) gzip with the standard library only."""
    raw = gzip.decompress(open(path, "rb").read())
    counts: dict[str, int] = {}
    for m in re.finditer(rb"(?m)^WARC-Type: ([a-z]+)\r$", raw):
        counts[m.group(1).decode()] = counts.get(m.group(1).decode(), 0) + 1
    main = "conversion" if "conversion" in counts else "response"
    detail = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return counts.get(main, 0), f"{main} records ({detail})"


def _fmt_size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


# --------------------------------------------------------------------------- data/README.md


def render_data_readme(info: dict) -> str:
    files = _walk(SAMPLE_DIR)
    tang_files = [p for p in files if "/tang300/" in p]
    other = [p for p in files if "/tang300/" not in p]
    with open(os.path.join(TEMPLATES, "sample_files.yaml"), encoding="utf-8") as handle:
        describe = yaml.safe_load(handle)
    computed = {
        "ccnet_count": info["ccnet_count"],
        "ccnet_files": " and ".join(f"`{n}`" for n in info["ccnet_files"]),
        "lingua_count": len(info["lingua_langs"]),
        "lingua_langs": ", ".join(info["lingua_langs"]),
    }
    rows = []
    for path in other:
        key = os.path.relpath(path, SAMPLE_DIR)
        what, src, lic = (
            Template(describe[key][field]).substitute(computed) for field in ("what", "source", "license")
        )
        n, unit = count_docs(path)
        rows.append(f"| `sample/{key}` | {_fmt_size(os.path.getsize(path))} | {n} {unit} | {what} | {src} | {lic} |")
    tang_size = sum(os.path.getsize(p) for p in tang_files)
    rows.append(
        f"| `sample/zh/tang300/tang-000.txt` ... `tang-{len(tang_files) - 1:03d}.txt` | {_fmt_size(tang_size)} in all "
        f"| {len(tang_files)} files ({info['tang_poems']} poems) | 10 consecutive Tang poems per UTF-8 text file "
        "(the last file holds the remainder), poems separated by a blank line, each poem = title line `《...》`, author "
        "line `作者：...`, verses. The fortune `%` separators are dropped and the ANSI colour escape sequences of the "
        "source (`ESC[32m` around titles, `ESC[33m` around authors, `ESC[m` resets) are stripped. |"
        " `zh/tang300.txt` | GPL-3.0+ (Debian fortunes-zh), see `licenses/fortunes-zh.copyright` |"
    )

    esc = lambda t: t.replace("|", "\\|")  # noqa: E731  (a `|` inside a table cell must be escaped)
    dup_lines = []
    for m in info["c4_dups"]:
        if m["kind"] == "exact":
            dup_lines.append(f"| {m['line']} | exact | {m['c4_0000_line']} | byte-identical `text` |")
        else:
            p = m["perturbation"]
            subs = ", ".join(f"{a} -> {b}" for a, b in p["substitutions"]) or "none"
            drop = (
                (f"paragraph {p['dropped_paragraph']} (0-based) dropped")
                if p["dropped_paragraph"] is not None
                else "no paragraph dropped (no short middle paragraph)"
            )
            dup_lines.append(
                f"| {m['line']} | near | {m['c4_0000_line']} | header `{esc(p['header'])}`; footer `{esc(p['footer'])}`; "
                f"{drop}; words: {subs} |"
            )

    zh = info["zh_lengths"]
    return render_template(
        "data_README.md",
        total_size=_fmt_size(info["total_bytes"]),
        total_bytes=info["total_bytes"],
        file_rows="\n".join(rows),
        zh_documents=len(zh),
        zh_min_chars=min(zh),
        zh_max_chars=max(zh),
        zh_median_chars=sorted(zh)[len(zh) // 2],
        eval_articles=", ".join(str(i) for i in EVAL_ARTICLES),
        duplicate_rows="\n".join(dup_lines),
    )


# --------------------------------------------------------------------------- fixtures


def build_fixtures(shared: str) -> None:
    # Only ingest/ is this function's alone. bad/, pii/ and quality/ have builders of their own, and
    # filters/heuristics_outputs.json was written by the filters' code before their rewrite
    # (tests/stages/test_heuristics_language_aware.py): the files of filters/ are overwritten.
    shutil.rmtree(os.path.join(FIXTURE_DIR, "ingest"), ignore_errors=True)
    ingest = os.path.join(FIXTURE_DIR, "ingest")
    filters = os.path.join(FIXTURE_DIR, "filters")

    _, c4 = load_c4(shared)
    _, ccnet = load_ccnet(shared)
    short_c4 = [(i, d["text"]) for i, d in enumerate(c4) if 200 <= len(d["text"]) <= 600]
    (i1, t1), (i2, t2), (i3, t3), (i4, t4) = short_c4[:4]
    cc = next(d for d in ccnet if len(d["text"]) <= 600)
    good = [
        {"text": t1},
        {"text": t2},
        {
            "text": cc["text"],
            "url": cc["metadata"]["url"],
            "metadata": {
                "source": "ccnet",
                "title": cc["metadata"]["title"],
                "language": cc["metadata"]["language"],
                "language_score": cc["metadata"]["language_score"],
            },
        },
    ]
    good_bytes = _jsonl_bytes(good)
    _write(os.path.join(ingest, "good.jsonl"), good_bytes)
    _write(os.path.join(ingest, "good.jsonl.gz"), _gzip_bytes(good_bytes))
    _write(os.path.join(ingest, "good.jsonl.zst"), _zstd_bytes(good_bytes))

    first_sentence = re.split(r"(?<=[.!?])\s", t4, maxsplit=1)[0]
    valid_first = json.dumps({"text": t1}, ensure_ascii=False)
    malformed = [
        valid_first.encode("utf-8"),  # 1 ok
        json.dumps({"text": t2}, ensure_ascii=False)[:60].encode("utf-8"),  # 2 bad_json (truncated)
        json.dumps({"url": cc["metadata"]["url"], "title": cc["metadata"]["title"]}, ensure_ascii=False).encode(
            "utf-8"
        ),  # 3 missing_text_field
        b'{"text": ""}',  # 4 empty_text
        b'{"text": "'
        + first_sentence.encode("utf-8").replace(b'"', b"'")[:40]
        + b"\xff\xfe"
        + b' more text"}',  # 5 bad_encoding
        json.dumps({"text": t3}, ensure_ascii=False).encode("utf-8"),  # 6 ok
        b"[1, 2]",  # 7 not_an_object
    ]
    _write(os.path.join(ingest, "malformed.jsonl"), b"".join(line + b"\n" for line in malformed))

    parquet_docs = [d for d in ccnet if len(d["text"]) <= 1500][:3]
    _write_parquet(
        os.path.join(ingest, "docs.parquet"),
        pa.table(
            {
                "text": pa.array([d["text"] for d in parquet_docs], pa.string()),
                "url": pa.array([d["metadata"]["url"] for d in parquet_docs], pa.string()),
            }
        ),
    )

    en_para = t4.split("\n")[0]
    zh_docs = split_debian_reference(_read_text(os.path.join(shared, "zh", "debian-reference.zh-cn.txt.gz")))
    zh_para = _zh_paragraph(zh_docs)
    _write(os.path.join(ingest, "txt", "en.txt"), (en_para + "\n").encode("utf-8"))
    _write(os.path.join(ingest, "txt", "zh.txt"), (zh_para + "\n").encode("utf-8"))
    cut = len(en_para) // 2
    cut = en_para.rfind(" ", 0, cut) if " " in en_para[:cut] else cut
    _write(
        os.path.join(ingest, "txt", "bad.txt"),
        en_para[:cut].encode("utf-8") + b" \xff\xfe" + en_para[cut:].encode("utf-8") + b"\n",
    )

    shutil.copyfile(os.path.join(shared, "web", "whirlwind.warc.gz"), os.path.join(ingest, "one.warc.gz"))
    shutil.copyfile(os.path.join(shared, "web", "whirlwind.warc.wet.gz"), os.path.join(ingest, "one.warc.wet.gz"))

    wiki = load_wiki(shared)
    wiki_idx = next(i for i, w in enumerate(wiki) if w["title"] == "An American in Paris")
    _write_json(
        os.path.join(filters, "good_en.json"),
        {
            "text": wiki[wiki_idx]["text"],
            "provenance": f"English Wikipedia article 'An American in Paris' (web/wikipedia_en_sample.txt line "
            f"{_nonempty_line_no(shared, wiki_idx)}), complete; paragraph breaks restored as in data/sample/wiki. CC BY-SA.",
        },
    )

    good_zh = _good_zh_sections(zh_docs)
    _write_json(
        os.path.join(filters, "good_zh.json"),
        [
            {
                "text": d["text"],
                "provenance": f"Debian Reference (zh-cn) section '{d['title']}' as split by "
                f"scripts/build_sample.py (zh/debian-reference.zh-cn.txt.gz). GPL-2+.",
            }
            for d in good_zh
        ],
    )

    i_spam = next(
        i
        for i, d in enumerate(c4)
        if 3 <= len([line for line in d["text"].split("\n") if line.strip()]) <= 6 and len(d["text"]) <= 800
    )
    real_lines = [line for line in c4[i_spam]["text"].split("\n") if line.strip()][:3]
    _write_json(
        os.path.join(filters, "spam.json"),
        {
            "text": "\n".join(real_lines + [SPAM_LINE] * SPAM_REPEATS),
            "provenance": f"SYNTHETIC spam page: the first {len(real_lines)} non-empty line(s) of C4 document "
            f"(web/c4_sample.jsonl line {i_spam + 1}) followed by the synthetic line {SPAM_LINE!r} "
            f"repeated {SPAM_REPEATS} times.",
        },
    )

    for lang, name, start in (("de", "german.json", 200), ("ja", "japanese.json", 150)):
        sents = [
            s.strip()
            for s in _lines(_read_text(os.path.join(shared, "langid", "sentences", f"{lang}.txt")))
            if s.strip()
        ]
        sep = "" if lang in NO_SPACE_LANGS else " "
        _write_json(
            os.path.join(filters, name),
            {
                "text": sep.join(sents[start : start + 15]),
                "provenance": f"lingua-py test sentences langid/sentences/{lang}.txt lines {start + 1}-{start + 15} "
                f"(Leipzig corpora), joined with {'no separator' if not sep else 'a space'}; disjoint from "
                "data/sample/multilingual (which uses lines 1-120). Apache-2.0.",
            },
        )

    fixture_info = {
        "c4_lines": (i1 + 1, i2 + 1, i3 + 1, i4 + 1),
        "spam_line": i_spam + 1,
        "ccnet_url": cc["metadata"]["url"],
        "parquet_urls": [d["metadata"]["url"] for d in parquet_docs],
        "good_zh": good_zh,
    }
    _write(os.path.join(FIXTURE_DIR, "README.md"), render_fixture_readme(fixture_info).encode("utf-8"))


def _nonempty_line_no(shared: str, idx: int) -> int:
    lines = _lines(_read_text(os.path.join(shared, "web", "wikipedia_en_sample.txt")))
    nonempty = [n for n, line in enumerate(lines, 1) if line.strip()]
    return nonempty[idx]


def _cjk_ratio(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(
        1 for c in chars if "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"
    ) / max(1, len(chars))


def _zh_paragraph(zh_docs: list[dict]) -> str:
    """The first prose paragraph (>= 100 chars, mostly CJK) of the Debian Reference, lines unwrapped."""
    for doc in zh_docs:
        for para in re.split(r"\n\s*\n", doc["text"]):
            joined = "".join(line.strip() for line in para.split("\n"))
            if len(joined) >= 100 and _cjk_ratio(joined) >= 0.9 and not joined.startswith("*"):
                return joined
    raise RuntimeError("no Chinese paragraph found")


def _good_zh_sections(zh_docs: list[dict]) -> list[dict]:
    """Two prose-heavy sections of 800-3000 characters (highest CJK share, ties by position)."""
    cands = [(i, d) for i, d in enumerate(zh_docs) if 800 <= len(d["text"]) <= 3000]
    cands.sort(key=lambda t: (-round(_cjk_ratio(t[1]["text"]), 3), t[0]))
    return [d for _, d in sorted(cands[:2], key=lambda t: t[0])]


def render_fixture_readme(fi: dict) -> str:
    c4_lines = dict(zip(("c4_line_1", "c4_line_2", "c4_line_3", "c4_line_4"), fi["c4_lines"]))
    zh_titles = ", ".join(f"'{d['title']}' ({len(d['text'])} chars)" for d in fi["good_zh"])
    return render_template(
        "fixtures_README.md",
        **c4_lines,
        ccnet_url=fi["ccnet_url"],
        parquet_urls=", ".join(fi["parquet_urls"]),
        zh_titles=zh_titles,
        spam_line=fi["spam_line"],
        spam_text=SPAM_LINE,
        spam_repeats=SPAM_REPEATS,
    )


def render_template(name: str, **values) -> str:
    """scripts/templates/NAME with its ${placeholders} filled in (prose lives there, not in code)."""
    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as handle:
        return Template(handle.read()).substitute(values)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=DEFAULT_SHARED, help="source data folder (default: ../shared/data)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--fixtures", action="store_true", help="build only tests/fixtures")
    group.add_argument("--sample", action="store_true", help="build only data/sample (+ data/README.md, data/licenses)")
    args = ap.parse_args(argv)
    shared = os.path.abspath(args.shared)
    if not os.path.isdir(os.path.join(shared, "web")):
        print(f"error: {shared} does not look like the shared data folder (no web/)", file=sys.stderr)
        return 2
    if not args.fixtures:
        info = build_sample(shared)
        print(f"data/sample: {len(_walk(SAMPLE_DIR))} files, {info['total_bytes']} bytes")
    if not args.sample:
        build_fixtures(shared)
        print(f"tests/fixtures: {len(_walk(FIXTURE_DIR))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
