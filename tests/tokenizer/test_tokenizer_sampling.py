import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT
from tokenizer.config import load_config, parse_config
from tokenizer.sampling import allocate, heldout_mask, repeat_counts, split_value, weighted_counts


def test_allocate_redistributes_what_a_capped_group_lacks():
    targets = allocate(
        {"big": 0.5, "mid": 0.3, "tiny": 0.2}, {"big": 1000, "mid": 1000, "tiny": 10}, total=1000, max_repeats=4
    )
    assert targets["tiny"] == 40  # capped at 4 epochs
    assert targets["big"] / targets["mid"] == pytest.approx(0.5 / 0.3)  # the rest keeps its ratio
    assert sum(targets.values()) == pytest.approx(1000)


def test_upsampling_repeats_whole_epochs():
    sizes = np.array([10, 20, 30, 40])
    counts = repeat_counts(sizes, target=300, rng=np.random.default_rng(0))
    assert counts.tolist() == [3, 3, 3, 3]
    counts = repeat_counts(sizes, target=240, rng=np.random.default_rng(0))  # 2 epochs + 40
    assert set(counts.tolist()) <= {2, 3} and (counts * sizes).sum() == 240


def test_shares_within_one_percent_and_epochs_as_computed():
    rng = np.random.default_rng(1)
    keys = np.array(["web"] * 2000 + ["wiki"] * 30 + ["code"] * 100, dtype=object)
    sizes = np.concatenate([rng.integers(100, 3000, 2000), rng.integers(2000, 30000, 30), rng.integers(50, 500, 100)])
    weights = {"web": 0.6, "wiki": 0.3, "code": 0.1}
    counts, stats = weighted_counts(keys, sizes, weights, total=None, max_repeats=100, seed=0)
    total = (counts * sizes).sum()
    for source, weight in weights.items():
        assert abs(stats[source]["achieved_share"] - weight) < 0.01
        available = sizes[keys == source].sum()
        assert stats[source]["epochs"] == pytest.approx(weight * total / available, rel=0.01)
        members = counts[keys == source]
        epochs = stats[source]["epochs"]
        assert members.min() >= int(epochs) and members.max() <= int(epochs) + 1  # whole epochs + a partial one
    assert stats["code"]["epochs"] > 1 > stats["web"]["epochs"]  # small source upsampled, large downsampled


def test_max_epochs_cap_is_respected_and_reported():
    keys = np.array(["big"] * 100 + ["small"] * 10, dtype=object)
    sizes = np.full(110, 100)
    counts, stats = weighted_counts(keys, sizes, {"big": 0.5, "small": 0.5}, total=None, max_repeats=3, seed=0)
    assert stats["small"]["epochs"] == 3 and counts[keys == "small"].tolist() == [3] * 10
    assert stats["small"]["achieved_share"] < stats["small"]["requested_share"]
    assert stats["big"]["achieved"] == 11000 - 3000  # the big source fills the total


def test_sampling_is_deterministic_for_a_seed():
    keys = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    sizes = np.arange(1, 101)
    first = weighted_counts(keys, sizes, {"a": 0.3, "b": 0.7}, 2000, 4, seed=7)[0]
    assert (first == weighted_counts(keys, sizes, {"a": 0.3, "b": 0.7}, 2000, 4, seed=7)[0]).all()
    assert not (first == weighted_counts(keys, sizes, {"a": 0.3, "b": 0.7}, 2000, 4, seed=8)[0]).all()


def test_heldout_split_is_stable_and_sized():
    ids = [f"web/file.jsonl#{i}" for i in range(20000)]
    mask = heldout_mask(ids, 0.05)
    assert 0.04 < mask.mean() < 0.06
    # The same in every process (Python's hash() of a str is not: it is salted per process).
    script = "from tokenizer.sampling import split_value; print(repr(split_value('web/file.jsonl#7')))"
    others = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout.strip()
        for seed in (1, 2)
    }
    assert others == {repr(split_value("web/file.jsonl#7"))}
    assert (heldout_mask(ids[:100], 0.05) == mask[:100]).all()  # independent of the other documents
    assert (heldout_mask(ids, 0.01) <= mask).all()  # smaller fractions nest: val is inside held-out


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="shards.weigths: unknown key"):
        parse_config({"shards": {"weigths": {"a": 1}}})
    with pytest.raises(ValueError, match="val_fraction must not exceed"):
        parse_config({"shards": {"val_fraction": 0.2}, "tokenizer": {"heldout_fraction": 0.1}})
    with pytest.raises(ValueError, match="tokenizer.model"):
        parse_config({"tokenizer": {"model": "sentencepiece"}})
    with pytest.raises(ValueError, match="only a bpe tokenizer can be extended"):
        parse_config({"tokenizer": {"model": "unigram", "extension": {"add": 10}}})


def test_shipped_config_loads_with_overrides():
    config = load_config(os.path.join(ROOT, "configs", "shards.yaml"), {"shards.max_epochs": 2})
    assert config.shards.max_epochs == 2 and config.tokenizer.vocab_size == 8192
