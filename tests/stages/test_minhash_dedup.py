import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash

from stages.minhash_dedup import MinHashDedup, MinHashParams, permutations, shingle_hashes, signatures
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
    assert reasons(out) == [("minhash_dedup", "near_duplicate"), (None, None), (None, None), (None, None),
                            (None, None), ("minhash_dedup", "near_duplicate"), (None, None)]
    assert out["duplicate_of"].to_pylist()[0] == "doc/1"
    assert out["duplicate_of"].to_pylist()[5] == "doc/4"  # equal priority: the smaller id survives


def test_same_result_whatever_the_partitioning(ray_local, corpus):
    one = run_global(MinHashDedup(), corpus, blocks=1)
    four = run_global(MinHashDedup(), corpus, blocks=4)
    assert one.equals(four)


def test_bad_band_config_is_a_clear_error():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        MinHashDedup(num_perm=64, bands=10, rows=8)
