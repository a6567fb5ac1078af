from stages.c4_quality import C4Quality
from tests.helpers import batch, fixture_text, reasons

SENTENCES = "The river rises in the hills. It flows to the sea. Farms line its banks. Boats carry grain. Towns grew up beside it."


def test_line_rules_rewrite_text_and_doc_rules_drop():
    page = "\n".join(
        [SENTENCES, "Please enable JavaScript to view this page.", "Menu", "We use cookies to improve it."]
    )
    cases = [
        page,
        SENTENCES + "\nLorem ipsum dolor sit amet, consectetur.",
        SENTENCES + "\nThe default config is {debug: true} for all users.",
        "Only one sentence here.",
    ]
    out = C4Quality().process(batch(cases, langs=["en"] * 4))
    assert reasons(out) == [
        (None, None),
        ("c4_quality", "lorem_ipsum"),
        ("c4_quality", "curly_bracket"),
        ("c4_quality", "too_few_sentences"),
    ]
    assert out["text"][0].as_py() == SENTENCES  # javascript, short and policy lines removed
    assert out["c4_lines_removed"][0].as_py() == 3
    assert out["text"][1].as_py() == cases[1]  # removed documents keep their original text


def test_chinese_sentences_end_with_chinese_punctuation():
    text = fixture_text("good_zh.json")[0]
    out = C4Quality().process(batch([text], langs=["zh"]))
    assert reasons(out) == [(None, None)]


def test_next_filters_get_the_rewritten_texts_words():
    """The kept lines' words are handed on with the new text; a removed citation can join two words."""
    from stages.text import analyses, words_of

    texts = [
        SENTENCES + "\nThe value[1]rose again today by far.\nMenu",
        "第一句话。第二句话。\n菜单\n第三句话。第四句话。第五句话。",
    ]
    out = C4Quality().process(batch(texts, langs=["en", "zh"]))
    assert reasons(out) == [(None, None), (None, None)]
    assert "valuerose" in out["text"][0].as_py()
    for doc in analyses(out):
        assert "line_words" not in vars(doc)  # the analysis c4_quality handed on, not segmented again
        assert doc.words == words_of(doc.text, doc.lang)
