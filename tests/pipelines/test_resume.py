"""A driver killed at any point: rerunning the same command resumes and gives the clean run's output.

The driver runs as a separate process on the test session's Ray instance (as `ray job submit`
runs it on a cluster) and kills itself with SIGKILL at a chosen point (LMFORGE_KILL_AT, see
pipelines.corpus.failpoint): its Ray workers die with it, the work directory stays."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, output_table, stable_stats

pytestmark = pytest.mark.slow


def corpus(out, ray_address, kill_at=None, *extra):
    env = dict(os.environ, RAY_ADDRESS=ray_address)
    env.pop("LMFORGE_KILL_AT", None)
    if kill_at:
        env["LMFORGE_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "pipelines.corpus", "--config", "configs/corpus.yaml", "--out", out, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def ray_address(ray_local):
    return ray_local.get_runtime_context().gcs_address


def stage_volumes(out):
    """The documents and MB each stage got, from stats.json's `stage_timing` (its times vary)."""
    with open(os.path.join(out, "stats.json")) as handle:
        return [(t["stage"], t["documents"], t["mb"]) for t in json.load(handle)["stage_timing"]]


# Each rerun is itself killed at the next point, as a run on a flaky cluster may be, and each
# must pick up what the one before it finished: (where the rerun dies, what it must say it reused).
KILLS = [
    ("phase0.part:3", None),  # in the row stages, some files done
    ("phase2.found", "input files done in an earlier attempt"),  # inside a global stage (minhash_dedup)
    ("phase4.part:2", "phase 1 (exact_dedup): done in an earlier attempt"),  # while the output is written
    ("publish:2", "phase 3 (sentence_dedup): done in an earlier attempt"),  # while it is moved into place
]


def test_a_driver_killed_at_each_point_resumes_to_the_clean_output(sample_run, ray_address, tmp_path):
    clean_out, _ = sample_run
    out = str(tmp_path / "out")
    # A previous complete output, which must survive the killed runs untouched until the end.
    shutil.copytree(clean_out, out)
    with open(os.path.join(out, "_SUCCESS")) as handle:
        previous_success = handle.read()

    for kill_at, reused in KILLS:
        killed = corpus(out, ray_address, kill_at)
        assert killed.returncode == -9, (kill_at, killed.stderr[-3000:])
        if reused:
            assert "resuming the unfinished run" in killed.stdout and reused in killed.stdout, (kill_at, killed.stdout)
        assert os.path.isdir(os.path.join(out, ".run"))
        if kill_at.startswith("publish"):
            assert not os.path.exists(os.path.join(out, "_SUCCESS"))  # half-moved: never marked complete
        else:
            with open(os.path.join(out, "_SUCCESS")) as handle:
                assert handle.read() == previous_success, kill_at  # the old output is still the published one
            assert stable_stats(out) == stable_stats(clean_out)

    rerun = corpus(out, ray_address)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming the unfinished run" in rerun.stdout
    assert stable_stats(out) == stable_stats(clean_out)
    assert stage_volumes(out) == stage_volumes(clean_out)  # the stages' figures of every attempt, none twice
    for sub in ("docs", "rejects", "quarantine"):
        mine, theirs = output_table(out, sub), output_table(clean_out, sub)
        assert (mine is None and theirs is None) or mine.equals(theirs), sub
        assert sorted(os.listdir(os.path.join(out, sub))) == sorted(os.listdir(os.path.join(clean_out, sub)))
    assert not os.path.exists(os.path.join(out, ".run"))
    with open(os.path.join(out, "_SUCCESS")) as handle:
        assert json.load(handle)["kept_documents"] == stable_stats(clean_out)["kept_documents"]
