import numpy as np
import pytest
from datasketch import MinHash

from stages.minhash_dedup import (
    MAX_HASH,
    MERSENNE_PRIME,
    MinHashDedup,
    MinHashParams,
    _mod_mersenne_low32,
    permutations,
    shingle_hash_batch,
    shingle_hashes,
    signatures,
)
from tests.helpers import batch, fixture_text, reasons
from tests.stages.dedup_helpers import run_global


def perturb(text: str, every: int = 40) -> str:
    words = text.split()
    for i in range(0, len(words), every):
        words[i] = "changed"
    return "Home | About | Contact\n" + " ".join(words) + "\nCopyright 2024. All rights reserved."


def test_signatures_equal_datasketch():
    params = MinHashParams(num_perm=64, bands=8, rows=8, seed=3)
    texts = [fixture_text("good_en.json"), fixture_text("spam.json"), "short text"]
    hashes = [shingle_hashes(t, "en", params) for t in texts]
    a, b = permutations(params.num_perm, params.seed)
    ours = signatures(hashes, a, b)
    for hv, sig in zip(hashes, ours):
        reference = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=lambda x: x, scheme="legacy")
        reference.update_batch(hv)
        assert np.array_equal(reference.hashvalues.astype(np.uint32), sig)


def test_mersenne_modulo_without_division_is_exact_including_the_rare_carry():
    p = (1 << 61) - 1
    edge = [p, p + 1, p + 6, 2 * p, 2 * p + 7, 3 * p + 5, (1 << 64) - 1, (1 << 64) - 8, 0, p - 1]
    y = np.array(edge + list(np.random.default_rng(0).integers(0, 2**64 - 1, 2000, dtype=np.uint64)), dtype=np.uint64)
    y = y[: len(y) // 6 * 6].reshape(-1, 6)
    assert np.array_equal(_mod_mersenne_low32(y), (y % MERSENNE_PRIME & MAX_HASH).astype(np.uint32))


def test_batch_shingle_hashes_equal_per_document_ones_short_and_empty_documents_included():
    params = MinHashParams()
    texts = [fixture_text("good_en.json"), "", "two words", fixture_text("good_zh.json")[0], "短文", "same same"]
    langs = ["en", "en", "en", "zh", "zh", "en"]
    hashes, offsets = shingle_hash_batch(texts, langs, params)
    assert offsets.tolist()[:1] == [0] and len(offsets) == len(texts) + 1
    for i, (text, lang) in enumerate(zip(texts, langs)):
        one = shingle_hashes(text, lang, params)
        assert np.array_equal(hashes[offsets[i] : offsets[i + 1]], one)
        assert len(one) == len(set(one.tolist())) >= 1 and one.max() <= MAX_HASH
    assert offsets[2] - offsets[1] == 1 and offsets[3] - offsets[2] == 1  # shorter than a 5-gram: one shingle
    # Case and whitespace do not matter; word order does.
    assert np.array_equal(shingle_hashes("A b c d e", "en", params), shingle_hashes("a  b\nc d E", "en", params))
    assert not np.array_equal(shingle_hashes("a b c d e", "en", params), shingle_hashes("b a c d e", "en", params))


def test_chinese_uses_character_shingles():
    params = MinHashParams()
    text = fixture_text("good_zh.json")[0]
    assert len(shingle_hashes(text, "zh", params)) > 5 * len(shingle_hashes(text, "en", params))


@pytest.fixture(scope="module")
def corpus():
    article = fixture_text("good_en.json")
    half = len(article) // 2
    zh = fixture_text("good_zh.json")
    texts = [article, perturb(article), article[:half], article[half:], zh[0], zh[0] + "\n补充一句话。", zh[1]]
    sources = ["web", "wiki", "web", "web", "zh", "zh", "zh"]
    return batch(texts, sources=sources, langs=["en"] * 4 + ["zh"] * 3)


def test_near_duplicates_found_survivor_by_priority_topic_neighbours_kept(ray_local, corpus):
    out = run_global(MinHashDedup(), corpus, priority={"wiki": 1, "web": 2, "zh": 3})
    # The perturbed copy in `wiki` outranks the original in `web`: the web one goes.
    assert reasons(out) == [
        ("minhash_dedup", "near_duplicate"),
        (None, None),
        (None, None),
        (None, None),
        (None, None),
        ("minhash_dedup", "near_duplicate"),
        (None, None),
    ]
    assert out["duplicate_of"].to_pylist()[0] == "doc/1"
    assert out["duplicate_of"].to_pylist()[5] == "doc/4"  # equal priority: the smaller id survives


def test_same_result_whatever_the_partitioning(ray_local, corpus):
    one = run_global(MinHashDedup(), corpus, blocks=1)
    four = run_global(MinHashDedup(), corpus, blocks=4)
    assert one.equals(four)


def test_bad_band_config_is_a_clear_error():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        MinHashDedup(num_perm=64, bands=10, rows=8)
