import os

import pytest

from stages.langid import GROUP_OF, LanguageId, admitted, normalise_lang, sampled_lines
from tests.helpers import FIXTURES, batch, fixture_text, reasons


def paragraph(lang: str) -> str:
    """Five sentences of the lingua test set joined into one paragraph (tests/fixtures/langid/README.md)."""
    with open(os.path.join(FIXTURES, "langid", f"{lang}.txt"), encoding="utf-8") as handle:
        return handle.read().strip()


@pytest.fixture(scope="module")
def texts():
    english = fixture_text("good_en.json")
    chinese = fixture_text("good_zh.json")[0]
    english_paragraphs = [p for p in english.split("\n") if len(p) > 200][:3]
    chinese_lines = [line for line in chinese.split("\n") if line.strip()][:15]
    return {
        "en": english,
        "zh": chinese,
        "de": fixture_text("german.json"),
        "ja": fixture_text("japanese.json"),
        "zu": paragraph("zu"),
        "bs": paragraph("bs"),
        "nn": paragraph("nn"),
        "en+zh": "\n".join(english_paragraphs + chinese_lines),
    }


@pytest.fixture(scope="module")
def ensemble():
    stage = LanguageId(model="ensemble")
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def lid176():
    stage = LanguageId(model="lid176")
    stage.setup()
    return stage


def test_labels_and_config_aliases_normalise_to_iso_639_1():
    assert normalise_lang("zh-CN") == normalise_lang("zh_tw") == normalise_lang("yue") == normalise_lang("wuu") == "zh"
    assert normalise_lang("EN") == "en" and normalise_lang("eng") == "en"
    assert normalise_lang("nb") == "nb" and normalise_lang("nob") == "nb"
    assert admitted(["no"]) == ["nb", "nn", "no"] and admitted(["nb", "zh-cn"]) == ["nb", "zh"]


def test_ensemble_labels_languages_lid176_gets_wrong(texts, ensemble, lid176):
    docs = batch([texts["zu"], texts["bs"]])
    # lid.176 has no Zulu (it calls the paragraph English) and calls Bosnian Serbian
    assert lid176.process(docs)["lang"].to_pylist() == ["en", "sr"]
    out = ensemble.process(docs)
    assert out["lang"].to_pylist() == ["zu", "bs"]
    assert all(score > 0.9 for score in out["lang_score"].to_pylist())


def test_ensemble_leaves_confident_languages_as_lid176_labels_them(texts, ensemble, lid176):
    docs = batch([texts["en"], texts["zh"], texts["de"], texts["ja"]])
    consulted_before = ensemble.consulted
    assert (
        ensemble.process(docs)["lang"].to_pylist()
        == lid176.process(docs)["lang"].to_pylist()
        == ["en", "zh", "de", "ja"]
    )
    assert ensemble.consulted == consulted_before  # lid.176 is sure of all four: lingua was not asked


def test_long_text_goes_to_low_accuracy_lingua_with_the_same_answers(texts, ensemble):
    """lingua scores text of 120 letters or more on trigrams in either mode, so the cheap-to-load
    low-accuracy detectors answer it; a short sentence still gets the high-accuracy ones."""
    lingua = ensemble.lingua
    for lang in ("zu", "bs", "nn"):
        text = texts[lang]
        assert lingua._detectors(text) is lingua.long_text
        high_accuracy, high_groups = lingua.short_text
        assert lingua.predict(text) == pytest.approx(lingua._confidences(high_accuracy, text[:1000]))
        if lang in GROUP_OF:
            group = GROUP_OF[lang]
            assert lingua.predict_in_group(text, group) == pytest.approx(
                lingua._confidences(high_groups[group], text[:1000])
            )
    short = texts["bs"].split(".")[0]
    assert len(short) < 120 and lingua._detectors(short) is lingua.short_text is not lingua.long_text


def test_nynorsk_is_told_from_bokmal_and_no_admits_both(texts):
    stage = LanguageId(languages=["no"])
    out = stage.process(batch([texts["nn"], texts["en"]]))
    assert out["lang"].to_pylist() == ["nn", "en"]
    assert reasons(out) == [(None, None), ("langid", "language_not_allowed:en")]
    only_bokmal = LanguageId(languages=["nb"]).process(batch([texts["nn"]]))
    assert reasons(only_bokmal) == [("langid", "language_not_allowed:nn")]


def test_mixed_document_gets_its_majority_language_and_share(texts):
    stage = LanguageId(languages=["en"], per_source={"strict": {"min_lang_mix": 0.9}})
    out = stage.process(batch([texts["en+zh"], texts["en+zh"], texts["en"]], sources=["web", "strict", "strict"]))
    assert out["lang"].to_pylist() == ["en", "en", "en"]
    mix = out["lang_mix"].to_pylist()
    assert 0.6 < mix[0] == mix[1] < 0.9 and mix[2] > 0.95
    assert reasons(out) == [(None, None), ("langid", "mixed_language"), (None, None)]


def test_long_documents_are_sampled_over_their_whole_length():
    lines = [f"english line number {i} of a long page" for i in range(500)] + ["第二部分的中文内容在这里"] * 500
    sample = sampled_lines("\n".join(lines), max_chars=4000)
    assert sum(len(line) for line in sample) <= 4000
    assert any("english" in line for line in sample) and any("中文" in line for line in sample)


def test_detects_and_filters_by_allowed_languages(texts):
    stage = LanguageId(languages=["en", "zh-cn"])
    out = stage.process(batch([texts["en"], texts["zh"], texts["de"], texts["ja"]]))
    assert out["lang"].to_pylist() == ["en", "zh", "de", "ja"]
    assert all(score > 0.8 for score in out["lang_score"].to_pylist())
    assert reasons(out) == [
        (None, None),
        (None, None),
        ("langid", "language_not_allowed:de"),
        ("langid", "language_not_allowed:ja"),
    ]


def test_per_source_rules_and_threshold(texts):
    stage = LanguageId(
        languages=["en"], per_source={"multi": {"languages": ["de", "en"]}, "strict": {"threshold": 1.01}}
    )
    out = stage.process(batch([texts["de"], texts["de"], texts["en"]], sources=["multi", "web", "strict"]))
    assert reasons(out) == [(None, None), ("langid", "language_not_allowed:de"), ("langid", "low_language_score")]


@pytest.mark.parametrize("model", ["lid176", "lingua", "ensemble"])
def test_every_model_labels_plain_languages(texts, model):
    out = LanguageId(model=model).process(batch([texts["en"], texts["zh"], texts["zu"]]))
    expected = ["en", "zh", "en"] if model == "lid176" else ["en", "zh", "zu"]
    assert out["lang"].to_pylist() == expected


def test_any_language_allowed_when_no_list(texts):
    out = LanguageId().process(batch([texts["ja"]]))
    assert reasons(out) == [(None, None)]
