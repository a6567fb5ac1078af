import json
import os
import random
import unicodedata

from datatrove.utils.text import simplify_text as datatrove_simplify_text

from stages.text import simplify_text
from tests.helpers import ROOT, fixture_text


def test_simplify_text_equals_datatrove_on_real_text():
    with open(os.path.join(ROOT, "data", "sample", "multilingual", "lingua-0000.jsonl"), encoding="utf-8") as handle:
        texts = [json.loads(line)["content"] for line in handle]  # 30+ languages: diacritics, scripts
    for name in ("good_en.json", "good_zh.json", "german.json", "japanese.json", "spam.json"):
        found = fixture_text(name)
        texts += found if isinstance(found, list) else [found]
    assert len(texts) > 50
    for text in texts:
        assert simplify_text(text) == datatrove_simplify_text(text)


def test_simplify_text_equals_datatrove_on_edge_cases():
    cases = [
        "  Café  Ünïcode ",
        "e\u0301 \u0301 x",
        " \u0301",
        "\u3000a\u2028b\x1cc\x85d\u00a0e",
        "3.14, 1,000 and ١٢٣",
        "İSTANBUL ǅ ß",
        "a\u200bb",
        "“quoted” — dash…",
        "",
        "   ",
        "Ⅻ ½ ²",
    ]
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x2FFFF) if unicodedata.category(chr(c))[0] != "C" or chr(c).isspace()]
    alphabet += [" ", "a", "\u0301", "1", "."] * 200  # enough separators and marks to meet each other
    cases += ["".join(rng.choice(alphabet) for _ in range(16)) for _ in range(5000)]
    for text in cases:
        assert simplify_text(text) == datatrove_simplify_text(text), repr(text)


def test_words_of_lines_are_the_words_of_the_whole_text():
    """Segmenting line by line (what c4_quality needs) gives the whole text's words: jieba on the
    whole text, runs of word characters, one word per character for Japanese."""
    import re

    from stages.text import _jieba, line_words_of, words_of
    from tests.stages.filter_documents import documents

    word = re.compile(r"\w+")
    for text, lang in documents() + [("a\rb\x0bc\x1cd\x85e\u2028f\r\ng", "en"), ("中文\u2029分词\r\n测试", "zh")]:
        if lang == "zh":
            expected = [w for w in _jieba().lcut(text) if word.search(w)]
        elif lang == "ja":
            expected = re.findall(r"[^\W\d_]|\d+", text)
        else:
            expected = word.findall(text)
        assert words_of(text, lang) == expected
        assert len(line_words_of(text, lang)) == len(text.splitlines())


def test_sentence_spans_exclude_surrounding_whitespace():
    from stages.text import _SENTENCE, sentence_spans
    from tests.stages.filter_documents import documents

    def reference(text):  # the definition: each match, whitespace stripped character by character
        spans = []
        for match in _SENTENCE.finditer(text):
            start, end = match.span()
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end > start:
                spans.append((start, end))
        return spans

    for text, _ in documents() + [(" \u3000 One.  Two!\n\n 三。 ", None), ("", None), ("   ", None)]:
        assert sentence_spans(text) == reference(text)


def test_run_keys_equal_exactly_for_equal_runs():
    """Keys of every word and every 5-word run of real documents: equal keys for equal text, and no
    two different texts share a key."""
    import numpy as np

    from stages.text import Analysis
    from tests.stages.filter_documents import documents

    key_of: dict[int, str] = {}
    for text, lang in documents():
        doc = Analysis(text, lang)
        offsets = doc.word_offsets
        runs = [(offsets[:-1], offsets[1:]), (offsets[:-5], offsets[5:])] if len(offsets) > 5 else []
        for starts, ends in runs:
            joined = "".join(doc.words)
            for key, start, end in zip(doc.run_keys(starts, ends).tolist(), starts.tolist(), ends.tolist()):
                assert key_of.setdefault(key, joined[start:end]) == joined[start:end]
        assert doc.word_keys.dtype == np.uint64
    assert len(key_of) > 20_000


def test_analyses_are_shared_between_filters_of_a_batch():
    from stages.text import analyses
    from tests.helpers import batch

    texts = [fixture_text("good_en.json"), *fixture_text("good_zh.json")]
    first = analyses(batch(texts, langs=["en", "zh", "zh"]))
    again = analyses(batch(texts, langs=["en", "zh", "zh"]))
    assert all(a is b for a, b in zip(first, again))
    assert analyses(batch(texts[:1], langs=["de"]))[0] is not first[0]  # another language, another analysis
