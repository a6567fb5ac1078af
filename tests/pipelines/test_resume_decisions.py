"""When a rerun resumes, when it starts afresh and says why, and what a failed start leaves alone."""

import json
import os
import shutil

import pytest
import yaml

from pipelines.config import load_config
from pipelines.corpus import input_state, list_inputs, main, run, why_not_resumable
from pipelines.workdir import SUCCESS, WorkDir
from tests.helpers import ROOT

INPUT = os.path.join(ROOT, "tests", "fixtures", "ingest", "good.jsonl")


def write_config(tmp_path, paths, **stage_params):
    raw = {"sources": {"web": {"paths": paths}}, "stages": [{"name": "gopher_quality", "params": stage_params}]}
    path = tmp_path / "corpus.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_another_config_or_input_list_is_not_resumed_and_the_reason_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(INPUT, data / name)
    config = load_config(write_config(tmp_path, [str(data)]), {"output.dir": str(tmp_path / "out")})
    state = input_state(config, list_inputs(config))
    assert why_not_resumable(state, state) is None
    other = load_config(write_config(tmp_path, [str(data)], min_doc_words=10), {"output.dir": str(tmp_path / "out")})
    assert "configuration differs" in why_not_resumable(state, input_state(other, list_inputs(other)))
    shutil.copy(INPUT, data / "c.jsonl")
    (data / "a.jsonl").write_text((data / "a.jsonl").read_text() + (data / "a.jsonl").read_text())
    os.remove(data / "b.jsonl")
    reason = why_not_resumable(state, input_state(config, list_inputs(config)))
    assert reason.startswith("its input files differ: 1 added (first: ") and "c.jsonl" in reason
    assert "1 removed (first: " in reason and "1 changed (first: " in reason


def test_the_digest_ignores_where_the_output_goes(tmp_path):
    path = write_config(tmp_path, [INPUT])
    assert load_config(path, {"output.dir": "a"}).digest == load_config(path, {"output.dir": "b"}).digest


@pytest.mark.slow
def test_a_stale_run_of_another_config_is_discarded_and_fresh_forces_it(ray_local, tmp_path, capsys):
    out = str(tmp_path / "out")
    work = WorkDir(out)
    work.start({"config_digest": "0123456789abcdef", "inputs": []})
    stale = os.path.join(work.phase_dir(0), "stale")
    os.makedirs(stale)
    config = load_config(write_config(tmp_path, [INPUT]), {"output.dir": out})
    stats = run(config)
    printed = capsys.readouterr().out
    assert "not resuming the unfinished run" in printed and "configuration differs (digest 0123456789abcdef" in printed
    assert stats["input_documents"] == 3 and not os.path.exists(stale) and os.path.exists(os.path.join(out, SUCCESS))

    # A matching unfinished run is resumed, unless --fresh
    work.start(input_state(config, list_inputs(config)))
    run(config)
    assert "resuming the unfinished run" in capsys.readouterr().out
    work.start(input_state(config, list_inputs(config)))
    run(config, fresh=True)
    assert "--fresh was given; starting afresh" in capsys.readouterr().out


def test_a_source_that_matches_nothing_changes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "part-1.parquet").write_text("previous")
    (out / "stats.json").write_text(json.dumps({"kept_documents": 435}))
    (out / SUCCESS).write_text("{}")
    before = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    code = main(["--config", write_config(tmp_path, [str(tmp_path / "missing" / "*.jsonl")]), "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err
    assert "input error" in error and "matches" in error
    assert {p: p.read_text() for p in out.rglob("*") if p.is_file()} == before
    assert not (out / ".run").exists()
