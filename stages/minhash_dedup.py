"""Fuzzy document dedup with MinHash-LSH.

Signatures use datasketch's (legacy) permutation scheme, h(x) = ((a·x + b)
mod (2^61 - 1)) & (2^32 - 1) with a, b drawn from `RandomState(seed)` as
datasketch draws them, so a signature equals `datasketch.MinHash(seed=...)`
fed the same shingle hashes (tested). They are computed here for a whole
Arrow batch in one numpy pass rather than per document, which is what makes
them an order of magnitude faster than a `MinHash.update` loop.

Shingles: word n-grams (default 5), character n-grams for languages written
without spaces (by the `lang` column). Band keys are shuffled across the
cluster (groupby); each bucket links its members to its best-ranked member,
optionally only when their estimated Jaccard similarity passes `threshold`;
clusters are the connected components of those links.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import xxhash

from stages.base import GlobalStage, RunContext, make_params
from stages.dedup import DUPLICATE_OF, alive_rows, apply_duplicates, duplicates_from_edges, rank_keys
from stages.text import CHARACTER_WORD_LANGS

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)
CHAR_SHINGLE_LANGS = CHARACTER_WORD_LANGS | {"zh"}
_SHINGLES_PER_CHUNK = 1 << 15  # bounds the (shingles x num_perm) matrix to ~30 MB at 128 perms


@dataclass
class MinHashParams:
    num_perm: int = 112
    bands: int = 14
    rows: int = 8
    ngram: int = 5  # words per shingle
    char_ngram: int = 5  # characters per shingle for zh, ja, th, ...
    seed: int = 1
    verify: bool = True  # drop bucket links whose estimated Jaccard is below threshold
    threshold: float = 0.7

    def __post_init__(self):
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"minhash_dedup: bands x rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's legacy-scheme permutation parameters for (num_perm, seed)."""
    gen = np.random.RandomState(seed)
    pairs = [(gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
             for _ in range(num_perm)]
    a, b = np.array(pairs, dtype=np.uint64).T
    return a, b


def shingle_hashes(text: str, lang: str | None, params: MinHashParams) -> np.ndarray:
    """32-bit hashes of the document's shingles (unique)."""
    text = text.lower()
    if lang in CHAR_SHINGLE_LANGS:
        units = [ch for ch in text if ch.isalnum()]
        n, sep = params.char_ngram, ""
    else:
        units = text.split()
        n, sep = params.ngram, " "
    if len(units) < n:
        grams = [sep.join(units)] if units else [""]
    else:
        grams = {sep.join(units[i : i + n]) for i in range(len(units) - n + 1)}
    return np.fromiter((xxhash.xxh32_intdigest(g) for g in grams), dtype=np.uint64)


def signatures(hash_lists: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm, uint32) for many documents at once."""
    out = np.empty((len(hash_lists), len(a)), dtype=np.uint32)
    start = 0
    while start < len(hash_lists):
        # Take documents until the chunk holds enough shingles, then one vectorised pass.
        stop, total = start, 0
        while stop < len(hash_lists) and (total == 0 or total + len(hash_lists[stop]) <= _SHINGLES_PER_CHUNK):
            total += len(hash_lists[stop])
            stop += 1
        chunk = hash_lists[start:stop]
        hv = np.concatenate(chunk)
        permuted = np.bitwise_and((np.outer(hv, a) + b) % MERSENNE_PRIME, MAX_HASH)
        offsets = np.cumsum([0] + [len(h) for h in chunk[:-1]])
        out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=0)
        start = stop
    return out


EDGES = pa.schema([("a", pa.string()), ("b", pa.string())])
BAND_SCHEMA = pa.schema([("band", pa.int32()), ("key", pa.binary()), ("rank", pa.string()), ("signature", pa.binary())])


def band_rows(batch: pa.Table, params: MinHashParams, context: RunContext, a: np.ndarray, b: np.ndarray) -> pa.Table:
    """One row per (document, band): the band's key, the document's rank and signature."""
    rows = alive_rows(batch)
    if not rows.num_rows:
        return BAND_SCHEMA.empty_table()
    langs = rows["lang"].to_pylist() if "lang" in rows.column_names else [None] * rows.num_rows
    sigs = signatures([shingle_hashes(t, l, params) for t, l in zip(rows["text"].to_pylist(), langs)], a, b)
    ranks = rank_keys(rows, context)
    n = len(ranks)
    used = sigs[:, : params.bands * params.rows].reshape(n, params.bands, params.rows)
    keys = [used[i, j].tobytes() for i in range(n) for j in range(params.bands)]
    sig_bytes = [s.tobytes() for s in sigs] if params.verify else [b""] * n
    return pa.table(
        {
            "band": np.tile(np.arange(params.bands, dtype=np.int32), n),
            "key": keys,
            "rank": np.repeat(np.array(ranks, dtype=object), params.bands),
            "signature": np.repeat(np.array(sig_bytes, dtype=object), params.bands),
        },
        schema=BAND_SCHEMA,
    )


def bucket_edges(group: pa.Table, verify: bool, threshold: float) -> pa.Table:
    """Link each member of an LSH bucket to the bucket's best-ranked member."""
    if group.num_rows < 2:
        return EDGES.empty_table()
    order = sorted(range(group.num_rows), key=lambda i: group["rank"][i].as_py())
    ranks = [group["rank"][i].as_py() for i in order]
    first, rest = ranks[0], ranks[1:]
    if verify:
        sigs = [np.frombuffer(group["signature"][i].as_py(), dtype=np.uint32) for i in order]
        rest = [r for r, s in zip(rest, sigs[1:]) if float(np.mean(s == sigs[0])) >= threshold]
    return pa.table({"a": [first] * len(rest), "b": rest}, schema=EDGES)


class MinHashDedup(GlobalStage):
    name = "minhash_dedup"
    writes = {DUPLICATE_OF: pa.string()}

    def __init__(self, **params):
        super().__init__()
        self.params = make_params(MinHashParams, params, self.name)

    def apply(self, ds, context: RunContext):
        a, b = permutations(self.params.num_perm, self.params.seed)
        bands = ds.map_batches(band_rows, fn_kwargs={"params": self.params, "context": context, "a": a, "b": b},
                               batch_format="pyarrow", batch_size=context.batch_size)
        edges = bands.groupby(["band", "key"]).map_groups(
            bucket_edges, fn_kwargs={"verify": self.params.verify, "threshold": self.params.threshold},
            batch_format="pyarrow",
        ).take_all()
        duplicates, histogram = duplicates_from_edges(sorted({(e["a"], e["b"]) for e in edges}))
        self.stats = {"duplicates": len(duplicates), "cluster_sizes": histogram}
        return apply_duplicates(ds, duplicates, self.name, "near_duplicate", context.batch_size)
