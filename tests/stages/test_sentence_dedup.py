from stages.sentence_dedup import SentenceDedup
from tests.helpers import batch, fixture_text, reasons
from tests.stages.dedup_helpers import run_global

BOILERPLATE = (
    "Subscribe to our newsletter for weekly updates. We respect your privacy and never share data. "
    "Follow us on social media for more stories."
)


def test_shared_span_removed_except_first_occurrence(ray_local):
    article = fixture_text("good_en.json")
    paragraphs = [p for p in article.split("\n") if len(p.split()) > 60][:3]
    texts = [p + "\n" + BOILERPLATE for p in paragraphs] + [BOILERPLATE + " Thanks."]
    out = run_global(SentenceDedup(min_doc_words=20), batch(texts))
    kept_text = out["text"].to_pylist()
    assert BOILERPLATE in kept_text[0]  # the first occurrence (by rank) keeps it
    for i in (1, 2):
        assert "newsletter" not in kept_text[i] and kept_text[i] == paragraphs[i].strip()
        assert out["sentences_removed"][i].as_py() == 3
    assert reasons(out)[3] == ("sentence_dedup", "too_short_after_sentence_dedup")
    assert reasons(out)[:3] == [(None, None)] * 3


def test_chinese_sentences_split_on_chinese_punctuation(ray_local):
    zh = fixture_text("good_zh.json")
    shared = "本文档由志愿者翻译。欢迎提交改进建议。转载请注明出处。"
    out = run_global(SentenceDedup(min_doc_words=10), batch([zh[0] + shared, zh[1] + shared], langs=["zh", "zh"]))
    assert shared in out["text"][0].as_py() and shared not in out["text"][1].as_py()
