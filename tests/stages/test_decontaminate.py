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
    assert reasons(out) == [("decontaminate", "eval_overlap"), (None, None), ("decontaminate", "eval_overlap"),
                            (None, None)]
    assert out["contaminated_by"].to_pylist() == ["eval.jsonl#1", None, "eval.jsonl#2", None]


def test_flag_mode_keeps_documents(eval_file):
    out = Decontaminate(files=[eval_file], mode="flag").process(batch([fixture_text("good_en.json")], langs=["en"]))
    assert reasons(out) == [(None, None)] and out["contaminated_by"][0].as_py() == "eval.jsonl#1"


def test_missing_eval_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval file"):
        Decontaminate(files=[str(tmp_path / "nope.jsonl")])
