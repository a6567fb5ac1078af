from stages.keywords import Keywords
from tests.helpers import batch, reasons


def test_whole_words_for_english_substrings_for_chinese():
    stage = Keywords(words={"en": ["casino", "cheap watches"], "zh": ["博彩"]}, max_matches=0)
    texts = [
        "Best online Casino bonus!",
        "The casinos closed.",
        "A specialist in CHEAP watches.",
        "这是博彩网站。",
        "这是一篇文章。",
    ]
    out = stage.process(batch(texts, langs=["en", "en", "en", "zh", "zh"]))
    assert out["keyword_matches"].to_pylist() == [1, 0, 1, 1, 0]
    assert [r for _, r in reasons(out)] == ["keyword_match", None, "keyword_match", "keyword_match", None]


def test_max_matches_and_common_list(tmp_path):
    path = tmp_path / "en.txt"
    path.write_text("# comment line\nviagra\n", encoding="utf-8")
    stage = Keywords(words={"*": ["spamword"]}, files={"en": str(path)}, max_matches=1)
    out = stage.process(batch(["viagra viagra", "viagra once", "spamword spamword"], langs=["en", "en", "de"]))
    assert [r for _, r in reasons(out)] == ["keyword_match", None, "keyword_match"]


def test_an_empty_list_matches_nothing(tmp_path):
    empty = tmp_path / "zh.txt"
    empty.write_text("# no words yet\n\n", encoding="utf-8")
    stage = Keywords(words={"en": []}, files={"zh": str(empty)})
    out = stage.process(batch(["An ordinary page.", "这是一篇文章。", "Ein Text."], langs=["en", "zh", "de"]))
    assert out["keyword_matches"].to_pylist() == [0, 0, 0]
    assert [r for _, r in reasons(out)] == [None, None, None]
