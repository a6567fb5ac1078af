"""`make ablate`'s machinery on a tiny config (tests/pipelines/ablate_tiny.yaml): every variant built
with the corpus pipeline, one tokenizer, a proxy per seed, scored on held-out text no variant holds."""

import json
import math
import os

import pytest

from pipelines.ablate import contamination, heldout_set, load_ablate_config, run, train_proxy
from stages.decontaminate import Decontaminate, read_eval_texts
from tests.helpers import batch


@pytest.mark.slow
def test_ablation_on_a_tiny_config(ray_local, in_repo_root, tmp_path):
    config = load_ablate_config("tests/pipelines/ablate_tiny.yaml", {"out": str(tmp_path / "ablate")})
    result = run(config)
    variants = result["variants"]
    assert list(variants) == list(config.variants)

    for name, variant in variants.items():
        assert variant["documents"] > 0 and variant["train_tokens"] > 0, name
        assert [r["seed"] for r in variant["runs"]] == config.seeds
        for r in variant["runs"]:  # every run trained on as many tokens, and scored on the held-out text
            assert r["tokens"] == result["tokens_per_run"] >= config.tokens
            assert math.isfinite(r["heldout_bpb"]) and r["heldout_bpb"] > 0
            assert 0 <= r["word_order"] <= 1

    # Stages only remove documents: raw keeps the most, full (every stage) the fewest.
    documents = {name: v["documents"] for name, v in variants.items()}
    assert documents["raw"] > documents["+heuristics"] > documents["full"], documents
    assert documents["raw"] > documents["+dedup"] > documents["full"], documents  # the input's exact copies

    # No variant holds held-out text, by the decontaminate stage's index; that index does find it in a document.
    assert all(contamination(config, name) == 0 for name in config.variants)
    heldout = read_eval_texts(config.heldout, "text")
    planted = batch(["Some web page.\n" + heldout[3] + "\nMore text."], langs=["en"])
    assert Decontaminate(files=[config.heldout], mode="flag").score(planted)["contaminated_by"] == [
        "leipzig_en.jsonl#3"
    ]

    # The same seed gives the same model and scores.
    text = heldout_set(config, result["tokenizer"]["dir"], result["tokenizer"]["eos_id"])
    again = train_proxy(config, "+dedup", config.seeds[0], text)
    first = variants["+dedup"]["runs"][0]
    assert (again["heldout_bpb"], again["word_order"]) == (first["heldout_bpb"], first["word_order"])

    with open(os.path.join(config.out, "ablate.json"), encoding="utf-8") as handle:
        assert json.load(handle)["variants"]["full"]["documents"] == documents["full"]
    page = open(os.path.join(config.out, "report.html"), encoding="utf-8").read()
    assert "Did the pipeline help?" in page and all(name in page for name in config.variants)
