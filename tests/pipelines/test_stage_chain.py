"""The row stages' chain: fault isolation (a document a stage fails on is quarantined, the rest go
on), and the time each stage takes, carried with the rows into stats.json's `stage_timing`."""

import json
import shutil
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from pipelines.config import load_config
from pipelines.corpus import StageChain, ingest_files, list_inputs, slices
from pipelines.output import TIMING, write_final
from pipelines.stats import collect_stats
from pipelines.workdir import WorkDir
from stages.base import QUARANTINE_STAGE, Filter
from tests.helpers import FIXTURES, batch


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


def in_files(docs, *files):
    """`docs` with ids `web/<file>#<index>`: the rows split evenly among `files`, in order."""
    per_file = docs.num_rows // len(files)
    ids = [f"web/{files[row // per_file]}#{row % per_file}" for row in range(docs.num_rows)]
    return docs.set_column(0, "id", pa.array(ids))


def carried(table):
    """(row, entries) of the rows that carry timing figures."""
    return [(row, entries) for row, entries in enumerate(table[TIMING].to_pylist()) if entries]


def test_each_stage_is_timed_per_batch_with_the_documents_it_got_counted_exactly():
    texts = ["already dropped", "a good document", "POISON here", "tiny", "another good one", "ok ok ok"]
    docs = in_files(batch(texts, dropped={0: ("langid", "low_language_score")}), "a.jsonl")
    second = FailsOn(poison="never")
    second.name = "second"
    out = chain(FailsOn(), second, batch_rows=4)(docs)
    assert [row for row, _ in carried(out)] == [0, 4]  # the first row of each batch of 4
    figures = {(row, e["stage"]): (e["documents"], e["bytes"]) for row, entries in carried(out) for e in entries}
    assert figures == {
        # fails_on gets every document still alive; second the ones fails_on kept (not "tiny", not the poisoned)
        (0, "fails_on"): (3, len("a good document") + len("POISON here") + len("tiny")),
        (0, "second"): (1, len("a good document")),
        (4, "fails_on"): (2, len("another good one") + len("ok ok ok")),
        (4, "second"): (2, len("another good one") + len("ok ok ok")),
    }
    for _, entries in carried(out):
        assert [e["stage"] for e in entries] == ["fails_on", "second"]
        assert all(e["cpu_ns"] >= 0 and e["wall_ns"] > 0 for e in entries)


def test_a_batch_of_two_input_files_shares_each_stages_time_by_their_documents():
    docs = in_files(batch(["one document", "two documents", "three documents", "four documents"]), "a", "b")
    docs = docs.set_column(5, "drop_stage", pa.array([None, None, None, "langid"]))  # b: one alive
    (a_row, (a,)), (b_row, (b,)) = carried(chain(FailsOn())(docs))
    assert (a_row, a["documents"], b_row, b["documents"]) == (0, 2, 2, 1)
    for clock in ("cpu_ns", "wall_ns"):
        total = a[clock] + b[clock]
        assert b[clock] == total // 3 and a[clock] == total - b[clock]  # 2 : 1, whole nanoseconds


def test_a_later_phase_adds_its_figures_to_those_its_rows_carry():
    docs = in_files(batch(["a good document", "another good one", "a third good one", "and a fourth"]), "a.jsonl")
    first = chain(FailsOn(), batch_rows=3)(docs)  # phase 0: rows 0 and 3 carry its figures
    later = FailsOn(poison="never")
    later.name = "later"
    out = chain(later, batch_rows=2)(first)  # a phase after a global stage, in other batches
    assert [(row, [e["stage"] for e in entries]) for row, entries in carried(out)] == [
        (0, ["fails_on", "later"]),
        (2, ["later"]),
        (3, ["fails_on"]),
    ]
    assert carried(out)[2] == carried(first)[1]  # what earlier phases measured stays as it was
    assert out.drop_columns([TIMING]).equals(chain(later)(first.drop_columns([TIMING])).drop_columns([TIMING]))


def test_the_stats_sum_each_stages_figures_over_the_parts_of_every_attempt(tmp_path):
    """Ingest, a row stage and the final sink, file by file as a run and its resumed rerun do them;
    stats.json's `stage_timing` folds the parts both attempts left (tests/fixtures/ingest/good.jsonl
    has 3 documents: 2 kept by gopher_quality, 1 removed)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(f"{FIXTURES}/ingest/good.jsonl", data / name)
    config_path = tmp_path / "corpus.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "sources": {"web": {"paths": [str(data)]}},
                "stages": [{"name": "gopher_quality"}, {"name": "exact_dedup"}],
            }
        )
    )
    out = str(tmp_path / "out")
    config = load_config(str(config_path), {"output.dir": out})
    work = WorkDir(out)
    work.start({"config_digest": config.digest, "inputs": []})
    measured = Counter()
    for file in list_inputs(config):  # one attempt per file: the second resumes where the first stopped
        stages = StageChain([("gopher_quality", {})], batch_rows=2, batch_bytes=2**20)
        files = pa.Table.from_pylist([file.__dict__])
        for block in ingest_files(files, out, batch_rows=2, max_doc_bytes=2**20, max_batch_bytes=2**20):
            block = stages(block)
            for entry in pc.list_flatten(block[TIMING]).to_pylist():
                measured.update({f"{entry['stage']}.{key}": entry[key] for key in ("documents", "cpu_ns", "wall_ns")})
            write_final(block, out)
    parts = [path for spans in work.parts("final").values() for _, _, path in spans]
    assert len(parts) == 4  # two batches of each file
    rows = [row for path in parts for row in pq.read_table(path).to_pylist()]
    stats = collect_stats(rows, {"web": 6}, config, 10.0, {"exact_dedup": 2.5})
    ingest, gopher, exact = stats["stage_timing"]
    for timed in (ingest, gopher):
        assert timed["kind"] == "row" and timed["documents"] == measured[f"{timed['stage']}.documents"] == 6
        assert timed["cpu_seconds"] == round(measured[f"{timed['stage']}.cpu_ns"] / 1e9, 3)
        assert timed["wall_seconds"] == round(measured[f"{timed['stage']}.wall_ns"] / 1e9, 3) > 0
    with open(data / "a.jsonl", encoding="utf-8") as handle:
        text_bytes = 2 * sum(len(json.loads(line)["text"].encode()) for line in handle)
    assert gopher["mb"] == ingest["mb"] == round(text_bytes / 1e6, 3)  # no document was dropped before it
    assert exact == {
        "stage": "exact_dedup",
        "kind": "global",
        "documents": 4,  # what gopher_quality kept
        "mb": round(stats["bytes_out"] / 1e6, 3),
        "cpu_seconds": None,  # not measured for a global stage
        "wall_seconds": 2.5,
        "docs_per_s": 1.6,
        "mb_per_cpu_second": None,
    }
    assert stats["kept_documents"] == 4 and stats["removed"] == {"gopher_quality": {"gopher_short_doc": 2}}
