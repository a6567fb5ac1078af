"""Fuzzy document dedup with MinHash-LSH.

Signatures use datasketch's (legacy) permutation scheme, h(x) = ((a·x + b)
mod (2^61 - 1)) & (2^32 - 1) with a, b drawn from `RandomState(seed)` as
datasketch draws them, so a signature equals `datasketch.MinHash(seed=...)`
fed the same shingle hashes (tested). They are computed here for a whole
Arrow batch in a few numpy passes rather than per document (the modulo by
the Mersenne prime with shifts and masks instead of a division), and the
shingle hashes too (words hashed once, n-grams combined numerically), which
makes text -> signature much faster than a `MinHash.update` loop
(bench/dedup_throughput.py measures both).

Shingles: word n-grams (default 5), character n-grams for languages written
without spaces (by the `lang` column). Band keys are hash-shuffled across the
cluster; each bucket links its members to its best-ranked member,
optionally only when their estimated Jaccard similarity passes `threshold`;
clusters are the connected components of those links.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import PositiveInt, model_validator

from stages.base import Fraction, GlobalStage, RunContext, Strict, make_params
from stages.dedup import (
    BUCKET_SCHEMA,
    DUPLICATE_MARKS,
    DUPLICATE_OF,
    alive_rows,
    bucket_links,
    duplicate_marks,
    mark_duplicates,
    rank_keys,
)
from stages.text import UNSPACED_LANGS

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)
_SHINGLES_PER_CHUNK = 1 << 11  # (shingles x num_perm) uint64 matrix of ~2 MB at 112 perms: stays in cache


class MinHashParams(Strict):
    # 20 bands x 5 rows: documents with 5-gram Jaccard 0.6 become candidates with probability
    # 1 - (1 - 0.6^5)^20 = 0.8, at 0.7 0.99 (FineWeb's 14 x 8 misses many of the gold pairs of
    # bench/data/dedup_gold.jsonl; docs/BENCHMARKS.md has the sweep); verification at 0.5 drops the chance collisions of
    # unrelated documents, whose number grows with the corpus.
    num_perm: PositiveInt = 100
    bands: PositiveInt = 20
    rows: PositiveInt = 5
    ngram: PositiveInt = 5  # words per shingle
    char_ngram: PositiveInt = 5  # characters per shingle for zh, ja, th, ...
    seed: int = 1
    verify: bool = True  # drop bucket links whose estimated Jaccard is below threshold
    threshold: Fraction = 0.5

    @model_validator(mode="after")
    def _bands_fit(self) -> MinHashParams:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
        return self


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's legacy-scheme permutation parameters for (num_perm, seed)."""
    gen = np.random.RandomState(seed)
    pairs = [
        (gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
        for _ in range(num_perm)
    ]
    a, b = np.array(pairs, dtype=np.uint64).T
    return a, b


# Shingle hashing: each unit (a word's xxh3-64 hash, or a character's code point) is a uint64; an
# n-gram's hash is a polynomial over its n units (mod 2^64), mixed by splitmix64's finaliser and cut
# to 32 bits (the width of datasketch's default hash). Computed for a whole batch of documents in
# a few numpy passes instead of a string join and a hash call per shingle.
_POLY = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_NOT_ALNUM = re.compile(r"[\W_]+")  # what str.isalnum() rejects (\w is alphanumerics and "_")


def _units(text: str, lang: str | None, params: MinHashParams) -> tuple[np.ndarray, int]:
    """The document's shingle units as uint64, and the n-gram size."""
    text = text.lower()
    if lang in UNSPACED_LANGS:  # alphanumeric characters, n-grams of characters
        kept = _NOT_ALNUM.sub("", text)
        return np.frombuffer(kept.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64), params.char_ngram
    words = text.split()
    return np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words)), params.ngram


def shingle_hash_batch(
    texts: list[str], langs: list[str | None], params: MinHashParams
) -> tuple[np.ndarray, np.ndarray]:
    """Unique 32-bit shingle hashes of many documents, flat: (hashes as uint64, offsets of each
    document's hashes, length len(texts) + 1). Word n-grams (`ngram` words), or character n-grams
    (`char_ngram`) for languages written without spaces; a document shorter than one n-gram is one
    shingle of what it has (an empty one too)."""
    n_docs = len(texts)
    units, sizes = zip(*(_units(t, lang, params) for t, lang in zip(texts, langs))) if n_docs else ((), ())
    lengths = np.array([len(u) for u in units], dtype=np.int64)
    n = np.array(sizes, dtype=np.int64)
    all_units = np.concatenate([*units, np.zeros(1, np.uint64)])  # a final 0: the unit of empty documents
    full = lengths >= n
    counts = np.where(full, lengths - n + 1, 1)  # shingles per document
    widths = np.repeat(np.where(full, n, np.maximum(lengths, 1)), counts)  # units per shingle
    doc_of = np.repeat(np.arange(n_docs, dtype=np.uint64), counts)
    first = np.repeat(np.cumsum(lengths) - lengths - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    first[np.repeat(lengths == 0, counts)] = len(all_units) - 1
    h = all_units[first]
    widest = int(widths.max(initial=1))
    uniform = int(widths.min(initial=1)) == widest
    for k in range(1, widest):
        if uniform:
            h *= _POLY
            h += all_units[first + k]
        else:  # shorter n-grams (documents shorter than n, or word and character n differ)
            inside = widths > k
            h[inside] = h[inside] * _POLY + all_units[first[inside] + k]
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    keyed = (doc_of << np.uint64(32)) | (h >> np.uint64(32))  # (document, hash): unique per document
    keyed.sort()  # (np.unique is several times slower here)
    keyed = keyed[np.concatenate(([True], keyed[1:] != keyed[:-1]))] if len(keyed) else keyed
    offsets = np.searchsorted(keyed >> np.uint64(32), np.arange(len(texts) + 1, dtype=np.uint64))
    return keyed & MAX_HASH, offsets


def shingle_hashes(text: str, lang: str | None, params: MinHashParams) -> np.ndarray:
    """32-bit hashes of one document's shingles (unique)."""
    return shingle_hash_batch([text], [lang], params)[0]


def _mod_mersenne_low32(y: np.ndarray) -> np.ndarray:
    """(y mod (2^61 - 1)) & (2^32 - 1) as uint32, for uint64 `y` of shape (..., k), exactly.

    y mod P = (y & P) + (y >> 61), minus P if that reaches P. The low 32 bits of P are all ones,
    so the low 32 bits of the sum are low32(y) + (y >> 61) (uint32 arithmetic); the subtraction
    is needed only when y & P >= P - 7, which requires low32(y) >= 2^32 - 8: those rare entries
    are recomputed with a real modulo. Much faster than numpy's uint64 `%`."""
    halves = y.view(np.uint32).reshape(*y.shape, 2)
    low, high = (halves[..., 0], halves[..., 1]) if sys.byteorder == "little" else (halves[..., 1], halves[..., 0])
    out = high >> np.uint32(29)
    out += low
    rare = low >= np.uint32(0xFFFFFFF8)
    if rare.any():
        out[rare] = (y[rare] % MERSENNE_PRIME & MAX_HASH).astype(np.uint32)
    return out


def signatures_flat(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm, uint32) of documents whose shingle hashes are
    `hashes[offsets[i]:offsets[i + 1]]` (each document has at least one)."""
    n_docs = len(offsets) - 1
    out = np.empty((n_docs, len(a)), dtype=np.uint32)
    start = 0
    while start < n_docs:
        # Whole documents up to ~_SHINGLES_PER_CHUNK shingles (at least one), then one vectorised pass.
        stop = int(np.searchsorted(offsets, offsets[start] + _SHINGLES_PER_CHUNK, side="right")) - 1
        stop = min(max(stop, start + 1), n_docs)
        permuted = np.multiply.outer(hashes[offsets[start] : offsets[stop]], a)
        permuted += b
        low = _mod_mersenne_low32(permuted)
        out[start:stop] = np.minimum.reduceat(low, offsets[start:stop] - offsets[start], axis=0)
        start = stop
    return out


def signatures(hash_lists: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm, uint32) for many documents at once."""
    offsets = np.cumsum([0] + [len(h) for h in hash_lists])
    hashes = np.concatenate(hash_lists) if hash_lists else np.zeros(0, np.uint64)
    return signatures_flat(hashes.astype(np.uint64, copy=False), offsets, a, b)


def band_rows(batch: pa.Table, params: MinHashParams, context: RunContext, a: np.ndarray, b: np.ndarray) -> pa.Table:
    """One row per (document, band): the band's key, the document's rank and signature."""
    rows = alive_rows(batch)
    if not rows.num_rows:
        return BUCKET_SCHEMA.empty_table()
    langs = rows["lang"].to_pylist() if "lang" in rows.column_names else [None] * rows.num_rows
    sigs = signatures_flat(*shingle_hash_batch(rows["text"].to_pylist(), langs, params), a, b)
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
        schema=BUCKET_SCHEMA,
    )


class MinHashDedup(GlobalStage):
    name = "minhash_dedup"
    writes = {DUPLICATE_OF: pa.string()}
    marks_schema = DUPLICATE_MARKS

    def __init__(self, **params):
        super().__init__()
        self.params = make_params(MinHashParams, params)

    def find(self, ds, context: RunContext):
        a, b = permutations(self.params.num_perm, self.params.seed)
        bands = ds.map_batches(
            band_rows,
            fn_kwargs={"params": self.params, "context": context, "a": a, "b": b},
            batch_format="pyarrow",
            batch_size=context.batch_size,
        )
        threshold = self.params.threshold if self.params.verify else None
        marks, self.stats = duplicate_marks(bucket_links(bands, threshold))
        return marks

    def mark(self, batch: pa.Table, marks: pa.Table) -> pa.Table:
        return mark_duplicates(batch, marks, self.name, "near_duplicate")
