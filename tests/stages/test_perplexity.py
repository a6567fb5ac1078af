import json
import os
import random

import numpy as np
import pytest

from pipelines.perplexity_model import TrainConfig, load_config, train
from pipelines.quality_model import documents, heldout
from stages.perplexity import BOS, DEFAULT_MODEL, METADATA, UNK, Perplexity, line_units, load_models
from tests.helpers import FIXTURES, ROOT, batch, fixture_text, reasons
from tokenizer.models import file_sha256

BOILERPLATE = (
    "Home | About Us | Products | Contact Us | Privacy Policy | Terms of Service\n"
    "Copyright 2019 All Rights Reserved. Powered by WordPress\n"
    "Login | Register | My Account | Cart (0) | Checkout\n"
    "Follow us on Facebook, Twitter, Instagram and Pinterest"
)
KEYWORD_SPAM = (
    "cheap replica watches buy cheap replica watches online best replica watches rolex replica "
    "omega replica cheap watches discount watches free shipping watches sale replica watches"
)


@pytest.fixture(scope="module")
def stage():
    return Perplexity()


@pytest.fixture(scope="module")
def heldout_wiki_paragraph() -> str:
    """The lead paragraph of a Wikipedia article the shipped English model was not trained on."""
    config = load_config(os.path.join(ROOT, "configs", "perplexity_model.yaml"))
    spec = config.languages["en"]["reference"][0]
    texts = [
        text
        for doc_id, text in documents({"paths": [os.path.join(ROOT, p) for p in spec["paths"]]}, "en-reference-0")
        if heldout(doc_id, config.heldout_fraction, config.seed)
    ]
    return texts[0].split("\n")[0]


def perplexities(stage: Perplexity, texts: list[str], lang: str) -> list[float | None]:
    return stage.process(batch(texts, langs=[lang] * len(texts)))["perplexity"].to_pylist()


def test_reference_prose_scores_better_than_boilerplate_and_spam(stage, heldout_wiki_paragraph):
    wiki, boilerplate, spam = perplexities(stage, [heldout_wiki_paragraph, BOILERPLATE, KEYWORD_SPAM], "en")
    assert wiki < boilerplate and wiki < spam
    assert spam > 5 * wiki  # not a near tie


def test_chinese_is_scored_on_characters(stage):
    text = fixture_text("good_zh.json")[0]
    units = [u for line in line_units(text, "zh") for u in line]
    han = [u for u in units if "\u4e00" <= u[0] <= "\u9fff"]
    assert len(han) > 200 and all(len(u) == 1 for u in han)  # one unit per character, not per clause
    assert "shell" in units and "gui" in units  # Latin words inside Chinese text stay words, lower-cased
    characters = list(text)
    random.Random(0).shuffle(characters)
    ordered, shuffled = perplexities(stage, [text, "".join(characters)], "zh")
    assert np.isfinite(ordered) and shuffled > 3 * ordered


def test_buckets_thresholds_and_exemptions(stage, heldout_wiki_paragraph):
    percentiles = stage.percentiles("en")
    docs = [heldout_wiki_paragraph, KEYWORD_SPAM]
    scores = perplexities(stage, docs, "en")
    buckets = [stage.bucket(s, "en") for s in scores]
    assert buckets == ["head", "tail"] and scores[0] <= percentiles[30] < percentiles[60] < scores[1]
    params = {
        "keep": ["head", "middle"],
        "per_source": {
            "wiki": {"exempt": True},
            "capped": {"keep": None, "max_perplexity": (scores[0] + scores[1]) / 2},
            "median": {"keep": None, "max_percentile": 50},
        },
    }
    sources = ["web", "web", "wiki", "wiki", "capped", "capped", "median", "median"]
    out = Perplexity(**params).process(batch(docs * 4, sources=sources, langs=["en"] * 8))
    assert out["perplexity_bucket"].to_pylist() == ["head", "tail"] * 4
    assert out["perplexity"].to_pylist() == pytest.approx(scores * 4, rel=1e-6)
    tail, above = ("perplexity", "perplexity_tail"), ("perplexity", "perplexity_above_max")
    keep = (None, None)
    assert reasons(out) == [keep, tail, keep, keep, keep, above, keep, above]
    assert Perplexity(**params).cut("median", "en")[1] == pytest.approx(percentiles[50])


def test_language_without_a_model_is_kept_unscored(stage):
    out = Perplexity(max_perplexity=1.0).process(
        batch([fixture_text("german.json"), KEYWORD_SPAM, KEYWORD_SPAM], langs=["de", None, "en"])
    )
    assert out["perplexity"].to_pylist()[:2] == [None, None]
    assert out["perplexity_bucket"].to_pylist()[:2] == [None, None]
    assert reasons(out) == [(None, None), (None, None), ("perplexity", "perplexity_above_max")]
    # Chinese has a model but no web sample in the shipped one: scored, no bucket, kept by `keep`.
    zh = Perplexity(keep=["head"]).process(batch([fixture_text("good_zh.json")[0]], langs=["zh"]))
    assert zh["perplexity"][0].as_py() > 0 and zh["perplexity_bucket"][0].as_py() is None
    assert reasons(zh) == [(None, None)]


def test_training_is_deterministic_and_records_its_inputs(tmp_path):
    quality = os.path.join(FIXTURES, "quality")
    config = TrainConfig(
        languages={
            "en": {
                "reference": [{"paths": [os.path.join(quality, "wiki.jsonl")]}],
                "web": [{"paths": [os.path.join(quality, "web.jsonl")]}],
            }
        },
        order=3,
        min_ngram_count={3: 2},
    )
    runs = []
    for name in ("a", "b"):
        config.output = str(tmp_path / name)
        runs.append(train(config))
    first, second = (run["languages"]["en"] for run in runs)
    assert first["sha256"] == second["sha256"] == file_sha256(str(tmp_path / "a" / "en.npz"))
    assert first["sources"]["reference"][0]["sha256"] == file_sha256(os.path.join(quality, "wiki.jsonl"))
    assert len(first["web_percentiles"]) == 101 and first["heldout"]["auc"] > 0.5
    _, models = load_models(str(tmp_path / "b"))
    assert models["en"].order == 3


def test_unpruned_model_is_a_probability_distribution(tmp_path):
    """Modified Kneser-Ney in backoff form: p(w | history) summed over the vocabulary is 1 for a
    seen, a partly seen and an unseen history (up to the float16 storage)."""
    reference = os.path.join(FIXTURES, "quality", "wiki.jsonl")
    train(TrainConfig(languages={"en": {"reference": [{"paths": [reference]}]}}, order=3, output=str(tmp_path)))
    model = load_models(str(tmp_path))[1]["en"]
    words = np.array([i for i in range(len(model.vocab)) if i != BOS])
    for history in (["of", "the"], ["zzzq", "the"], ["zzzq", "qqqz"]):
        ids = [model.vocab.get(w, UNK) for w in history]
        streams = np.column_stack([np.full(len(words), BOS), *(np.full(len(words), i) for i in ids), words])
        logp = model.log10_probs(streams.ravel()).reshape(streams.shape)[:, -1]
        unk = words == UNK  # <unk>'s probability is its class's: undo the per-word share
        total = np.sum(10.0 ** logp[~unk]) + 10.0 ** (logp[unk] + model.unk_log10_types).sum()
        assert total == pytest.approx(1.0, abs=2e-3), history


def test_shipped_models_match_their_metadata():
    """models/perplexity: small, and trained from the sample files as they are now."""
    with open(os.path.join(DEFAULT_MODEL, METADATA), encoding="utf-8") as handle:
        metadata = json.load(handle)
    assert set(metadata["languages"]) == {"en", "zh"}
    for entry in metadata["languages"].values():
        path = os.path.join(DEFAULT_MODEL, entry["file"])
        assert os.path.getsize(path) < 2 * 2**20 and file_sha256(path) == entry["sha256"]
        for file in (f for files in entry["sources"].values() for f in files):
            assert file_sha256(os.path.join(ROOT, file["path"])) == file["sha256"], f"retrain: {file['path']} changed"
    assert metadata["languages"]["en"]["heldout"]["auc"] > 0.75


def test_bad_parameters_fail_early():
    with pytest.raises(ValueError, match="keep"):
        Perplexity(keep=["best"])
    with pytest.raises(ValueError, match="max_percentile"):
        Perplexity(per_source={"web": {"max_percentile": 150}})
    with pytest.raises(ValueError, match="valid keys"):
        Perplexity(max_perplexty=10)
