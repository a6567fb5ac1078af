from stages.gopher_quality import GopherQuality
from tests.helpers import batch, fixture_text, reasons


def test_named_rules():
    article = fixture_text("good_en.json")
    cases = {
        "Too short to be a document.": "gopher_short_doc",
        " ".join(["#tag #news #sale"] * 40): "gopher_symbol_word_ratio",
        " ".join(["supercalifragilistic"] * 60): "gopher_avg_word_length",
        "\n".join(f"- item {i} with some words here in a list" for i in range(60)): "gopher_bullet_lines_ratio",
        " ".join(["apple banana cherry melon grape lemon"] * 20): "gopher_few_stop_words",
    }
    out = GopherQuality().process(batch([article, *cases], langs=["en"] * (1 + len(cases))))
    assert reasons(out) == [(None, None)] + [("gopher_quality", r) for r in cases.values()]


def test_without_lang_column_defaults_apply():
    out = GopherQuality().process(batch([fixture_text("good_en.json")]))
    assert reasons(out) == [(None, None)]


def test_words_with_letters_equal_datatrove_definition():
    """Words with a letter among those not made only of punctuation, on real documents."""
    from datatrove.utils.text import PUNCTUATION_SET

    from stages.gopher_quality import words_with_letters
    from stages.text import Analysis
    from tests.stages.filter_documents import documents

    assert not any(ch.isalpha() for ch in PUNCTUATION_SET)
    for text, lang in documents() + [("", "en"), ("___ 123 ½ Ⅻ x_1 ... !!", "en"), ("ー・ｱ 々", "ja")]:
        doc = Analysis(text, lang)
        expected = sum(any(ch.isalpha() for ch in w) for w in doc.words if not all(ch in PUNCTUATION_SET for ch in w))
        assert words_with_letters(doc) == expected
