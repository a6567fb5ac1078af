"""Near-duplicate detection accuracy: `python -m bench.dedup FILE.jsonl [--config configs/corpus.yaml] [--set KEY=VALUE]`.

FILE has one JSON object per line with `id`, `text` and `cluster` (gold:
documents with the same `cluster` are near-duplicates of each other; other
fields are optional: `variant` and `group`, as bench/build_dedup_set.py
writes them, give per-kind breakdowns).

Ours: the project's dedup as the pipeline runs it by default, i.e. the
global stages `exact_dedup` then `minhash_dedup` with their params from
the config, each run with `stages.dedup.mark_table` (find on Ray, then mark) on the Ray
dataset built from the records (all in one source, so survivors are the
smallest ids), as pipelines/corpus.py and tests/stages/dedup_helpers.py do.
Before dedup the pipeline has run two things that change what dedup sees:
- `langid`, whose `lang` column selects character shingles for
  Chinese/Japanese/Thai: the records get the same column from the project's
  LanguageId stage (scores only; nothing dropped);
- every config stage before `exact_dedup` that rewrites `text` (by default
  `c4_quality`, which removes lines with fewer than 3 words, javascript or
  cookie/privacy-policy lines, and citation markers), with its config params.
  A document that stage would remove keeps its text unchanged here (the
  pipeline would never dedup it; here every gold pair is scored), and the
  count is printed.
Predicted clusters: a removed document is linked to its `duplicate_of`;
clusters are the transitive closure of those links.

Reference, in the same run: datasketch `MinHashLSH(num_perm, params=(bands,
rows))` with the same shingles (`stages.minhash_dedup.shingle_hashes`) fed
to `MinHash(num_perm, seed, hashfunc=lambda x: x, scheme="legacy").update_batch`;
every document is inserted, then queried, and each document is unioned with
its results (transitive closure). Run on the text ours dedups (after the
rewriting above; the `reference_*` figures) and on FILE's raw text; also
shown: candidates kept only when datasketch's estimated Jaccard >= the
stage's `threshold` (what `verify: true` does in our stage, though ours
compares each bucket member with the bucket's best-ranked member only).

Metrics over gold duplicate pairs (all pairs of documents inside a cluster):
precision = correct predicted pairs / predicted pairs, recall = correct
predicted pairs / gold pairs, F1. Also a document-level macro F1 computed as
text-dedup's CORE benchmark does (the published anchor: MinHash macro F1
0.9518 on CORE, a different data set; `doc_macro_f1` below): a document with
predicted duplicates is TP if all of them are gold duplicates, else FP; one
without is TN or FN; F1 of the "duplicate" and "non-duplicate" classes
(the latter with labels inverted) averaged.

Breakdowns: false pairs per hard-negative kind (the builder's `group`: pairs
of different clusters inside one group, with how many such pairs exist),
recall per perturbation, and recall per band of the gold pair's true 5-gram
shingle Jaccard (on the text dedup sees): with the default 20 bands x 5
rows and `threshold` 0.5, pairs below ~0.5 are mostly out of reach by design.

Ends with `precision P recall R f1 F` (ours).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np
import pyarrow as pa

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEDUP_STAGES = ("exact_dedup", "minhash_dedup")
SOURCE = "bench"


def load_records(path: str) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = {"id", "text", "cluster"} - set(record)
            if missing:
                raise SystemExit(f"{path}:{number}: missing {sorted(missing)}")
            records.append(record)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: ids are not unique")
    return records


def dedup_specs(config_path: str) -> tuple[list[tuple[str, dict]], int, int]:
    """The config's exact_dedup and minhash_dedup entries (in config order), batch size, seed."""
    import yaml

    with open(config_path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    specs = [(e["name"], dict(e.get("params") or {})) for e in raw["stages"] if e["name"] in DEDUP_STAGES]
    if [name for name, _ in specs] != list(DEDUP_STAGES):
        raise SystemExit(f"{config_path}: expected stages {DEDUP_STAGES} in this order, found {[n for n, _ in specs]}")
    return specs, int((raw.get("execution") or {}).get("batch_size", 256)), int(raw.get("seed", 0))


def rewrite_specs(config_path: str) -> list[tuple[str, dict]]:
    """The config's stages before `exact_dedup` that rewrite `text` (by default c4_quality)."""
    import yaml

    from stages import stage_class

    with open(config_path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    out = []
    for entry in raw["stages"]:
        if entry["name"] == DEDUP_STAGES[0]:
            break
        if "text" in getattr(stage_class(entry["name"]), "writes", {}):
            out.append((entry["name"], dict(entry.get("params") or {})))
    return out


def document_table(records: list[dict], rewriters: list[tuple[str, dict]]) -> tuple[pa.Table, Counter]:
    """The records as a batch in the document schema, with `lang` from the project's LanguageId and
    `text` as the `rewriters` leave it (a document one of them would remove keeps its text), and how
    many documents each rewriter would remove."""
    from stages import build_stage
    from stages.base import document_batch, set_column
    from stages.langid import LanguageId

    table = document_batch([r["text"] for r in records], sources=[SOURCE] * len(records))
    table = set_column(table, "id", pa.array([str(r["id"]) for r in records], pa.string()))
    langid = LanguageId()
    langid.setup()
    scores = langid.score(table)
    table = set_column(table, "lang", pa.array(scores["lang"], pa.string()))
    table = set_column(table, "lang_score", pa.array(scores["lang_score"], pa.float32()))
    removed = Counter()
    for name, params in rewriters:
        stage = build_stage(name, params)
        stage.setup()
        done = stage.process(table)  # rows it removes get their text back unchanged (Filter.process)
        removed.update(f"{name}:{reason}" for reason in done["drop_reason"].to_pylist() if reason)
        table = set_column(table, "text", done["text"])
    return table, removed


# --------------------------------------------------------------------------- clustering and metrics


def pairs_of(clusters) -> set[tuple[str, str]]:
    return {pair for members in clusters for pair in combinations(sorted(members), 2)}


def pair_scores(predicted: set, gold: set) -> tuple[float, float, float]:
    correct = len(predicted & gold)
    precision = correct / len(predicted) if predicted else 1.0
    recall = correct / len(gold) if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def doc_macro_f1(predicted_clusters, gold_clusters) -> float:
    """text-dedup CORE style: per-document TP/FP/FN/TN, macro F1 over duplicate / non-duplicate."""

    def partners(clusters):
        out = {}
        for members in clusters:
            for m in members:
                out[m] = set(members) - {m}
        return out

    pred, gold = partners(predicted_clusters), partners(gold_clusters)
    labels = Counter()
    for doc, duplicates in gold.items():
        predictions = pred.get(doc, set())
        if not predictions:
            labels["TN" if not duplicates else "FN"] += 1
        elif duplicates and duplicates.issuperset(predictions):
            labels["TP"] += 1
        else:
            labels["FP"] += 1

    def f1(tp, fp, fn):
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    duplicate_class = f1(labels["TP"], labels["FP"], labels["FN"])
    non_duplicate_class = f1(labels["TN"], labels["FN"], labels["FP"])  # inverted labels
    return (duplicate_class + non_duplicate_class) / 2


def negative_kind(group: str | None) -> str | None:
    """The builder's hard-negative group -> the kind reported: `template <fraction>` or `topic:<origin>`."""
    if not group:
        return None
    parts = group.split(":")
    if parts[0] == "template":
        return f"template {parts[2]}" if len(parts) > 2 else "template"
    return ":".join(parts[:2])


def hard_negative_pairs(records: dict) -> Counter:
    """How many pairs of different clusters share a hard-negative group, per kind."""
    groups = defaultdict(list)
    for r in records.values():
        if r.get("group"):
            groups[r["group"]].append(r["cluster"])
    out = Counter()
    for group, clusters in groups.items():
        sizes = Counter(clusters)
        total = len(clusters) * (len(clusters) - 1) // 2
        out[negative_kind(group)] += total - sum(n * (n - 1) // 2 for n in sizes.values())
    return out


JACCARD_BANDS = ((0.9, 1.01), (0.8, 0.9), (0.7, 0.8), (0.6, 0.7), (0.5, 0.6), (0.0, 0.5))


def report(
    name: str, predicted_clusters, gold_clusters, gold_pairs: set, records: dict, jaccard: dict
) -> tuple[float, float, float]:
    predicted = pairs_of(predicted_clusters)
    precision, recall, f1 = pair_scores(predicted, gold_pairs)
    macro = doc_macro_f1(predicted_clusters, gold_clusters)
    print(
        f"{name}: predicted_pairs {len(predicted)} correct {len(predicted & gold_pairs)} "
        f"gold_pairs {len(gold_pairs)} precision {precision:.4f} recall {recall:.4f} f1 {f1:.4f} "
        f"doc_macro_f1 {macro:.4f}"
    )
    # False links by the kind of pair (hard-negative group of the builder, when present).
    false = Counter()
    for a, b in sorted(predicted - gold_pairs):
        ka, kb = (negative_kind(records[x].get("group")) for x in (a, b))
        false[ka if ka and records[a]["group"] == records[b]["group"] else "other"] += 1
    negatives = hard_negative_pairs(records)
    if negatives or false:
        print(
            "  false pairs by kind (of hard-negative pairs): "
            + ", ".join(
                f"{k} {false[k]}" + (f"/{negatives[k]}" if k in negatives else "")
                for k in sorted(set(negatives) | set(false))
            )
        )
    # Recall by the true shingle Jaccard of the gold pair.
    by_band = []
    for low, high in JACCARD_BANDS:
        inside = [pair for pair in gold_pairs if low <= jaccard[pair] < high]
        if inside:
            found_here = sum(pair in predicted for pair in inside)
            by_band.append(
                f"[{low:.1f},{min(high, 1):.1f}{']' if high > 1 else ')'} {found_here / len(inside):.3f} "
                f"({len(inside)})"
            )
    print("  recall by true 5-gram Jaccard of the gold pair: " + ", ".join(by_band))
    # Recall per variant: gold pairs (original, variant) found, by the variant's perturbations.
    found, total = Counter(), Counter()
    for a, b in gold_pairs:
        va, vb = records[a].get("variant"), records[b].get("variant")
        if va is None or vb is None or "original" not in (va, vb) or va == vb:
            continue
        kind = vb if va == "original" else va
        kind = "+".join(part.split("(")[0] for part in kind.split("+"))
        total[kind] += 1
        found[kind] += (a, b) in predicted
    if total:
        print(
            "  recall of (original, variant) pairs by perturbation: "
            + ", ".join(f"{k} {found[k] / total[k]:.3f} ({total[k]})" for k in sorted(total))
        )
    return precision, recall, f1


# --------------------------------------------------------------------------- ours and the reference


def run_ours(table: pa.Table, specs, batch_size: int, seed: int, blocks: int) -> tuple[pa.Table, dict, float]:
    from stages import build_stage
    from stages.base import RunContext
    from stages.dedup import mark_table

    context = RunContext(source_priority={SOURCE: 1}, batch_size=batch_size, seed=seed)
    started = time.perf_counter()
    stages = [build_stage(name, params) for name, params in specs]
    for stage in stages:
        table = mark_table(stage, table, context, blocks)  # find on Ray, then mark
    seconds = time.perf_counter() - started
    return table, {stage.name: stage.stats for stage in stages}, seconds


class UnionFind:
    """Clusters of the reference's linked pairs (no singletons)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        while self.parent.get(x, x) != x:
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def clusters(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        for root, members in out.items():
            if root not in members:
                members.append(root)
        return out


def run_datasketch(texts: list[str], langs: list[str | None], ids: list[str], params) -> tuple[list, list, float, bool]:
    from datasketch import MinHash, MinHashLSH

    from stages.minhash_dedup import permutations, shingle_hashes, signatures

    started = time.perf_counter()
    lsh = MinHashLSH(num_perm=params.num_perm, params=(params.bands, params.rows))
    sketches, hashes = [], []
    for doc_id, text, lang in zip(ids, texts, langs):
        hv = shingle_hashes(text, lang, params)
        m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=lambda x: x, scheme="legacy")
        m.update_batch(hv)
        lsh.insert(doc_id, m)
        sketches.append(m)
        hashes.append(hv)
    plain, verified = UnionFind(), UnionFind()  # clusters of linked documents (no singletons: no pairs)
    for doc_id, m in zip(ids, sketches):
        for other in lsh.query(m):
            plain.union(doc_id, other)
    by_id = dict(zip(ids, sketches))
    for doc_id, m in zip(ids, sketches):
        for other in lsh.query(m):
            if m.jaccard(by_id[other]) >= params.threshold:
                verified.union(doc_id, other)
    seconds = time.perf_counter() - started
    # Cross-check: the stage's batched signatures equal datasketch's, document for document.
    a, b = permutations(params.num_perm, params.seed)
    ours = signatures(hashes, a, b)
    same = all(np.array_equal(m.hashvalues.astype(np.uint32), s) for m, s in zip(sketches, ours))
    return list(plain.clusters().values()), list(verified.clusters().values()), seconds, same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="JSONL with id, text, cluster")
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "corpus.yaml"))
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPUs for the local Ray")
    parser.add_argument("--blocks", type=int, default=0, help="dataset blocks (default: 2 x cores)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a minhash_dedup param for ours and the reference, e.g. --set verify=false "
        "(values parsed as YAML)",
    )
    args = parser.parse_args(argv)

    import ray

    from bench.pipeline_throughput import start_ray
    from stages.minhash_dedup import MinHashParams, shingle_hashes
    from tokenizer.config import parse_set

    records = load_records(args.file)
    by_id = {str(r["id"]): r for r in records}
    specs, batch_size, seed = dedup_specs(args.config)
    dict(specs)["minhash_dedup"].update(parse_set(args.set))
    params = MinHashParams(**dict(specs)["minhash_dedup"])
    print(
        f"file {args.file}: {len(records)} documents; config {os.path.relpath(args.config, REPO)}: "
        + "; ".join(f"{name} {json.dumps(p, sort_keys=True)}" for name, p in specs)
        + f"; batch_size {batch_size}"
    )
    print(f"load: {open('/proc/loadavg').read().split()[:3]} (1/5/15 min) on {os.cpu_count()} cores")

    gold = defaultdict(list)
    for r in records:
        gold[r["cluster"]].append(str(r["id"]))
    gold_clusters = list(gold.values())
    gold_pairs = pairs_of(gold_clusters)
    sizes = Counter(len(c) for c in gold_clusters)
    print(
        f"gold: {len(gold_clusters)} clusters (sizes "
        + " ".join(f"{k}:{v}" for k, v in sorted(sizes.items()))
        + f"), {len(gold_pairs)} duplicate pairs"
    )

    rewriters = rewrite_specs(args.config)
    table, would_remove = document_table(records, rewriters)
    ids, langs, texts = table["id"].to_pylist(), table["lang"].to_pylist(), table["text"].to_pylist()
    raw_texts = [by_id[i]["text"] for i in ids]
    print("lang (LanguageId): " + " ".join(f"{k}:{v}" for k, v in Counter(langs).most_common(6)))
    print(
        f"text rewritten before dedup by {', '.join(n for n, _ in rewriters) or 'nothing'}: "
        f"{sum(a != b for a, b in zip(texts, raw_texts))} documents changed, "
        f"{sum(len(t.encode()) for t in texts) / sum(len(t.encode()) for t in raw_texts):.3f} of the bytes kept; "
        f"would remove (kept here unchanged): {dict(sorted(would_remove.items())) or 'none'}"
    )
    shingles = {i: set(shingle_hashes(t, lang, params).tolist()) for i, t, lang in zip(ids, texts, langs)}
    jaccard = {(a, b): len(shingles[a] & shingles[b]) / len(shingles[a] | shingles[b]) for a, b in gold_pairs}

    start_ray(args.cores)
    try:
        out, stats, seconds = run_ours(table, specs, batch_size, seed, args.blocks or 2 * args.cores)
    finally:
        ray.shutdown()
    if out.num_rows != len(records):
        raise SystemExit(f"dedup returned {out.num_rows} rows for {len(records)} documents")
    components = UnionFind()
    removed = Counter()
    for doc_id, of, stage in zip(out["id"].to_pylist(), out["duplicate_of"].to_pylist(), out["drop_stage"].to_pylist()):
        if of is not None:
            components.union(doc_id, of)
            removed[stage] += 1
    print(
        f"ours: {seconds:.1f} s; removed "
        + ", ".join(f"{k} {v}" for k, v in sorted(removed.items()))
        + "; stats "
        + json.dumps(stats, sort_keys=True)
    )

    plain, verified, ds_seconds, same = run_datasketch(texts, langs, ids, params)
    raw_plain, raw_verified, _, _ = run_datasketch(raw_texts, langs, ids, params)
    print(f"datasketch: {ds_seconds:.1f} s; signatures identical to the stage's: {'yes' if same else 'NO'}")
    print()
    gold_args = (gold_clusters, gold_pairs, by_id, jaccard)
    report("datasketch MinHashLSH, raw text", raw_plain, *gold_args)
    report(f"datasketch MinHashLSH + jaccard>={params.threshold}, raw text", raw_verified, *gold_args)
    ref = report("datasketch MinHashLSH, text as ours sees it", plain, *gold_args)
    report(f"datasketch MinHashLSH + jaccard>={params.threshold}, text as ours sees it", verified, *gold_args)
    precision, recall, f1 = report(
        "ours (exact_dedup -> minhash_dedup)", list(components.clusters().values()), *gold_args
    )
    print(f"reference_precision {ref[0]:.4f} reference_recall {ref[1]:.4f} reference_f1 {ref[2]:.4f}")
    print(f"precision {precision:.4f} recall {recall:.4f} f1 {f1:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
