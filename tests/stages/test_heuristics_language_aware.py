"""Good English and Chinese articles pass every heuristic filter as `make corpus` configures them, and
the filters give real documents the outputs they gave before they counted with arrays."""

import hashlib
import json
import os

import pytest

from tests.helpers import ROOT, batch, configured_stage, fixture_text, reasons

HEURISTICS = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "keywords"]


@pytest.mark.parametrize("name", HEURISTICS)
def test_good_english_article_kept(name):
    out = configured_stage(name).process(batch([fixture_text("good_en.json")], langs=["en"]))
    assert reasons(out) == [(None, None)]


@pytest.mark.parametrize("name", HEURISTICS)
def test_good_chinese_articles_kept(name):
    texts = fixture_text("good_zh.json")
    out = configured_stage(name).process(batch(texts, langs=["zh"] * len(texts)))
    assert reasons(out) == [(None, None)] * len(texts)


def test_chinese_is_measured_in_words_not_clauses():
    text = fixture_text("good_zh.json")[0]
    out = configured_stage("gopher_quality").process(batch([text], langs=["zh"]))
    words = out["gopher_words"][0].as_py()
    # jieba words: far more than whitespace-separated "words", fewer than characters.
    assert len(text.split()) * 3 < words < len(text)
    assert 1.0 <= out["gopher_avg_word_length"][0].as_py() <= 3.0


def test_english_thresholds_would_remove_chinese():
    """Why per-language thresholds exist: English word-length bounds reject Chinese."""
    from stages.gopher_quality import GopherQuality

    text = fixture_text("good_zh.json")[0]
    out = GopherQuality().process(batch([text], langs=["zh"]))
    assert reasons(out) == [("gopher_quality", "gopher_avg_word_length")]


# ---------------------------------------------------------------- the same outputs as before the array rewrite
# tests/fixtures/filters/heuristics_outputs.json holds what the four heuristic filters, as configs/corpus.yaml
# configures them, gave each real document (and its looped variant) before they were rewritten to share one
# segmentation and count with arrays (written by the code of commit 26b9207 with
# `python -m tests.stages.test_heuristics_language_aware PATH`).
CHAIN = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"]
OUTPUTS = os.path.join(ROOT, "tests", "fixtures", "filters", "heuristics_outputs.json")


def chain_outputs() -> list[dict]:
    """Each document's drop stage and reason, signals and final text (digest) after the chain."""
    from tests.stages.filter_documents import documents, looped

    texts, langs = [], []
    for text, lang in documents():
        texts += [text, looped(text)]
        langs += [lang, lang]
    out = batch(texts, langs=langs)
    for name in CHAIN:
        out = configured_stage(name).process(out)
    rows = out.drop_columns(["id", "source", "url", "metadata", "text"]).to_pylist()
    for row, text in zip(rows, out["text"].to_pylist()):
        row["text_sha1"] = hashlib.sha1(text.encode()).hexdigest()
    return rows


def test_outputs_equal_those_before_the_array_rewrite():
    with open(OUTPUTS, encoding="utf-8") as handle:
        before = json.load(handle)
    after = chain_outputs()
    assert len(after) == len(before)
    for index, (old, new) in enumerate(zip(before, after)):
        assert new.keys() == old.keys()
        for column, value in old.items():
            if isinstance(value, float):
                assert new[column] == pytest.approx(value, rel=1e-6), (index, column)
            else:
                assert new[column] == value, (index, column)
    assert {row["lang"] for row in before if row["drop_stage"] is None} >= {"en", "zh"}


if __name__ == "__main__":
    import sys

    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(chain_outputs(), handle, ensure_ascii=False, indent=0)
