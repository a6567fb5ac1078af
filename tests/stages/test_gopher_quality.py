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
