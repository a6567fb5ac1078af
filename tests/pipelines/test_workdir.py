"""The work directory's completion records and publication, and the sinks' per-file parts."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.output import unit_runs, write_final, write_phase
from pipelines.workdir import SUCCESS, WorkDir, unit_key
from stages.base import DOCUMENT_SCHEMA, QUARANTINE_STAGE


def documents(ids, dropped=()):
    n = len(ids)
    return pa.table(
        {
            "id": ids,
            "source": [i.split("/")[0] for i in ids],
            "text": [f"text of {i}" for i in ids],
            "url": [None] * n,
            "metadata": ["{}"] * n,
            "drop_stage": [("gopher_quality" if i in dropped else None) for i in ids],
            "drop_reason": [("gopher_short_doc" if i in dropped else None) for i in ids],
        },
        schema=DOCUMENT_SCHEMA,
    )


def test_a_block_is_cut_into_runs_of_consecutive_rows_of_one_file():
    block = documents(
        ["web/b.jsonl#0", "web/a.jsonl#3", "web/a.jsonl#4", "web/b.jsonl#1", "web/a.jsonl#6", "web/x#y.jsonl#0"]
    )
    runs = [(unit, start, rows["id"].to_pylist()) for unit, start, rows in unit_runs(block)]
    assert runs == [
        ("web/a.jsonl", 3, ["web/a.jsonl#3", "web/a.jsonl#4"]),
        ("web/a.jsonl", 6, ["web/a.jsonl#6"]),
        ("web/b.jsonl", 0, ["web/b.jsonl#0", "web/b.jsonl#1"]),
        ("web/x#y.jsonl", 0, ["web/x#y.jsonl#0"]),
    ]


def test_a_file_is_complete_when_its_parts_cover_all_its_records(tmp_path):
    work = WorkDir(str(tmp_path))
    work.start({"config_digest": "x", "inputs": []})
    work.record_input("web/a.jsonl", "web", "/data/a.jsonl", 5)
    work.record_input("web/b.jsonl", "web", "/data/b.jsonl", 2)
    write_phase(documents([f"web/a.jsonl#{i}" for i in range(3)]), str(tmp_path), 0)
    write_phase(documents(["web/b.jsonl#0", "web/b.jsonl#1", "web/a.jsonl#4"]), str(tmp_path), 0)
    a, b = unit_key("web/a.jsonl"), unit_key("web/b.jsonl")
    assert work.complete_units(0, work.inputs()) == {b}  # a lacks row 3
    # A killed writer leaves a temporary file: it is no part
    open(os.path.join(work.phase_dir(0), a, "000000000003-1.parquet.tmp-dead"), "wb").close()
    assert work.complete_units(0, work.inputs()) == {b}
    work.discard_units(0, {a})
    write_phase(documents([f"web/a.jsonl#{i}" for i in range(5)]), str(tmp_path), 0)
    assert work.complete_units(0, work.inputs()) == {a, b}
    assert [(start, count) for start, count, _ in work.parts(0)[a]] == [(0, 5)]


def test_final_parts_route_documents_and_record_their_counts(tmp_path):
    out = str(tmp_path)
    work = WorkDir(out)
    work.start({"config_digest": "x", "inputs": []})
    block = documents(["web/a.jsonl#0", "web/a.jsonl#1", "web/a.jsonl#2"], dropped={"web/a.jsonl#1"})
    block = block.set_column(5, "drop_stage", pa.array([None, "gopher_quality", QUARANTINE_STAGE]))
    write_final(block, out)
    key = unit_key("web/a.jsonl")
    for sub, ids in (("docs", ["web/a.jsonl#0"]), ("rejects", ["web/a.jsonl#1"]), ("quarantine", ["web/a.jsonl#2"])):
        assert pq.read_table(f"{work.staging}/{sub}/part-{key}-000000000000.parquet")["id"].to_pylist() == ids
    counts = pq.read_table(work.parts("final")[key][0][2])
    assert sorted(counts["category"].to_pylist()) == ["kept", "quarantined", "removed"]
    # A killed final part: its staged output goes with it
    work.discard_units("final", {key})
    assert work.parts("final") == {} and not os.listdir(f"{work.staging}/docs")


def stage_output(work, fs_root, text):
    os.makedirs(f"{work.staging}/docs", exist_ok=True)
    with open(f"{work.staging}/docs/part-1.parquet", "w") as handle:
        handle.write(text)
    with open(f"{work.staging}/stats.json", "w") as handle:
        handle.write(json.dumps({"kept_documents": 1, "run": text}))


def test_publish_keeps_the_old_output_until_the_new_is_complete_and_finishes_after_a_kill(tmp_path):
    out = str(tmp_path)
    work = WorkDir(out)
    work.start({"config_digest": "x", "inputs": []})
    stage_output(work, out, "old")
    work.publish({"run": "old"})
    assert json.load(open(tmp_path / SUCCESS)) == {"run": "old"} and not os.path.exists(work.root)

    work.start({"config_digest": "x", "inputs": []})
    assert (tmp_path / "docs/part-1.parquet").read_text() == "old"  # untouched while the new run works
    stage_output(work, out, "new")

    def killed(name):
        if name == "docs":
            raise KeyboardInterrupt  # stands for a kill between two moves

    with pytest.raises(KeyboardInterrupt):
        work.publish({"run": "new"}, after_move=killed)
    assert not (tmp_path / SUCCESS).exists()  # half-moved output is never marked complete
    assert work.publishing()
    work.publish()  # what the rerun does
    assert json.load(open(tmp_path / SUCCESS)) == {"run": "new"}
    assert (tmp_path / "docs/part-1.parquet").read_text() == "new"
    assert json.load(open(tmp_path / "stats.json"))["run"] == "new"
    assert not os.path.exists(work.root)
