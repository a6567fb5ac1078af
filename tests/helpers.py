"""Small builders shared by the tests."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from stages.base import document_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def batch(texts, sources=None, langs=None, dropped=None) -> pa.Table:
    """A document batch as ingest produces it; `dropped` maps row index -> (stage, reason)."""
    table = document_batch(texts, sources or ["web"] * len(texts))
    if dropped:
        stage = [dropped.get(i, (None, None))[0] for i in range(len(texts))]
        reason = [dropped.get(i, (None, None))[1] for i in range(len(texts))]
        table = table.set_column(5, "drop_stage", pa.array(stage, pa.string()))
        table = table.set_column(6, "drop_reason", pa.array(reason, pa.string()))
    if langs is not None:
        table = table.append_column("lang", pa.array(langs, pa.string()))
    return table


def fixture_text(name: str):
    with open(os.path.join(FIXTURES, "filters", name), encoding="utf-8") as handle:
        data = json.load(handle)
    return [d["text"] for d in data] if isinstance(data, list) else data["text"]


def reasons(table: pa.Table) -> list:
    return list(zip(table["drop_stage"].to_pylist(), table["drop_reason"].to_pylist()))


def configured_stage(name: str):
    """The stage as configs/corpus.yaml (what `make corpus` runs) configures it."""
    import yaml

    from stages import build_stage

    with open(os.path.join(ROOT, "configs", "corpus.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    params = next(s.get("params") or {} for s in config["stages"] if s["name"] == name)
    cwd = os.getcwd()
    os.chdir(ROOT)  # keyword list paths are repo-relative
    try:
        return build_stage(name, params)
    finally:
        os.chdir(cwd)


# stats.json keys that differ between any two runs of the same config (wall and CPU time).
VOLATILE_STATS = ("seconds", "docs_per_s", "timing", "stage_timing")


def output_table(out: str, sub: str) -> pa.Table | None:
    """A run's `out/<sub>` folder (docs, rejects, quarantine) sorted by id; None if empty."""
    path = os.path.join(out, sub)
    return pq.read_table(path).sort_by("id") if os.path.isdir(path) and os.listdir(path) else None


def stable_stats(out: str) -> dict:
    """A run's stats.json without the VOLATILE_STATS keys."""
    with open(os.path.join(out, "stats.json"), encoding="utf-8") as handle:
        return {k: v for k, v in json.load(handle).items() if k not in VOLATILE_STATS}
