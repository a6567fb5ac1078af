"""Good English and Chinese articles pass every heuristic filter as `make corpus` configures them."""

import pytest

from tests.helpers import batch, configured_stage, fixture_text, reasons

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
