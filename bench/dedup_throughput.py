"""Fuzzy dedup throughput: `python -m bench.dedup_throughput [--mb 100] [--cores 2] [--rss-base-mb 4]`.

Input (built once by bench/inputs.py, cached under bench/work/, git-ignored): real text from
../shared/data (C4 and CCNet pages, Wikipedia articles cut into 2-5k-character
documents at sentence ends, the Chinese Debian Reference cut into 2-5k-character
documents at blank lines) repeated until `--mb` MB of UTF-8 text. Copy 0 of
each document is the original; every other copy has a fraction r ~ U(0, 0.10)
of its words replaced by random corpus words (Chinese: of its CJK characters),
at least one, so no two copies are identical and LSH sees realistic buckets:
near-duplicate copies (small r: 5-gram Jaccard with the original ~0.8) and
copies that are no longer duplicates (r near 0.1: Jaccard ~0.4). Stored as
Parquet in the document schema plus `lang` (en, or zh for the Debian
Reference, as langid would say), one source.

Measured, on the same cores:
1. Signatures, text -> signature, on the same `--signature-docs` documents,
   in CPU seconds of this process (other load on the shared machine then
   hardly biases the ratio): the stage's batched path (`shingle_hash_batch`
   + `signatures_flat` per batch of `batch_size` documents, as `band_rows`
   runs it) vs the usual per-document datasketch loop: shingle strings
   (`grams_of`, the same shingles), then `MinHash(num_perm, seed,
   scheme="legacy")` and `update(gram.encode())` per shingle (datasketch's
   default SHA-1 hash). Also shown: the loop alone, the loop fed our shingle
   hashes (`hashfunc=lambda x: x`: signatures identical to ours, checked),
   and datasketch's bulk `update_batch` per document. Goal: >= 10x the loop.
2. End to end: a local Ray (num_cpus=cores) runs `exact_dedup` then
   `minhash_dedup` (params from configs/corpus.yaml) as pipelines/corpus.py
   does (blocks of `batch_size` documents, preserve_order, materialise,
   then each stage's `find`, its marks materialised), each step timed: wall seconds and
   CPU-seconds summed over the driver and every Ray process (raylet, GCS,
   workers; sampled from /proc every 0.2 s). MB/s = text MB / wall seconds
   (Ray start and Parquet read excluded); per core = that / cores; MB per
   CPU-second = MB/s per fully used core, the figure that the machine's
   other load hardly changes. Fuzzy dedup = the `minhash_dedup` step (goal
   >= 1 MB/s per core); exact_dedup and both together are shown too.
3. Peak memory at 1x, 4x and 16x `--rss-base-mb`, each in a fresh process
   with a fresh Ray: the process tree (driver, raylet, GCS, workers) sampled
   every 0.2 s from /proc/PID/smaps_rollup: sum of RSS, sum of PSS (shared
   pages counted once), and PSS split into anonymous (heaps) and shmem (Ray's
   object store). Plus one "long" run: 4x the text in 1x the documents
   (4 documents concatenated), to tell growth with text from growth with
   documents.

Ends with `signatures_per_s S datasketch_loop_per_s D speedup X mb_per_s M
mb_per_s_per_core C mb_per_cpu_s Z` (signatures: documents per CPU-second,
text -> signature; MB figures: the minhash_dedup step).
MB = 10^6 bytes of UTF-8 text. `--profile` runs py-spy on the minhash run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.inputs import DEFAULT_SHARED, MB, REPO, build_dedup_input
from bench.monitor import TreeMonitor, loadavg
from bench.ours_runner import start_ray


def log(message: str) -> None:
    print(f"[dedup_throughput] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- input


def read_texts(manifest: dict, limit: int | None = None) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    texts, langs = [], []
    for path in manifest["files"]:
        table = pq.read_table(path, columns=["text", "lang"])
        texts += table["text"].to_pylist()
        langs += table["lang"].to_pylist()
        if limit and len(texts) >= limit:
            break
    return (texts[:limit], langs[:limit]) if limit else (texts, langs)


# --------------------------------------------------------------------------- signatures


def grams_of(text: str, lang: str | None, params) -> list[str]:
    """The shingles `stages.minhash_dedup.shingle_hash_batch` hashes, as strings (the lowercased
    whitespace-separated words, or alphanumeric characters for CJK/Thai, in n-grams), unique:
    what a datasketch user feeds `MinHash.update`."""
    from stages.text import UNSPACED_LANGS

    text = text.lower()
    if lang in UNSPACED_LANGS:
        units, n, sep = [ch for ch in text if ch.isalnum()], params.char_ngram, ""
    else:
        units, n, sep = text.split(), params.ngram, " "
    if len(units) < n:
        return [sep.join(units)] if units else [""]
    return list({sep.join(units[i : i + n]) for i in range(len(units) - n + 1)})


def cpu() -> float:
    return time.process_time()


def bench_signatures(texts: list[str], langs: list[str], params, batch_size: int) -> dict:
    """CPU seconds of each path on the same documents."""
    import numpy as np
    from datasketch import MinHash

    from stages.minhash_dedup import permutations, shingle_hash_batch, signatures_flat

    a, b = permutations(params.num_perm, params.seed)
    n = len(texts)
    out: dict = {"documents": n}
    # Ours, as band_rows runs it: per batch of `batch_size` documents, shingle hashes then signatures.
    batches = range(0, n, batch_size)
    t0 = cpu()
    hashed = [shingle_hash_batch(texts[k : k + batch_size], langs[k : k + batch_size], params) for k in batches]
    t1 = cpu()
    sigs = np.concatenate([signatures_flat(h, offsets, a, b) for h, offsets in hashed])
    t2 = cpu()
    hashes = [h[offsets[i] : offsets[i + 1]] for h, offsets in hashed for i in range(len(offsets) - 1)]
    out.update(shingles=sum(len(h) for h in hashes), ours_shingle_s=t1 - t0, ours_signature_s=t2 - t1)
    # datasketch, per document: (a) the usual loop, SHA-1 of each shingle string (grams built first).
    t0 = cpu()
    grams = [grams_of(t, lang, params) for t, lang in zip(texts, langs)]
    out["grams_s"] = cpu() - t0
    t0 = cpu()
    for doc in grams:
        m = MinHash(num_perm=params.num_perm, seed=params.seed, scheme="legacy")
        for g in doc:
            m.update(g.encode("utf-8"))
    t1 = cpu()
    # (b) the same loop fed our shingle hashes: identical signatures to ours.
    ref_sigs = []
    for hv in hashes:
        m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=lambda x: x, scheme="legacy")
        for h in hv:
            m.update(h)
        ref_sigs.append(m.hashvalues)
    t2 = cpu()
    # (c) datasketch's bulk API per document, our hashes.
    for hv in hashes:
        m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=lambda x: x, scheme="legacy")
        m.update_batch(hv)
    t3 = cpu()
    same = all(np.array_equal(r.astype(np.uint32), s) for r, s in zip(ref_sigs, sigs))
    out.update(
        reference_shingles=sum(len(g) for g in grams),
        ds_loop_sha1_s=t1 - t0,
        ds_loop_xxh_s=t2 - t1,
        ds_update_batch_s=t3 - t2,
        identical=same,
    )
    return out


def print_signatures(r: dict) -> tuple[float, float]:
    """The table; returns (ours, datasketch loop) in documents per CPU-second, text -> signature."""
    n = r["documents"]
    ours_sig = n / r["ours_signature_s"]
    ours_all = n / (r["ours_shingle_s"] + r["ours_signature_s"])
    loop_with_shingling = n / (r["ds_loop_sha1_s"] + r["grams_s"])
    print(
        f"\n### Signatures (one process, CPU seconds; num_perm {r['num_perm']}; the same {n:,} documents, "
        f"{r['shingles'] / n:.0f} shingles/doc)\n"
    )
    print("| path | docs per CPU-s | shingles per CPU-s (M) | vs datasketch loop (text -> signature) |")
    print("| --- | ---: | ---: | ---: |")
    rows = [
        (
            "**ours: `shingle_hash_batch` + `signatures_flat` per batch (text -> signature)**",
            ours_all,
            r["shingles"] / (r["ours_shingle_s"] + r["ours_signature_s"]),
        ),
        ("ours: `signatures_flat` alone (hashes given)", ours_sig, r["shingles"] / r["ours_signature_s"]),
        ("ours: `shingle_hash_batch` alone", n / r["ours_shingle_s"], r["shingles"] / r["ours_shingle_s"]),
        (
            "**datasketch: shingle strings + `update(gram.encode())` loop (SHA-1) (text -> signature)**",
            loop_with_shingling,
            r["reference_shingles"] / (r["ds_loop_sha1_s"] + r["grams_s"]),
        ),
        (
            "datasketch: `update(gram.encode())` loop alone (shingle strings given)",
            n / r["ds_loop_sha1_s"],
            r["reference_shingles"] / r["ds_loop_sha1_s"],
        ),
        ("datasketch: `update(h)` loop on our hashes", n / r["ds_loop_xxh_s"], r["shingles"] / r["ds_loop_xxh_s"]),
        (
            "datasketch: `update_batch(hashes)` per document, our hashes",
            n / r["ds_update_batch_s"],
            r["shingles"] / r["ds_update_batch_s"],
        ),
    ]
    for label, rate, shingles in rows:
        print(f"| {label} | {rate:,.0f} | {shingles / 1e6:.2f} | {rate / loop_with_shingling:.1f}x |")
    print(f"\nsignatures identical to datasketch's on the same shingle hashes: {'yes' if r['identical'] else 'NO'}")
    return ours_all, loop_with_shingling


# --------------------------------------------------------------------------- end to end


def dedup_specs() -> tuple[list[tuple[str, dict]], int, int]:
    from bench.dedup import dedup_specs as specs

    return specs(os.path.join(REPO, "configs", "corpus.yaml"))


def run_end_to_end(manifest: dict, cores: int, profile: str | None = None) -> dict:
    """exact_dedup then minhash_dedup on the manifest's Parquet, timed per stage, in this process."""
    import ray

    from stages import build_stage
    from stages.base import RunContext

    with TreeMonitor() as monitor:  # before Ray starts, so that its processes are in the tree
        ray_start = start_ray(cores)
        specs, batch_size, seed = dedup_specs()
        context = RunContext(source_priority={"bench": 1}, batch_size=batch_size, seed=seed)
        result = {
            "ray_start_s": ray_start,
            "documents": manifest["documents"],
            "text_bytes": manifest["text_bytes"],
            "load_before": loadavg(),
        }
        ray.data.DataContext.get_current().execution_options.preserve_order = True  # as pipelines/corpus.py
        t0 = time.perf_counter()
        # Blocks of `batch_size` documents, as the pipeline's stage chain hands them to the dedup stages
        # (read_parquet alone would make one block of everything: one task, one core).
        ds = ray.data.read_parquet(manifest["files"]).repartition(target_num_rows_per_block=batch_size).materialize()
        result["read_s"] = time.perf_counter() - t0
        result["blocks"] = ds.num_blocks()
        cpu_start = monitor.cpu_total()
        t_start = time.perf_counter()
        spy = None
        for name, params in specs:
            stage = build_stage(name, params)
            if profile and name == "minhash_dedup":
                spy = subprocess.Popen(
                    [
                        os.path.join(os.path.dirname(sys.executable), "py-spy"),
                        "record",
                        "--subprocesses",
                        "--idle",
                        "-r",
                        "50",
                        "-f",
                        "raw",
                        "-o",
                        profile,
                        "-p",
                        str(os.getpid()),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            t0, c0 = time.perf_counter(), monitor.cpu_total()
            # `find` is the global work (keys, shuffles, components); marking a file's rows by id is a
            # cheap pass the pipeline fuses with its next read, so the next stage reads `ds` as it was.
            stage.find(ds, context).materialize()
            result[f"{name}_s"] = time.perf_counter() - t0
            result[f"{name}_cpu_s"] = monitor.cpu_total() - c0
            result[f"{name}_stats"] = {k: v for k, v in stage.stats.items() if k == "duplicates"}
        result["total_s"] = time.perf_counter() - t_start
        result["cpu_s"] = monitor.cpu_total() - cpu_start
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes the profile and exits
            spy.wait(timeout=120)
        result["load_after"] = loadavg()
    result["peak"] = monitor.peak
    ray.shutdown()
    return result


def child(manifest_path: str, cores: int, profile: str | None) -> int:
    """One end-to-end run in a fresh process (fresh Ray): prints its result as JSON on the last line."""
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    result = run_end_to_end(manifest, cores, profile)
    print(json.dumps(result))
    return 0


def run_child(manifest: dict, cores: int, profile: str | None = None) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.dedup_throughput",
        "--child",
        os.path.join(manifest["folder"], "manifest.json"),
        "--cores",
        str(cores),
    ] + (["--profile", profile] if profile else [])
    log(
        f"end to end on {manifest['name']}: {manifest['text_bytes'] / MB:.1f} MB, {manifest['documents']:,} docs "
        f"(load {loadavg()})"
    )
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"end-to-end run failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100, help="text MB for the throughput run")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rss-base-mb", type=float, default=4, help="1x size of the memory runs (also 4x, 16x)")
    parser.add_argument(
        "--signature-docs",
        type=int,
        default=3000,
        help="documents for the signature timing (ours and datasketch on the same ones)",
    )
    parser.add_argument("--skip", action="append", default=[], choices=["signatures", "e2e", "rss"])
    parser.add_argument("--profile", help="py-spy raw profile of the minhash_dedup stage of the e2e run")
    parser.add_argument("--shared", default=DEFAULT_SHARED)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.cores, args.profile)

    from stages.minhash_dedup import MinHashParams

    specs, batch_size, _ = dedup_specs()
    params = MinHashParams(**dict(specs)["minhash_dedup"])
    manifest = build_dedup_input(args.shared, args.mb)
    print(
        f"input: {manifest['text_bytes'] / MB:.1f} MB of text, {manifest['documents']:,} documents "
        f"({manifest['zh_documents']:,} zh) from {manifest['base_documents']} real documents x {manifest['copies']} "
        f"copies; {manifest['folder']}"
    )
    print(
        f"machine: {os.cpu_count()} cores, load {loadavg()} (1/5/15 min) at start; minhash_dedup "
        f"{json.dumps(dict(specs)['minhash_dedup'], sort_keys=True)}; batch_size {batch_size}"
    )
    ours_sig = loop = mb_s = mb_cpu = None
    if "signatures" not in args.skip:
        texts, langs = read_texts(manifest, args.signature_docs)
        r = bench_signatures(texts, langs, params, batch_size)
        r["num_perm"] = params.num_perm
        ours_sig, loop = print_signatures(r)
        print(f"(load {loadavg()})")
    if "e2e" not in args.skip:
        r = run_child(manifest, args.cores, args.profile)
        mb = r["text_bytes"] / MB
        print(
            f"\n### End to end ({mb:.1f} MB, {r['documents']:,} documents in {r['blocks']} blocks, "
            f"{args.cores} cores, load {r['load_before']} -> {r['load_after']})\n"
        )
        print(
            "| step | wall s | CPU-s (all processes) | MB/s (wall) | MB/s per core (wall / cores) "
            "| MB per CPU-second | docs/s (wall) |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        steps = [
            (f"{step} ({r[f'{step}_stats']['duplicates']:,} duplicates)", r[f"{step}_s"], r[f"{step}_cpu_s"])
            for step in ("exact_dedup", "minhash_dedup")
        ]
        steps.append(("both, as the pipeline runs them", r["total_s"], r["cpu_s"]))
        for label, seconds, cpu_s in steps:
            print(
                f"| {label} | {seconds:.1f} | {cpu_s:.0f} | {mb / seconds:.2f} | {mb / seconds / args.cores:.2f} "
                f"| {mb / cpu_s:.2f} | {r['documents'] / seconds:,.0f} |"
            )
        fuzzy_s, fuzzy_cpu = r["minhash_dedup_s"], r["minhash_dedup_cpu_s"]
        mb_s, mb_cpu = mb / fuzzy_s, mb / fuzzy_cpu
        print(
            f"\nRay start {r['ray_start_s']:.1f} s and Parquet read {r['read_s']:.1f} s excluded; "
            f"peak PSS {mib(r['peak']['Pss'])} MiB. The machine is shared: wall-clock figures depend on "
            "the load above, CPU-seconds much less."
        )
    if "rss" not in args.skip:
        rows = []
        base = args.rss_base_mb
        for label, mb, concat in (
            ("1x", base, 1),
            ("4x", 4 * base, 1),
            ("16x", 16 * base, 1),
            ("4x text, 1x docs", 4 * base, 4),
        ):
            m = build_dedup_input(args.shared, mb, concat)
            rows.append((label, m, run_child(m, args.cores)))
        print(f"\n### Peak memory, driver + Ray processes ({args.cores} cores; MiB)\n")
        print(
            "| input | MB text | documents | seconds | sum RSS | sum PSS | PSS anon (heaps) | PSS shmem (object store) "
            "| driver RSS | load before |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for label, m, r in rows:
            p = r["peak"]
            print(
                f"| {label} | {m['text_bytes'] / MB:.1f} | {m['documents']:,} | {r['total_s']:.1f} | {mib(p['Rss'])} | "
                f"{mib(p['Pss'])} | {mib(p['Pss_Anon'])} | {mib(p['Pss_Shmem'])} | {mib(p['driver_Rss'])} | "
                f"{r['load_before']} |"
            )
    if ours_sig and mb_s:
        print(
            f"signatures_per_s {ours_sig:.0f} datasketch_loop_per_s {loop:.0f} speedup {ours_sig / loop:.1f} "
            f"mb_per_s {mb_s:.2f} mb_per_s_per_core {mb_s / args.cores:.2f} mb_per_cpu_s {mb_cpu:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
