"""Weighted sampling of document groups by size, with repetition.

Used twice: to balance the tokenizer's training text across languages or
sources (sizes in characters) and to mix sources in the token shards (sizes
in tokens). A group short of its share is repeated in whole passes (epochs)
plus one partial pass, up to `max_repeats`; a group with more than its share
is downsampled. Whatever a capped group cannot supply goes to the others in
proportion to their weights (water-filling), so requested shares are met,
to within a fraction of a document, whenever the data suffices.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from tokenizer.config import OTHER


def stable_int(text: str) -> int:
    """A 64-bit integer from `text` that, unlike hash(), is the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def split_value(doc_id: str, seed: int = 0) -> float:
    """Position of a document in [0, 1) by a hash of its id (and `seed`): held-out and validation
    splits take the documents below a fraction, so they are stable as the corpus grows. The
    tokenizer, the shards and the quality model's training all split this way."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def heldout_mask(ids: list[str], fraction: float) -> np.ndarray:
    return np.fromiter((split_value(i) < fraction for i in ids), dtype=bool, count=len(ids))


def allocate(
    weights: dict[str, float], available: dict[str, float], total: float, max_repeats: float
) -> dict[str, float]:
    """Target size per group: `total` split by `weights`, no group above `max_repeats`
    times what it has; what a capped group lacks is shared among the others."""
    targets: dict[str, float] = {}
    active = {g for g, w in weights.items() if w > 0 and available.get(g, 0) > 0}
    remaining = float(total)
    while active:
        weight_sum = sum(weights[g] for g in active)
        capped = {g for g in active if weights[g] / weight_sum * remaining > max_repeats * available[g]}
        if not capped:
            targets.update({g: weights[g] / weight_sum * remaining for g in active})
            break
        for group in capped:
            targets[group] = max_repeats * available[group]
            remaining -= targets[group]
        active -= capped
    return {g: targets.get(g, 0.0) for g in weights}


def repeat_counts(sizes: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """Times each document is used so that the used sizes sum to about `target`:
    whole passes over every document, then a partial pass over a seeded random
    subset of whole documents (see `fill`)."""
    total = float(sizes.sum())
    counts = np.zeros(len(sizes), dtype=np.int64)
    if total <= 0 or target <= 0:
        return counts
    full = int(target // total)
    counts += full
    remainder = target - full * total
    if remainder > 0:
        counts[fill(sizes, remainder, rng.permutation(len(sizes)))] += 1
    return counts


def fill(sizes: np.ndarray, target: float, order: np.ndarray) -> np.ndarray:
    """Documents (indices) whose sizes sum close to `target`: the longest prefix of
    `order` that fits, then first-fit over the rest of `order`, then one more document
    if overshooting with it lands closer. Whole documents only, so without the
    first-fit step a source of a few long documents (Wikipedia articles) would miss
    its share by up to half an article."""
    cumulative = np.cumsum(sizes[order])
    k = int(np.searchsorted(cumulative, target, side="right"))  # prefix sums <= target
    chosen = list(order[:k])
    deficit = target - (cumulative[k - 1] if k else 0)
    rest = order[k:]
    if not len(rest):
        return np.array(chosen, dtype=np.int64)
    smallest = sizes[rest].min()
    left = np.ones(len(rest), dtype=bool)
    for position, index in enumerate(rest.tolist()):
        if deficit < smallest:  # nothing else can fit
            break
        if sizes[index] <= deficit:
            chosen.append(index)
            deficit -= sizes[index]
            left[position] = False
    closest = rest[left][np.argmin(sizes[rest[left]])] if left.any() else None
    if closest is not None and sizes[closest] - deficit < deficit:
        chosen.append(closest)
    return np.array(chosen, dtype=np.int64)


@dataclass
class GroupStats:
    documents: int
    available: int
    requested_share: float
    target: float
    achieved: int
    achieved_share: float
    epochs: float
    documents_used: int


def weighted_groups(keys: np.ndarray, weights: dict[str, float] | None) -> np.ndarray:
    """The group each document is sampled in: its key, or OTHER when `weights` does not name
    it (all such documents form one pool; without an OTHER weight they are left out)."""
    if weights is None:
        return keys
    return np.array([k if k in weights else OTHER for k in keys.tolist()], dtype=object)


def weighted_counts(
    keys: np.ndarray,
    sizes: np.ndarray,
    weights: dict[str, float] | None,
    total: float | None,
    max_repeats: float,
    seed: int,
) -> tuple[np.ndarray, dict[str, dict]]:
    """Repeat counts per document for groups `keys` (one per document) mixed by `weights`.

    `weights` None keeps the groups' natural proportions; a weight under the key
    OTHER ("*") covers every group not named; a group with no weight is left out.
    `total` None means the size of everything available. Returns the counts
    and, per weighted group, requested vs achieved size and share and epochs."""
    sizes = np.asarray(sizes, dtype=np.int64)
    keys = weighted_groups(keys, weights)
    if weights is None:
        weights = {name: float(sizes[keys == name].sum()) for name in sorted(set(keys.tolist()))}
    available = {g: float(sizes[keys == g].sum()) for g in weights}
    if total is None:
        total = sum(available.values())
    targets = allocate(weights, available, total, max_repeats)
    weight_sum = sum(weights.values())
    counts = np.zeros(len(sizes), dtype=np.int64)
    stats = {}
    for group in weights:
        members = np.flatnonzero(keys == group)
        rng = np.random.default_rng([seed, stable_int(group)])
        counts[members] = repeat_counts(sizes[members], targets[group], rng)
        stats[group] = GroupStats(
            documents=len(members),
            available=int(available[group]),
            requested_share=weights[group] / weight_sum,
            target=targets[group],
            achieved=int((counts[members] * sizes[members]).sum()),
            achieved_share=0.0,
            epochs=0.0,
            documents_used=int(counts[members].sum()),
        )
    achieved_total = sum(s.achieved for s in stats.values())
    for s in stats.values():
        s.achieved_share = s.achieved / achieved_total if achieved_total else 0.0
        s.epochs = s.achieved / s.available if s.available else 0.0
    return counts, {group: asdict(s) for group, s in stats.items()}
