import gzip
import json
import os
import shutil

import pytest

from stages.ingest import SourceConfig, detect_format, list_input_files, read_file
from tests.helpers import FIXTURES

INGEST = os.path.join(FIXTURES, "ingest")


def read_source(paths, **options):
    source = SourceConfig(name="src", paths=paths, **options)
    import pyarrow as pa

    return pa.concat_tables(batch for file in list_input_files(source) for batch in read_file(file))


def test_malformed_jsonl_lines_are_quarantined_with_their_reason():
    table = read_source([os.path.join(INGEST, "malformed.jsonl")])
    assert table.num_rows == 7  # every line accounted for
    assert table["drop_reason"].to_pylist() == [
        None, "bad_json", "missing_text_field", "empty_text", "bad_encoding", None, "not_an_object",
    ]
    assert set(table["drop_stage"].to_pylist()) == {None, "ingest"}
    kept = table.filter(table["drop_stage"].is_null())
    assert all(text.strip() for text in kept["text"].to_pylist())


def test_ids_are_stable_source_file_index():
    table = read_source([os.path.join(INGEST, "malformed.jsonl")])
    assert table["id"].to_pylist()[:2] == ["src/malformed.jsonl#0", "src/malformed.jsonl#1"]


def test_compressed_jsonl_reads_like_plain():
    texts = {}
    for name in ("good.jsonl", "good.jsonl.gz", "good.jsonl.zst"):
        table = read_source([os.path.join(INGEST, name)])
        assert table["drop_stage"].null_count == table.num_rows == 3
        texts[name] = table["text"].to_pylist()
    assert texts["good.jsonl"] == texts["good.jsonl.gz"] == texts["good.jsonl.zst"]


def test_url_and_metadata_are_kept():
    table = read_source([os.path.join(INGEST, "good.jsonl")])
    with open(os.path.join(INGEST, "good.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    with_url = next(i for i, r in enumerate(records) if r.get("url"))
    assert table["url"][with_url].as_py() == records[with_url]["url"]
    extra = {k: v for k, v in records[with_url].items() if k not in ("text", "url", "metadata")}
    extra.update(records[with_url].get("metadata") or {})
    assert json.loads(table["metadata"][with_url].as_py()) == extra


def test_parquet_and_missing_text_column():
    table = read_source([os.path.join(INGEST, "docs.parquet")])
    assert table.num_rows == 3 and table["drop_stage"].null_count == 3
    assert all(u is None or u.startswith("http") for u in table["url"].to_pylist())
    with pytest.raises(ValueError, match="no column 'body'"):
        read_source([os.path.join(INGEST, "docs.parquet")], text_field="body")


def test_txt_folder_one_document_per_file_bad_encoding_quarantined():
    table = read_source([os.path.join(INGEST, "txt")])
    by_file = dict(zip([i.split("#")[0] for i in table["id"].to_pylist()], table["drop_reason"].to_pylist()))
    assert by_file.pop("src/bad.txt") == "bad_encoding"
    assert len(by_file) == 2 and set(by_file.values()) == {None}


def test_warc_html_is_extracted_and_wet_gives_the_same_page():
    warc = read_source([os.path.join(INGEST, "one.warc.gz")])
    wet = read_source([os.path.join(INGEST, "one.warc.wet.gz")])
    warc_kept = warc.filter(warc["drop_stage"].is_null())
    assert warc_kept.num_rows >= 1 and wet.num_rows >= 1
    assert "<html" not in warc_kept["text"][0].as_py().lower()
    assert warc_kept["url"][0].as_py() == wet["url"][0].as_py()
    # Main-text extraction keeps a good part of the page's words.
    warc_words = set(warc_kept["text"][0].as_py().split())
    wet_words = set(wet["text"][0].as_py().split())
    assert len(warc_words & wet_words) > 0.5 * len(warc_words)


def test_truncated_gzip_keeps_records_read_and_quarantines_the_rest(tmp_path):
    data = gzip.compress(open(os.path.join(INGEST, "good.jsonl"), "rb").read())
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(data[: len(data) - 20])
    table = read_source([str(broken)])
    assert table["drop_reason"].to_pylist()[-1] == "unreadable_file"
    assert "broken.jsonl.gz" in table["text"].to_pylist()[-1]


def test_missing_paths_and_unknown_extensions_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        read_source([str(tmp_path / "nothing*.jsonl")])
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format("data.csv")
    assert detect_format("x.jsonl.zst") == "jsonl" and detect_format("a.warc.wet.gz") == "wet"
    shutil.copy(os.path.join(INGEST, "good.jsonl"), tmp_path / "records.data")
    table = read_source([str(tmp_path / "records.data")], format="jsonl")
    assert table.num_rows == 3
