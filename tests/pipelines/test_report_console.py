"""The corpus command's console: a line per phase and the summary, Ray's own output in <out>/logs/,
report.html written. A small corpus through the command line, on the session's Ray instance."""

import json
import os
import random
import string
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

RAY_NOISE = ("Running Dataset", "deprecated", "constructor arguments", "memory", "INFO", "WARNING", "Started a local")


def test_the_corpus_command_prints_a_line_per_phase_and_the_summary(ray_local, tmp_path):
    letters = random.Random(0)
    words = ["".join(letters.choices(string.ascii_lowercase, k=letters.randint(3, 9))) for _ in range(300)]
    texts = [" ".join(random.Random(seed).choices(words, k=120)) + "." for seed in range(30)]
    documents = [{"text": texts[i % 30]} for i in range(60)]  # each text twice: exact_dedup removes 30
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents))
    (tmp_path / "corpus.yaml").write_text(
        json.dumps(
            {
                "sources": {"web": {"paths": [str(tmp_path / "in")]}},
                "stages": [{"name": "gopher_repetition"}, {"name": "exact_dedup"}],
            }
        )
    )
    out = tmp_path / "out"
    env = dict(os.environ, RAY_ADDRESS=ray_local.get_runtime_context().gcs_address)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.corpus", "--config", str(tmp_path / "corpus.yaml"), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    lines = [line for line in console.splitlines() if line.strip()]
    noise = [line for line in lines if any(word in line for word in RAY_NOISE)]
    assert noise == [], console
    phases = [line for line in lines if line.startswith("corpus: phase")]
    assert [line.split(":")[1].strip() for line in phases] == [
        "phase 0 (ingest, gopher_repetition)",
        "phase 1 (exact_dedup)",
        "phase 1 (exact_dedup)",
    ]
    assert len(lines) <= len(phases) + 5, console  # the phases, the summary between its rules
    stats = json.loads((out / "stats.json").read_text())
    assert (
        f"corpus: 60 documents in, {stats['kept_documents']} kept" in console
        and stats["removed"]["exact_dedup"]["exact_duplicate"] == 30
    )
    assert f"report: {out / 'report.html'}" in console and (out / "report.html").stat().st_size > 10_000
    assert {"ray.log", "ray-data.log"} <= set(os.listdir(out / "logs"))
