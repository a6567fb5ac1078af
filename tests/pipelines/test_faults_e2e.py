"""Faults inside a run: a stage that raises on some documents, a stage actor killed mid-run."""

import json
import os

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.config import load_config
from pipelines.corpus import run
from stages.base import QUARANTINE_STAGE
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

POISONED = ["web/c4-0000.jsonl.gz#3", "web/c4-0000.jsonl.gz#40"]
VICTIM = "web/c4-0000.jsonl.gz#7"


def config(tmp_path, name, marker):
    raw = {
        "sources": {
            "web": {"paths": [f"{ROOT}/data/sample/web/c4-0000.jsonl.gz", f"{ROOT}/data/sample/web/ccnet-0000.jsonl"]},
            "wiki": {"paths": [f"{ROOT}/data/sample/wiki/*.parquet"], "priority": 1},
        },
        "stages": [
            {"name": "langid", "params": {"languages": ["en"], "threshold": 0.5}},
            {"name": "tests.fault_stages:RaiseOn", "params": {"ids": POISONED}},
            {"name": "tests.fault_stages:KillOnce", "params": {"id": VICTIM, "marker": str(marker)}},
            {"name": "gopher_quality"},
            {"name": "exact_dedup"},
            {"name": "pii"},
        ],
        "execution": {"batch_size": 16},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(str(path), {"output.dir": str(tmp_path / name)})


@pytest.fixture(scope="module")
def runs(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    done = tmp / "already-killed"
    done.write_text("")
    clean = run(config(tmp, "clean", done))  # the marker exists: nobody is killed
    killed = run(config(tmp, "killed", tmp / "kill-marker"))
    return tmp, clean, killed


def test_a_killed_stage_actor_is_restarted_and_the_output_is_byte_identical(runs):
    tmp, clean, killed = runs
    assert (tmp / "kill-marker").exists()  # the actor process really was killed
    for sub in ("docs", "rejects", "quarantine"):
        names = sorted(os.listdir(tmp / "clean" / sub))
        assert names == sorted(os.listdir(tmp / "killed" / sub)), sub
        for name in names:
            assert (tmp / "clean" / sub / name).read_bytes() == (tmp / "killed" / sub / name).read_bytes(), name
    for key in ("input_documents", "kept_documents", "removed", "quarantined", "per_source"):
        assert killed[key] == clean[key], key


def test_documents_a_stage_raises_on_are_quarantined_and_the_rest_go_on(runs):
    tmp, clean, _ = runs
    assert clean["quarantined"] == {"stage_error:raise_on": len(POISONED)}
    assert clean["input_documents"] == clean["kept_documents"] + clean["removed_documents"] + len(POISONED)
    quarantine = pq.read_table(tmp / "clean" / "quarantine").sort_by("id").to_pylist()
    assert [row["id"] for row in quarantine] == sorted(POISONED)
    for row in quarantine:
        assert row["drop_stage"] == QUARANTINE_STAGE and row["drop_reason"] == "stage_error:raise_on"
        assert json.loads(row["metadata"])["error"].startswith("ZeroDivisionError: cannot handle web/c4-0000")
        assert row["text"]  # the document itself, for whoever fixes the stage
    # Their neighbours in the same batches went through every stage.
    kept = set(pq.read_table(tmp / "clean" / "docs", columns=["id"])["id"].to_pylist())
    removed = set(pq.read_table(tmp / "clean" / "rejects", columns=["id"])["id"].to_pylist())
    for neighbour in ("web/c4-0000.jsonl.gz#2", "web/c4-0000.jsonl.gz#4", "web/c4-0000.jsonl.gz#41"):
        assert neighbour in kept | removed
