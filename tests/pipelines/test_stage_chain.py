"""Fault isolation in the row stages: a document a stage fails on is quarantined, the rest go on."""

import json

import pyarrow as pa

from pipelines.corpus import StageChain, slices
from stages.base import QUARANTINE_STAGE, Filter
from tests.helpers import batch


class FailsOn(Filter):
    """Scores text length; raises on any document containing `poison`."""

    name = "fails_on"
    writes = {"length": pa.int32()}

    def __init__(self, poison="POISON"):
        self.poison = poison

    def score(self, batch):
        texts = batch["text"].to_pylist()
        for text in texts:
            if self.poison in text:
                raise ValueError(f"cannot score {text[:20]!r}")
        return {"length": [len(t) for t in texts]}

    def decide(self, batch, signals):
        return ["too_short" if n < 5 else None for n in signals["length"]]


def chain(*stages, batch_rows=256, batch_bytes=2**20):
    chain = StageChain([], batch_rows, batch_bytes)
    chain.stages = list(stages)
    return chain


def test_a_failing_document_is_quarantined_and_its_batch_goes_on():
    docs = batch(["a good document", "POISON here", "tiny", "another good one"])
    out = chain(FailsOn())(docs)
    assert out["id"].to_pylist() == docs["id"].to_pylist()  # order and every row kept
    assert list(zip(out["drop_stage"].to_pylist(), out["drop_reason"].to_pylist())) == [
        (None, None),
        (QUARANTINE_STAGE, "stage_error:fails_on"),
        ("fails_on", "too_short"),
        (None, None),
    ]
    error = json.loads(out["metadata"][1].as_py())["error"]
    assert error.startswith("ValueError: cannot score 'POISON here'") and "test_stage_chain.py" in error
    assert out["length"].to_pylist() == [15, None, 4, 16]


def test_later_stages_skip_the_quarantined_document_and_see_the_others():
    second = FailsOn(poison="never")
    second.name = "second"
    out = chain(FailsOn(), second)(batch(["good document one", "POISON"]))
    assert out["drop_reason"].to_pylist() == [None, "stage_error:fails_on"]


def test_a_batch_where_every_document_fails_keeps_the_stage_columns():
    out = chain(FailsOn())(batch(["POISON 1", "POISON 2"]))
    assert out.schema.field("length").type == pa.int32()
    assert out["drop_reason"].to_pylist() == ["stage_error:fails_on"] * 2


def test_blocks_are_cut_by_rows_and_by_bytes():
    docs = batch(["x" * 10] * 7)
    assert [s.num_rows for s in slices(docs, 3, 10**6)] == [3, 3, 1]
    assert [s.num_rows for s in slices(docs, 100, 25)] == [2, 2, 2, 1]
    assert [s.num_rows for s in slices(docs, 100, 5)] == [1] * 7  # a document larger than the bound goes alone
