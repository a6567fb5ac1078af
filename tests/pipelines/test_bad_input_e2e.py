"""End-to-end: a corpus run over the bad-input corpus (tests/fixtures/bad) completes, quarantines
every bad input with its reason, counts it, and keeps the good documents next to the bad ones."""

import json
import os
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipelines.config import load_config
from pipelines.corpus import run
from stages.base import QUARANTINE_STAGE
from tests.helpers import FIXTURES

pytestmark = pytest.mark.slow

BAD = os.path.join(FIXTURES, "bad")
K = None  # a good document: kept
# Per file of tests/fixtures/bad (see tests/fixtures/README.md, bad/), what each record becomes.
EXPECTED = {
    "invalid_json.jsonl": [K, "bad_json", K],
    "invalid_utf8.jsonl": [K, "bad_encoding", K],
    "nul_byte.jsonl": [K, "binary_content", K],
    "lone_surrogate.jsonl": [K, "bad_encoding", K, "bad_encoding", "bad_encoding", K],
    "bom.jsonl": [K, K],
    "bom.txt": [K],
    "missing_text.jsonl": [K, "missing_text_field", K],
    "empty_text.jsonl": [K, "empty_text", "empty_text", K],
    "text_number.jsonl": [K, "text_not_string", K],
    "text_list.jsonl": [K, "text_not_string", K],
    "text_null.jsonl": [K, "empty_text", K],
    "json_array.jsonl": [K, "not_an_object", K],
    "duplicate_ids.jsonl": [K, K, K],
    "truncated.jsonl.gz": [K, K, "unreadable_file"],
    "truncated.jsonl.zst": [K, K, "unreadable_file"],
    "wrong_schema.parquet": ["missing_text_field"],
    "corrupt.parquet": ["unreadable_file"],
    "truncated.warc.gz": [K, "unreadable_file"],
    "random_bytes.txt": ["bad_encoding"],
    "empty.jsonl": ["empty_file"],
    "README.md": ["unsupported_format"],
    "build.py": ["unsupported_format"],
}
GIANT = [K, "too_large", K]  # giant/giant.jsonl, written at test time: over the default 10 MB cap


@pytest.fixture(scope="module")
def bad_run(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    giant_dir = tmp / "giant"
    giant_dir.mkdir()
    with open(os.path.join(BAD, "bom.jsonl"), "rb") as handle:
        good = handle.read().removeprefix(b"\xef\xbb\xbf").splitlines(keepends=True)  # two good records
    giant = b'{"text": "' + b"All work and no play makes Jack a dull boy. " * 275_000 + b'"}\n'  # 12 MB
    (giant_dir / "giant.jsonl").write_bytes(good[0] + giant + good[1])
    config = tmp / "bad.yaml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "sources": {
                    "bad": {"paths": [BAD], "id_field": "id"},
                    "giant": {"paths": [str(giant_dir)]},
                },
                "stages": [{"name": "langid", "params": {"languages": ["en"], "threshold": 0.0}}],
                "execution": {"batch_size": 8},
            }
        )
    )
    out = str(tmp / "out")
    stats = run(load_config(str(config), {"output.dir": out}))
    return out, stats, str(giant_dir / "giant.jsonl")


def expected_records():
    """{id: reason or None} for every record of the run."""
    records = {f"bad/{name}#{i}": reason for name, reasons in EXPECTED.items() for i, reason in enumerate(reasons)}
    records.update({f"giant/giant.jsonl#{i}": reason for i, reason in enumerate(GIANT)})
    return records


def read_dir(path):
    if not os.path.isdir(path):
        return []
    files = [os.path.join(path, name) for name in sorted(os.listdir(path)) if name.endswith(".parquet")]
    return pq.read_table(files).to_pylist() if files else []


def test_every_input_document_is_accounted_for(bad_run):
    out, stats, _ = bad_run
    with open(os.path.join(out, "stats.json")) as handle:
        assert json.load(handle)["input_documents"] == stats["input_documents"]
    docs, rejects, quarantine = (read_dir(os.path.join(out, d)) for d in ("docs", "rejects", "quarantine"))
    assert stats["input_documents"] == len(expected_records())
    counted = stats["kept_documents"] + stats["removed_documents"] + stats["quarantined_documents"]
    assert stats["input_documents"] == counted
    assert (stats["kept_documents"], stats["removed_documents"], stats["quarantined_documents"]) == (
        len(docs),
        len(rejects),
        len(quarantine),
    )


def test_quarantine_counts_per_reason(bad_run):
    _, stats, _ = bad_run
    assert stats["quarantined"] == dict(Counter(r for r in expected_records().values() if r))


def test_quarantined_rows_carry_their_reason_per_file(bad_run):
    out, _, _ = bad_run
    rows = read_dir(os.path.join(out, "quarantine"))
    expected = {doc_id: reason for doc_id, reason in expected_records().items() if reason}
    assert {row["id"]: row["drop_reason"] for row in rows} == expected
    assert {row["drop_stage"] for row in rows} == {QUARANTINE_STAGE}
    assert all(row["text"] for row in rows)  # what could be read, and why it was refused


def test_good_documents_next_to_bad_ones_are_kept(bad_run):
    out, _, giant_path = bad_run
    docs = {row["id"]: row for row in read_dir(os.path.join(out, "docs"))}
    good = {doc_id for doc_id, reason in expected_records().items() if reason is None}
    assert set(docs) == good  # English documents, langid threshold 0: none is removed
    # Kept JSONL documents carry exactly the text of their line.
    for name in [n for n in EXPECTED if n.endswith(".jsonl")] + [giant_path]:
        path = name if os.path.isabs(name) else os.path.join(BAD, name)
        prefix = "giant/giant.jsonl" if os.path.isabs(name) else f"bad/{name}"
        with open(path, "rb") as handle:
            lines = [line for line in handle.read().removeprefix(b"\xef\xbb\xbf").split(b"\n") if line.strip()]
        for index, line in enumerate(lines):
            if f"{prefix}#{index}" in docs:
                assert docs[f"{prefix}#{index}"]["text"] == json.loads(line)["text"]
    original_ids = [json.loads(docs[f"bad/duplicate_ids.jsonl#{i}"]["metadata"])["original_id"] for i in range(3)]
    assert original_ids == ["c4-dup", "c4-dup", "c4-other"]
