import collections
import dataclasses
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pytest
from tokenizers import Tokenizer

from pipelines.shards import ensure_tokenizer, main, plan, read_arrow, run
from tests.tokenizer.corpus_helpers import documents, small_config, write_docs
from tokenizer.models import file_sha256
from tokenizer.sampling import heldout_mask

WEIGHTS = {"wiki": 0.3, "zh": 0.3, "multilingual": 0.4}  # zh upsampled, the others downsampled


@pytest.fixture(scope="module")
def built(ray_local, tmp_path_factory):
    """Tokenizer (trained because missing) + shards of the small corpus, built once."""
    root = str(tmp_path_factory.mktemp("shards"))
    write_docs(os.path.join(root, "docs"))
    config = small_config(root, **{"shards.max_epochs": 8, "shards.weights": WEIGHTS})
    manifest = run(config)
    return config, manifest


def read_split(config, manifest, split):
    tables = [read_arrow(os.path.join(config.shards.dir, f["path"])) for f in manifest["files"] if f["split"] == split]
    return pa.concat_tables(tables)


def test_manifest_and_files(built):
    config, manifest = built
    assert os.path.exists(os.path.join(config.tokenizer.dir, "tokenizer.json"))  # trained on the way
    with open(os.path.join(config.shards.dir, "manifest.json"), encoding="utf-8") as handle:
        assert json.load(handle) == manifest
    assert manifest["tokenizer"]["sha256"] == file_sha256(os.path.join(config.tokenizer.dir, "tokenizer.json"))
    assert manifest["config_sha256"] == config.digest and manifest["dtype"] == "uint16"
    assert len([f for f in manifest["files"] if f["split"] == "train"]) > 1
    for entry in manifest["files"]:
        path = os.path.join(config.shards.dir, entry["path"])
        assert file_sha256(path) == entry["sha256"]
        table = read_arrow(path)
        assert table.schema.field("tokens").type == pa.list_(pa.uint16())
        assert table.num_rows == entry["documents"]
    assert (
        manifest["total_tokens"]
        == manifest["splits"]["train"]["tokens"]
        == sum(s["tokens"] for s in manifest["sources"].values())
    )
    assert not os.path.exists(os.path.join(config.shards.dir, ".work"))


def test_mixture_shares_within_one_percent_and_epochs(built):
    config, manifest = built
    train = read_split(config, manifest, "train")
    lengths = np.array([len(t) for t in train["tokens"].to_pylist()])
    sources = np.array(train["source"].to_pylist())
    uses = collections.Counter(train["id"].to_pylist())
    for source, weight in WEIGHTS.items():
        stats = manifest["sources"][source]
        assert stats["requested_share"] == pytest.approx(weight)
        share = lengths[sources == source].sum() / lengths.sum()
        assert abs(share - weight) < 0.01 and stats["achieved_share"] == pytest.approx(share, abs=1e-6)
        # Every document of the source is used floor(epochs) or floor(epochs) + 1 times.
        ids = [i for i, s in zip(train["id"].to_pylist(), sources) if s == source]
        counts = collections.Counter(ids)
        if stats["epochs"] >= 1:
            assert len(counts) == stats["documents"]
            assert set(counts.values()) <= {int(stats["epochs"]), int(stats["epochs"]) + 1}
            # Counted from the shards: tokens written over the tokens of each document once.
            once = {i: n for i, n, s in zip(train["id"].to_pylist(), lengths, sources) if s == source}
            assert stats["epochs"] == pytest.approx(lengths[sources == source].sum() / sum(once.values()), rel=1e-3)
        else:
            assert len(counts) < stats["documents"] and set(counts.values()) == {1}
        assert sum(counts.values()) == stats["documents_used"]
    assert manifest["sources"]["zh"]["epochs"] > 1 > manifest["sources"]["wiki"]["epochs"]
    assert max(uses.values()) <= config.shards.max_epochs + 1


def test_validation_split_is_disjoint_and_chosen_by_id_hash(built):
    config, manifest = built
    train_ids = set(read_split(config, manifest, "train")["id"].to_pylist())
    val_ids = read_split(config, manifest, "val")["id"].to_pylist()
    assert val_ids and not train_ids & set(val_ids)
    all_ids = documents()["id"]
    expected = {i for i, held in zip(all_ids, heldout_mask(all_ids, config.shards.val_fraction)) if held}
    assert set(val_ids) == expected and len(val_ids) == len(expected)  # each once, none repeated


def test_documents_decode_back_and_end_with_eos(built):
    config, manifest = built
    tokenizer = Tokenizer.from_file(os.path.join(config.tokenizer.dir, "tokenizer.json"))
    texts = dict(zip(documents()["id"], documents()["text"]))
    val = read_split(config, manifest, "val")
    for doc_id, tokens in zip(val["id"].to_pylist(), val["tokens"].to_pylist()):
        assert tokens[-1] == manifest["eos_id"] and manifest["eos_id"] not in tokens[:-1]
        assert tokenizer.decode(tokens[:-1]) == texts[doc_id]


def test_plan_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    n = 300
    meta = pa.table(
        {
            "id": [f"doc{i}" for i in range(n)],
            "source": ["a", "b", "c", "d"] * 75,
            "num_tokens": rng.integers(10, 1000, n),
        }
    )
    weights = {"shards.weights": {"a": 0.2, "b": 0.3, "c": 0.5}}
    first = plan(meta, small_config("/unused", **weights))
    again = plan(meta, small_config("/unused", **weights))
    assert np.array_equal(first.train, again.train) and np.array_equal(first.val, again.val)
    assert not np.array_equal(first.train, plan(meta, small_config("/unused", seed=1, **weights)).train)
    assert first.sources["c"]["achieved_share"] == pytest.approx(0.5, abs=0.01)
    assert first.unweighted == ["d"] and not {"d"} & set(meta["source"].take(first.train).to_pylist())
    pooled = plan(meta, small_config("/unused", **{"shards.weights": {"a": 0.5, "*": 0.5}}))
    assert pooled.unweighted == [] and pooled.sources["*"]["documents"] + pooled.sources["*"]["val_documents"] == 225


def test_tokenizer_is_retrained_only_when_its_settings_or_documents_change(built, tmp_path):
    config, _ = built
    path = ensure_tokenizer(config, retrain=False)
    assert os.path.getmtime(path) < os.path.getmtime(os.path.join(config.shards.dir, "manifest.json"))  # kept
    moved = str(tmp_path / "tokenizer")
    shutil.copytree(config.tokenizer.dir, moved)
    changed = dataclasses.replace(config, tokenizer=dataclasses.replace(config.tokenizer, dir=moved, vocab_size=900))
    assert Tokenizer.from_file(ensure_tokenizer(changed, retrain=False)).get_vocab_size() == 900


def test_shards_can_be_written_with_the_extended_tokenizer(ray_local, tmp_path):
    write_docs(str(tmp_path / "docs"))
    config = small_config(
        str(tmp_path),
        **{
            "shards.weights": WEIGHTS,
            "shards.tokenizer": "extended",
            "tokenizer.extension": {"add": 50, "langs": ["zh"], "script": "Han"},
        },
    )
    manifest = run(config)
    assert manifest["tokenizer"]["path"] == os.path.join(config.tokenizer.dir, "extended", "tokenizer.json")
    base_size = Tokenizer.from_file(os.path.join(config.tokenizer.dir, "tokenizer.json")).get_vocab_size()
    assert manifest["vocab_size"] == base_size + 50
    train = read_split(config, manifest, "train")
    zh = np.concatenate(
        [tokens for tokens, source in zip(train["tokens"].to_pylist(), train["source"].to_pylist()) if source == "zh"]
    )
    assert (zh >= base_size).mean() > 0.01  # the Chinese documents use the new tokens


def test_help_and_config_errors(in_repo_root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--config" in capsys.readouterr().out
    assert main(["--set", "shards.max_epochs=0"]) == 2
    assert "shards.max_epochs" in capsys.readouterr().err


def test_the_docs_of_an_unfinished_corpus_run_are_refused(tmp_path):
    from tokenizer.corpus import list_files

    docs = tmp_path / "out" / "docs"
    docs.mkdir(parents=True)
    (docs / "part-1.parquet").write_bytes(b"")
    (tmp_path / "out" / "stats.json").write_text("{}")  # a corpus output, from a run that did not finish
    with pytest.raises(FileNotFoundError, match="_SUCCESS is missing.*pipelines.corpus --out"):
        list_files(str(docs))
    (tmp_path / "out" / "_SUCCESS").write_text("{}")
    assert list_files(str(docs)) == [str(docs / "part-1.parquet")]
    plain = tmp_path / "mine"  # documents a user made: no corpus output around them
    plain.mkdir()
    (plain / "a.parquet").write_bytes(b"")
    assert list_files(str(plain)) == [str(plain / "a.parquet")]
