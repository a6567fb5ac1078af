from stages.gopher_repetition import GopherRepetition
from tests.helpers import batch, fixture_text, reasons


def test_spam_page_removed_for_repetition():
    out = GopherRepetition().process(batch([fixture_text("spam.json")], langs=["en"]))
    stage, reason = reasons(out)[0]
    assert stage == "gopher_repetition"
    assert reason in {"dup_line_frac", "dup_para_frac", "dup_para_char_frac", "dup_line_char_frac"}
    assert out["dup_line_frac"][0].as_py() > 0.3


def test_repeated_ngrams_detected_when_lines_differ():
    article = fixture_text("good_en.json")
    words = article.split()[:200]
    looped = " ".join(words[:20] * 10)  # one 20-word passage ten times in a single paragraph
    out = GopherRepetition().process(batch([article, looped], langs=["en", "en"]))
    assert reasons(out)[0] == (None, None)
    assert reasons(out)[1][1].startswith(("top_", "duplicated_"))
