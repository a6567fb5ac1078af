import random

import pytest
from datatrove.pipeline.filters import gopher_repetition_filter
from datatrove.pipeline.filters.gopher_repetition_filter import (
    GopherRepetitionFilter,
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)

from stages.gopher_repetition import GopherRepetition, duplicated_ngram_chars, top_ngram_chars
from stages.text import Analysis, duplicates, words_of
from tests.helpers import batch, fixture_text, reasons
from tests.stages.filter_documents import documents, english_documents, looped


def test_spam_page_removed_for_repetition():
    out = GopherRepetition().process(batch([fixture_text("spam.json")], langs=["en"]))
    stage, reason = reasons(out)[0]
    assert stage == "gopher_repetition"
    assert reason in {"dup_line_frac", "dup_para_frac", "dup_para_char_frac", "dup_line_char_frac"}
    assert out["dup_line_frac"][0].as_py() > 0.3


def test_repeated_ngrams_detected_when_lines_differ():
    article = fixture_text("good_en.json")
    words = article.split()[:200]
    looped_words = " ".join(words[:20] * 10)  # one 20-word passage ten times in a single paragraph
    out = GopherRepetition().process(batch([article, looped_words], langs=["en", "en"]))
    assert reasons(out)[0] == (None, None)
    assert reasons(out)[1][1].startswith(("top_", "duplicated_"))


def assert_counts_equal_datatrove(doc: Analysis) -> None:
    """Every quantity the stage compares with a threshold, against datatrove's counting functions
    on the same lines, paragraphs and words (what the stage called before it counted with arrays)."""
    words = words_of(doc.text, doc.lang)
    assert doc.words == words
    assert duplicates(doc.paragraphs) == find_duplicates(doc.paragraphs)
    assert duplicates(doc.nonempty_lines) == find_duplicates(doc.nonempty_lines)
    for n in (2, 3, 4):
        n_grams = get_n_grams(words, n)
        assert top_ngram_chars(doc, n) == (find_top_duplicate(n_grams) if n_grams else None), n
    for n in range(5, 11):
        assert duplicated_ngram_chars(doc, n) == find_all_duplicate(words, n), n


@pytest.mark.parametrize("variant", ["as is", "looped"])
def test_counts_equal_datatrove_on_real_documents(variant):
    """English, Chinese (jieba words), German and Japanese (one word per character) documents, and
    the same with a passage repeated in the middle (the repeated n-gram counts at work)."""
    for text, lang in documents():
        assert_counts_equal_datatrove(Analysis(text if variant == "as is" else looped(text), lang))


def test_counts_equal_datatrove_on_edge_cases():
    cases = [
        "",
        "one",
        "one two",
        "a b c d e f g h i j",  # fewer words than n, all n-grams distinct
        "ab c d e f a bc d e f",  # equal when joined without spaces, as datatrove's duplicated n-grams are
        " ".join(["spam"] * 40),
        " ".join(["a b"] * 25),
        "x " + " ".join(["a b c"] * 9),  # overlapping repeats
        "long " * 3 + "l o n g " * 3 + "longer words tie with short ones",  # top n-gram ties: the first one
    ]
    rng = random.Random(0)
    for _ in range(300):  # small vocabularies: many repeats, overlaps and ties
        vocabulary = ["a", "b", "ab", "ba", "abc", "c"][: rng.randint(2, 6)]
        cases.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 60))))
    for text in cases:
        assert_counts_equal_datatrove(Analysis(text, "en"))


def test_decisions_equal_datatrove_filter_on_english(monkeypatch):
    """datatrove's GopherRepetitionFilter itself, given our words, removes the same documents for the
    same reasons. Its lines are split on newline runs and keep whitespace-only ones, so the texts
    here have none, nor leading or trailing blank lines (the two definitions then agree)."""
    monkeypatch.setattr(gopher_repetition_filter, "split_into_words", lambda text, language: words_of(text, "en"))
    reference = GopherRepetitionFilter()
    texts = []
    for text in english_documents():
        text = "\n".join(line if line.strip() else "" for line in text.split("\n")).strip()
        texts += [text, looped(text)]
    out = GopherRepetition().process(batch(texts, langs=["en"] * len(texts)))
    ours = [reason for _, reason in reasons(out)]
    theirs = []
    for text in texts:
        kept = reference.filter(gopher_repetition_filter.Document(text=text, id="x"))
        theirs.append(None if kept is True else kept[1])
    assert ours == theirs
    assert sum(r is not None for r in ours) >= len(texts) // 3  # the looped copies exercise the n-gram rules
    assert any(r and r.startswith("duplicated_") for r in ours) and any(r and r.startswith("top_") for r in ours)
