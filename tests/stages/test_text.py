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
    cases = ["  Café  Ünïcode ", "e\u0301 \u0301 x", " \u0301", "\u3000a\u2028b\x1cc\x85d\u00a0e", "3.14, 1,000 and ١٢٣",
             "İSTANBUL ǅ ß", "a\u200bb", "“quoted” — dash…", "", "   ", "Ⅻ ½ ²"]
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x2FFFF) if unicodedata.category(chr(c))[0] != "C" or chr(c).isspace()]
    alphabet += [" ", "a", "\u0301", "1", "."] * 200  # enough separators and marks to meet each other
    cases += ["".join(rng.choice(alphabet) for _ in range(16)) for _ in range(5000)]
    for text in cases:
        assert simplify_text(text) == datatrove_simplify_text(text), repr(text)
