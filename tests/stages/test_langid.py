import pytest

from stages.langid import LanguageId, normalise_lang
from tests.helpers import batch, fixture_text, reasons


@pytest.fixture(scope="module")
def texts():
    return {
        "en": fixture_text("good_en.json"),
        "zh": fixture_text("good_zh.json")[0],
        "de": fixture_text("german.json"),
        "ja": fixture_text("japanese.json"),
    }


def test_labels_and_config_aliases_normalise_to_iso_639_1():
    assert normalise_lang("nb") == "no"
    assert normalise_lang("zh-CN") == normalise_lang("zh_tw") == normalise_lang("yue") == normalise_lang("wuu") == "zh"
    assert normalise_lang("EN") == "en" and normalise_lang("eng") == "en"


def test_detects_and_filters_by_allowed_languages(texts):
    stage = LanguageId(languages=["en", "zh-cn"])
    out = stage.process(batch([texts["en"], texts["zh"], texts["de"], texts["ja"]]))
    assert out["lang"].to_pylist() == ["en", "zh", "de", "ja"]
    assert all(score > 0.8 for score in out["lang_score"].to_pylist())
    assert reasons(out) == [
        (None, None), (None, None), ("langid", "language_not_allowed:de"), ("langid", "language_not_allowed:ja"),
    ]


def test_per_source_rules_and_threshold(texts):
    stage = LanguageId(languages=["en"], per_source={"multi": {"languages": ["de", "en"]}, "strict": {"threshold": 1.01}})
    out = stage.process(batch([texts["de"], texts["de"], texts["en"]], sources=["multi", "web", "strict"]))
    assert reasons(out) == [(None, None), ("langid", "language_not_allowed:de"), ("langid", "low_language_score")]


def test_any_language_allowed_when_no_list(texts):
    out = LanguageId().process(batch([texts["ja"]]))
    assert reasons(out) == [(None, None)]
