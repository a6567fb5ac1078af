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


# Lines of ../shared/data (Debian Reference, Alpaca/DPO zh) where jieba-rs alone, or jieba-rs on the
# runs of ideographs U+4E00..U+9FD5 with the rest left to jieba, gives other words than jieba: ASCII
# runs that jieba-rs cuts otherwise, unknown stretches that jieba's HMM cuts across an ASCII run. The
# last line (made up) has punctuation with "_" in ASCII runs.
CHINESE_LINES_WITH_ASCII = [
    "9.6.9.\xa0硬盘优化",
    "        12.5.3. 获得栈帧",
    "    ENCDN=iso-8859-1",
    "法官最后「从轻」发落，罚款减到5万元。",
    "测字，是中国一项非常古老的占卜之法..",
    "    的组是非常常见的做法，在这种情况下，出于安全考虑把umask设为0022是",
    "请用1分30秒的视频脚本讨论如何利用错误信息和假新闻作为政治武器。",
    "情况非常艰难，气温高达40摄氏度以上",
    "玛丽亚·居里（Marie Curie，1867-1934）是著名物理学家、化学家",
    "特斯拉 Model 3 是一款纯电动汽车，其NEDC续航里程在",
    "变量名my_var_2为空，a.1_b，x-_-y",
]
# Lines that the segmentation leaves to jieba: dictionary words with ASCII (the first five, from
# ../shared/data), ideographs outside U+4E00..U+9FD5 (extension A, compatibility, plane 2; made up).
JIEBA_ONLY_CHINESE_LINES = [
    "设计一件与不同文化人民团结相关的T恤。",
    "    |                |I:0  |      |         |HTML 的转换器（C语言） |",
    "机器人A: 你好，我是A型机器人，很高兴见到你。",
    "如X光片、CT扫描等，",
    "您可以使用C#编程语言以及Twitter API和一个用于名称实体识别的包。",
    "南汉开国皇帝刘䶮在位三十年",
    "北京豈有此理，𠀀字",
]


def test_chinese_words_are_jiebas_where_jieba_rs_differs():
    """The Chinese segmentation (jieba-rs, with ASCII, dictionary words with ASCII and rare
    ideographs handled as jieba does) gives jieba's words, line by line and for lines as one text."""
    import re

    from stages.text import _jieba, line_words_of

    def jieba_words(lines):
        return [[w for w in _jieba().lcut(line) if re.search(r"\w", w)] for line in lines]

    for lines in (CHINESE_LINES_WITH_ASCII, JIEBA_ONLY_CHINESE_LINES):
        assert [line_words_of(line, "zh")[0] for line in lines] == jieba_words(lines)
        assert line_words_of("\n".join(lines), "zh") == jieba_words(lines)
    lines = CHINESE_LINES_WITH_ASCII + JIEBA_ONLY_CHINESE_LINES
    assert line_words_of("\n".join(lines), "zh") == jieba_words(lines)
    assert line_words_of("第1.1.1节", "zh") == [["第", "1.1", "1", "节"]]  # jieba-rs alone: "1.1.1"


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
