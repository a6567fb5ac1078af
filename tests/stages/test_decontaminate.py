import json

import pytest

from stages.decontaminate import Decontaminate
from tests.helpers import batch, fixture_text, reasons


@pytest.fixture
def eval_file(tmp_path):
    article = fixture_text("good_en.json")
    zh = fixture_text("good_zh.json")[1]
    path = tmp_path / "eval.jsonl"
    passage = " ".join(article.split()[100:130])
    lines = [{"text": "An unrelated question about the capital of France?"}, {"text": passage}, {"text": zh[200:260]}]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8")
    return str(path)


def test_document_containing_eval_passage_removed(eval_file):
    article = fixture_text("good_en.json")
    zh = fixture_text("good_zh.json")
    stage = Decontaminate(files=[eval_file])
    out = stage.process(batch([article, fixture_text("spam.json"), zh[1], zh[0]], langs=["en", "en", "zh", "zh"]))
    assert reasons(out) == [
        ("decontaminate", "eval_overlap"),
        (None, None),
        ("decontaminate", "eval_overlap"),
        (None, None),
    ]
    assert out["contaminated_by"].to_pylist() == ["eval.jsonl#1", None, "eval.jsonl#2", None]


def test_flag_mode_keeps_documents(eval_file):
    out = Decontaminate(files=[eval_file], mode="flag").process(batch([fixture_text("good_en.json")], langs=["en"]))
    assert reasons(out) == [(None, None)] and out["contaminated_by"][0].as_py() == "eval.jsonl#1"


def test_missing_eval_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval file"):
        Decontaminate(files=[str(tmp_path / "nope.jsonl")])


def test_korean_is_matched_by_words_as_its_documents_are(tmp_path):
    """Korean spaces its words: its eval items and documents are both cut into word n-grams (the
    eval set has no `lang`, the documents do), so a copied Korean passage is found."""
    passage = (
        "대한민국의 수도는 서울특별시이며 가장 큰 도시이기도 하다 서울은 한강을 끼고 있으며 "
        "조선 시대부터 나라의 중심지였다 오늘날 서울에는 천만 명에 가까운 사람이 살고 있다"
    )
    path = tmp_path / "ko.jsonl"
    path.write_text(json.dumps({"text": passage}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = Decontaminate(files=[str(path)], ngram=8).process(
        batch([f"머리말입니다. {passage} 맺음말입니다.", "관련 없는 한국어 문서입니다."], langs=["ko", "ko"])
    )
    assert out["contaminated_by"].to_pylist() == ["ko.jsonl#0", None]


def test_items_shorter_than_one_ngram_are_reported(tmp_path, capsys):
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["too short to index", " ".join(["word"] * 20)]) + "\n")
    Decontaminate(files=[str(path)])
    assert "1 of 2 items" in capsys.readouterr().err
