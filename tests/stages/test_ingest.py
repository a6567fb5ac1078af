import concurrent.futures
import gzip
import json
import multiprocessing
import os
import random
import shutil
import tracemalloc
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from stages import ingest
from stages.base import QUARANTINE_STAGE
from stages.ingest import (
    MAX_BATCH_BYTES,
    MAX_DOC_BYTES,
    UNSUPPORTED,
    InputFile,
    SourceConfig,
    detect_format,
    list_input_files,
    read_file,
)
from tests.helpers import FIXTURES

INGEST = os.path.join(FIXTURES, "ingest")
BAD = os.path.join(FIXTURES, "bad")
MB = 1_000_000


def read_source(paths, read_options=None, **options):
    source = SourceConfig(name="src", paths=paths, **options)
    return pa.concat_tables(
        batch for file in list_input_files(source) for batch in read_file(file, **(read_options or {}))
    )


def _read_traced(paths, read_options):
    read_source([os.path.join(INGEST, "good.jsonl")])  # lazy imports (pyarrow's pandas shim: ~24 MB) first
    tracemalloc.start()
    table = read_source(paths, read_options)
    return table, tracemalloc.get_traced_memory()[1]


def traced_peak(paths, read_options=None):
    """The table read from `paths` and the reader's peak Python memory, measured in a fresh
    process: in this one, earlier tests' imports and heap would blur it (and a 60 MB read here
    left fastText's training in a later test returning NaN)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_read_traced, paths, read_options).result()


def reasons(table):
    return table["drop_reason"].to_pylist()


def good_lines(count=3):
    with open(os.path.join(INGEST, "good.jsonl"), "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    return (lines * count)[:count]


def assert_quarantine_marked(table):
    """Quarantined rows carry the quarantine stage, kept rows nothing."""
    for stage, reason in zip(table["drop_stage"].to_pylist(), reasons(table)):
        assert stage == (QUARANTINE_STAGE if reason else None)


# --------------------------------------------------------------------------- as before


def test_malformed_jsonl_lines_are_quarantined_with_their_reason():
    table = read_source([os.path.join(INGEST, "malformed.jsonl")])
    assert table.num_rows == 7  # every line accounted for
    assert reasons(table) == [
        None,
        "bad_json",
        "missing_text_field",
        "empty_text",
        "bad_encoding",
        None,
        "not_an_object",
    ]
    assert set(table["drop_stage"].to_pylist()) == {None, QUARANTINE_STAGE}
    kept = table.filter(table["drop_stage"].is_null())
    assert all(text.strip() for text in kept["text"].to_pylist())


def test_ids_are_stable_source_file_index():
    table = read_source([os.path.join(INGEST, "malformed.jsonl")])
    assert table["id"].to_pylist()[:2] == ["src/malformed.jsonl#0", "src/malformed.jsonl#1"]


def test_adding_a_file_renames_no_other_file(tmp_path):
    """ids come from the config's paths, not from the files found: a new file in a sibling folder
    (which moves the files' common folder) leaves every existing id as it was."""
    for name in ("crawl/2024/a.jsonl", "crawl/2024/sub/b.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(good_lines(1)[0])
    patterns = {
        "folder": [str(tmp_path / "crawl")],
        "glob": [str(tmp_path / "crawl/**/*.jsonl")],
        "file": [str(tmp_path / "crawl/2024/a.jsonl")],
        "two": [str(tmp_path / "crawl/2024/a.jsonl"), str(tmp_path / "crawl/2024/sub")],
    }
    relpaths = lambda paths: {f.path: f.relpath for f in list_input_files(SourceConfig(name="src", paths=paths))}  # noqa: E731
    before = {kind: relpaths(paths) for kind, paths in patterns.items()}
    assert (
        before["folder"]
        == before["glob"]
        == {
            str(tmp_path / "crawl/2024/a.jsonl"): "2024/a.jsonl",
            str(tmp_path / "crawl/2024/sub/b.jsonl"): "2024/sub/b.jsonl",
        }
    )
    assert before["file"] == {str(tmp_path / "crawl/2024/a.jsonl"): "a.jsonl"}
    (tmp_path / "crawl/2025").mkdir()
    (tmp_path / "crawl/2025/c.jsonl").write_bytes(good_lines(1)[0])
    for kind, paths in patterns.items():
        after = relpaths(paths)
        assert {path: after[path] for path in before[kind]} == before[kind], kind


def test_compressed_jsonl_reads_like_plain():
    texts = {}
    for name in ("good.jsonl", "good.jsonl.gz", "good.jsonl.zst"):
        table = read_source([os.path.join(INGEST, name)])
        assert table["drop_stage"].null_count == table.num_rows == 3
        texts[name] = table["text"].to_pylist()
    assert texts["good.jsonl"] == texts["good.jsonl.gz"] == texts["good.jsonl.zst"]


def test_multi_frame_zstd_reads_every_frame(tmp_path):
    lines = good_lines(3)
    frames = b"".join(zstandard.ZstdCompressor().compress(line) for line in lines)  # as pzstd writes
    (tmp_path / "frames.jsonl.zst").write_bytes(frames + zstandard.ZstdCompressor().compress(b""))
    table = read_source([str(tmp_path / "frames.jsonl.zst")])
    assert reasons(table) == [None, None, None]


def test_url_and_metadata_are_kept():
    table = read_source([os.path.join(INGEST, "good.jsonl")])
    with open(os.path.join(INGEST, "good.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    with_url = next(i for i, r in enumerate(records) if r.get("url"))
    assert table["url"][with_url].as_py() == records[with_url]["url"]
    extra = {k: v for k, v in records[with_url].items() if k not in ("text", "url", "metadata")}
    extra.update(records[with_url].get("metadata") or {})
    assert json.loads(table["metadata"][with_url].as_py()) == extra


def test_parquet_rows_are_documents():
    table = read_source([os.path.join(INGEST, "docs.parquet")])
    assert table.num_rows == 3 and table["drop_stage"].null_count == 3
    assert all(u is None or u.startswith("http") for u in table["url"].to_pylist())


def test_txt_folder_one_document_per_file_bad_encoding_quarantined():
    table = read_source([os.path.join(INGEST, "txt")])
    by_file = dict(zip([i.split("#")[0] for i in table["id"].to_pylist()], reasons(table)))
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


def test_missing_paths_and_unknown_extensions_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        read_source([str(tmp_path / "nothing*.jsonl")])
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format("data.csv")
    assert detect_format("x.jsonl.zst") == "jsonl" and detect_format("a.warc.wet.gz") == "wet"
    shutil.copy(os.path.join(INGEST, "good.jsonl"), tmp_path / "records.data")
    table = read_source([str(tmp_path / "records.data")], format="jsonl")
    assert table.num_rows == 3


# --------------------------------------------------------------------------- batches


def test_batches_are_bounded_in_rows_and_in_bytes():
    file = list_input_files(SourceConfig(name="src", paths=[os.path.join(INGEST, "good.jsonl")]))[0]
    assert [b.num_rows for b in read_file(file, batch_rows=2)] == [2, 1]
    # A byte bound below one document's size: every document is a batch of its own.
    assert [b.num_rows for b in read_file(file, max_batch_bytes=100)] == [1, 1, 1]
    assert [b.num_rows for b in read_file(file)] == [3]
    assert MAX_DOC_BYTES == 10_000_000 and MAX_BATCH_BYTES == 64 * 2**20  # the documented defaults


# --------------------------------------------------------------------------- size cap


def test_huge_single_line_jsonl_record_is_too_large_and_never_read_whole(tmp_path):
    good = good_lines(2)
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as handle:
        handle.write(good[0])
        handle.write(b'{"text": "' + b"word " * (12 * MB) + b'"}\n')  # a 60 MB line
        handle.write(good[1])
    table, peak = traced_peak([str(huge)], {"max_doc_bytes": MB})
    assert reasons(table) == [None, "too_large", None]
    assert table["id"].to_pylist() == ["src/huge.jsonl#0", "src/huge.jsonl#1", "src/huge.jsonl#2"]
    raw = table["text"][1].as_py()
    assert raw.startswith('{"text": "word word') and "60,000,013 bytes" in raw
    assert len(raw) < ingest.QUARANTINE_SNIPPET_CHARS + 200
    assert peak < 8 * MB, peak  # the line is 60 MB; the reader held at most 2 x the 1 MB cap of it


def test_huge_line_with_the_default_cap(tmp_path):
    huge = tmp_path / "huge.jsonl"
    huge.write_bytes(b'{"text": "' + b"x" * (60 * MB) + b'"}\n' + good_lines(1)[0])
    table, peak = traced_peak([str(huge)])
    assert reasons(table) == ["too_large", None]
    # readline(limit) joins its chunks: about 2 x the 20 MB line limit, never the 60 MB line
    assert peak < 2.5 * ingest.JSONL_LINE_FACTOR * MAX_DOC_BYTES, peak


def test_document_over_the_cap_in_a_parsable_line_is_too_large(tmp_path):
    # The line is under JSONL_LINE_FACTOR x the cap, so it is parsed and its text measured.
    path = tmp_path / "big.jsonl"
    path.write_bytes(good_lines(1)[0] + json.dumps({"text": "é" * 600}, ensure_ascii=False).encode() + b"\n")
    table = read_source([str(path)], read_options={"max_doc_bytes": 1000})
    assert reasons(table) == [None, "too_large"]
    assert "document text of 1,200 bytes" in table["text"][1].as_py()  # UTF-8 bytes of the text


def test_huge_txt_is_too_large_and_read_in_bounded_chunks(tmp_path):
    (tmp_path / "huge.txt").write_bytes(b"All work and no play. " * (1_500_000))  # 33 MB
    (tmp_path / "small.txt").write_bytes(good_lines(1)[0])
    table, peak = traced_peak([str(tmp_path)], {"max_doc_bytes": MB})
    by_id = dict(zip(table["id"].to_pylist(), reasons(table)))
    assert by_id == {"src/huge.txt#0": "too_large", "src/small.txt#0": None}
    assert "33,000,000 bytes" in table["text"][0].as_py()
    assert peak < 4 * MB, peak


def test_warc_and_wet_payloads_over_the_cap_are_too_large():
    warc = read_source([os.path.join(INGEST, "one.warc.gz")], read_options={"max_doc_bytes": 1000})
    wet = read_source([os.path.join(INGEST, "one.warc.wet.gz")], read_options={"max_doc_bytes": 1000})
    assert reasons(warc) == ["too_large"] and reasons(wet) == ["too_large"]
    assert "over max_doc_bytes = 1,000" in warc["text"][0].as_py()


# --------------------------------------------------------------------------- truncated input


def _cut_after_two_records(compressor, tmp_path, name):
    """A file whose stream holds two whole records, then half of a third, and is cut short
    (compressed blocks end after each part, so what precedes the cut decompresses)."""
    lines = good_lines(3)
    path = tmp_path / name
    path.write_bytes(compressor(lines[:2], lines[2]))
    return path


def _gzip_cut(records, partial):
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = z.compress(b"".join(records)) + z.flush(zlib.Z_SYNC_FLUSH)
    head += z.compress(partial[:100]) + z.flush(zlib.Z_SYNC_FLUSH)
    tail = z.compress(partial[100:]) + z.flush()
    return head + tail[: len(tail) // 2]


def _zstd_cut(records, partial):
    z = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    head = z.compress(b"".join(records)) + z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    head += z.compress(partial[:100]) + z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    tail = z.compress(partial[100:]) + z.flush()
    return head + tail[: len(tail) // 2]


def test_truncated_gzip_keeps_records_read_and_quarantines_the_rest(tmp_path):
    path = _cut_after_two_records(_gzip_cut, tmp_path, "broken.jsonl.gz")
    with gzip.open(path) as handle:  # the first 100 bytes of the third line are decodable
        assert handle.read(len(b"".join(good_lines(2))) + 100)[-100:] == good_lines(3)[2][:100]
    table = read_source([str(path)])
    assert reasons(table) == [None, None, "unreadable_file"]  # no bad_json for the partial line
    assert table["text"].to_pylist()[:2] == [json.loads(line)["text"] for line in good_lines(2)]
    raw = table["text"][2].as_py()
    assert "broken.jsonl.gz" in raw and "EOFError" in raw


def test_truncated_zstd_keeps_records_read_and_quarantines_the_rest(tmp_path):
    path = _cut_after_two_records(_zstd_cut, tmp_path, "broken.jsonl.zst")
    table = read_source([str(path)])
    assert reasons(table) == [None, None, "unreadable_file"]  # no bad_json for the partial line
    assert table["id"].to_pylist()[2] == "src/broken.jsonl.zst#2"
    raw = table["text"][2].as_py()
    assert "broken.jsonl.zst" in raw and "truncated zstd stream" in raw


def test_zstd_cut_anywhere_never_passes_for_complete(tmp_path):
    data = zstandard.ZstdCompressor(write_checksum=True).compress(b"".join(good_lines(3)))
    for cut in range(1, len(data), 7):
        (tmp_path / "cut.jsonl.zst").write_bytes(data[:cut])
        table = read_source([str(tmp_path / "cut.jsonl.zst")])
        assert reasons(table)[-1] == "unreadable_file", cut


def test_truncated_warc_quarantines_the_cut_record_and_keeps_earlier_ones(tmp_path):
    # one.warc.gz: warcinfo, request, response (bytes 1023-18374, one gzip member per record), metadata
    records = open(os.path.join(INGEST, "one.warc.gz"), "rb").read()
    data = gzip.decompress(records)
    for name, content in (
        ("cut.warc", data + data[: len(data) // 2]),
        ("cut.warc.gz", records + records[: len(records) // 2]),
    ):
        (tmp_path / name).write_bytes(content)
        table = read_source([str(tmp_path / name)])
        assert reasons(table) == [None, "unreadable_file"], name
        assert "truncated WARC" in table["text"][1].as_py() and "Content-Length" in table["text"][1].as_py()
    # The committed fixture: one complete English page, then a response cut in half.
    table = read_source([os.path.join(BAD, "truncated.warc.gz")])
    assert reasons(table) == [None, "unreadable_file"]
    assert table["url"][0].as_py() == "https://soldaini.net/facts/"


def test_committed_truncated_fixtures_keep_two_records():
    for name in ("truncated.jsonl.gz", "truncated.jsonl.zst"):
        assert reasons(read_source([os.path.join(BAD, name)])) == [None, None, "unreadable_file"]


# --------------------------------------------------------------------------- encodings


def test_bom_at_the_start_of_jsonl_and_txt_is_not_data(tmp_path):
    lines = good_lines(2)
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + lines[0] + lines[1])
    table = read_source([str(tmp_path / "bom.jsonl")])
    assert reasons(table) == [None, None]
    assert table["text"][0].as_py() == json.loads(lines[0])["text"]
    # A first line too long to parse is still one record, BOM or not.
    (tmp_path / "bom_long.jsonl").write_bytes(b"\xef\xbb\xbf" + b'{"text": "' + b"x" * 3000 + b'"}\n' + lines[0])
    assert reasons(read_source([str(tmp_path / "bom_long.jsonl")], read_options={"max_doc_bytes": 1000})) == [
        "too_large",
        None,
    ]
    txt = read_source([os.path.join(BAD, "bom.txt")])
    assert reasons(txt) == [None] and not txt["text"][0].as_py().startswith("\ufeff")


def test_lone_surrogate_escapes_are_bad_encoding_not_a_crash(tmp_path):
    good = good_lines(1)[0]
    path = tmp_path / "surrogates.jsonl"
    path.write_bytes(
        good
        + b'{"text": "bad \\ud800 x"}\n'
        + good
        + b'{"text": "fine", "url": "http://a.example/\\udc80"}\n'
        + b'{"text": "fine", "title": "\\udfff"}\n'
        + good
    )
    table = read_source([str(path)])
    assert reasons(table) == [None, "bad_encoding", None, "bad_encoding", "bad_encoding", None]
    assert_quarantine_marked(table)
    raw = table["text"][1].as_py()
    assert "bad \\ud800 x" in raw and "surrogate" in raw  # escaped, with the reason


def test_nul_in_text_is_binary_content_and_random_bytes_are_bad_encoding(tmp_path):
    good = good_lines(1)[0]
    (tmp_path / "nul.jsonl").write_bytes(good + b'{"text": "PK\\u0003\\u0004\\u0000 zip"}\n' + good)
    (tmp_path / "nul.txt").write_bytes(b"text\x00with a NUL byte")
    (tmp_path / "random.txt").write_bytes(random.Random(1).randbytes(1000))
    table = read_source([str(tmp_path)])
    assert dict(zip(table["id"].to_pylist(), reasons(table))) == {
        "src/nul.jsonl#0": None,
        "src/nul.jsonl#1": "binary_content",
        "src/nul.jsonl#2": None,
        "src/nul.txt#0": "binary_content",
        "src/random.txt#0": "bad_encoding",
    }
    assert "NUL byte" in table["text"][1].as_py()


# --------------------------------------------------------------------------- text types


def test_text_null_number_list_map_to_the_same_reasons_in_jsonl_and_parquet(tmp_path):
    good = good_lines(1)[0]
    (tmp_path / "types.jsonl").write_bytes(
        good + b'{"text": null}\n{"text": 42}\n{"text": ["a", "b"]}\n{"text": {"a": 1}}\n{"text": "  "}\n' + good
    )
    assert reasons(read_source([str(tmp_path / "types.jsonl")])) == [
        None,
        "empty_text",
        "text_not_string",
        "text_not_string",
        "text_not_string",
        "empty_text",
        None,
    ]
    pq.write_table(pa.table({"text": ["A document.", None, " "]}), tmp_path / "strings.parquet")
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "numbers.parquet")
    pq.write_table(pa.table({"text": [["a"], None]}), tmp_path / "lists.parquet")
    assert reasons(read_source([str(tmp_path / "strings.parquet")])) == [None, "empty_text", "empty_text"]
    assert reasons(read_source([str(tmp_path / "numbers.parquet")])) == ["text_not_string"] * 2
    assert reasons(read_source([str(tmp_path / "lists.parquet")])) == ["text_not_string", "empty_text"]


# --------------------------------------------------------------------------- files


def test_files_of_unknown_format_are_quarantined_not_fatal(tmp_path):
    shutil.copy(os.path.join(INGEST, "good.jsonl"), tmp_path / "docs.jsonl")
    (tmp_path / "README.md").write_text("# notes\n")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    files = list_input_files(SourceConfig(name="src", paths=[str(tmp_path)]))
    assert {f.relpath: f.format for f in files} == {
        ".DS_Store": UNSUPPORTED,
        "README.md": UNSUPPORTED,
        "docs.jsonl": "jsonl",
    }
    table = read_source([str(tmp_path)])
    by_id = dict(zip(table["id"].to_pylist(), reasons(table)))
    assert by_id.pop("src/.DS_Store#0") == by_id.pop("src/README.md#0") == "unsupported_format"
    assert set(by_id.values()) == {None} and len(by_id) == 3
    raw = table.filter(pa.compute.equal(table["id"], "src/README.md#0"))["text"][0].as_py()
    assert "README.md" in raw and "`format:`" in raw


def test_unknown_configured_format_is_a_config_error():
    file = InputFile("src", os.path.join(INGEST, "good.jsonl"), "good.jsonl", "csv", "text", None, "url")
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        list(read_file(file))


def test_corrupt_parquet_is_unreadable_and_missing_column_is_one_record():
    corrupt = read_source([os.path.join(BAD, "corrupt.parquet")])
    assert reasons(corrupt) == ["unreadable_file"]
    assert "corrupt.parquet" in corrupt["text"][0].as_py() and "ArrowInvalid" in corrupt["text"][0].as_py()
    table = read_source([os.path.join(INGEST, "docs.parquet")], text_field="body")
    assert reasons(table) == ["missing_text_field"]
    raw = table["text"][0].as_py()
    assert "docs.parquet" in raw and "'body'" in raw and "['text', 'url']" in raw and "`text_field:`" in raw


def test_empty_files_are_one_empty_file_record_each(tmp_path):
    for name in ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst", "d.parquet", "e.txt", "f.warc.gz", "g.warc.wet"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n  \n")  # no record in it either
    table = read_source([str(tmp_path)])
    assert reasons(table) == ["empty_file"] * 8
    assert [i.split("#")[1] for i in table["id"].to_pylist()] == ["0"] * 8


def test_any_library_error_ends_the_file_with_unreadable_file_after_the_records_read(tmp_path, monkeypatch):
    (tmp_path / "garbage.jsonl.zst").write_bytes(b"this is not zstd at all" * 10)
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 but nothing else")
    (tmp_path / "garbage.warc").write_bytes(b"\x00\x01 binary junk")
    (tmp_path / "text.warc").write_bytes(b"this is not a WARC file\r\n" * 10)  # warcio reads it as ARC
    table = read_source([str(tmp_path)])
    assert reasons(table) == ["unreadable_file"] * 4
    raws = table["text"].to_pylist()
    assert "ZstdError" in raws[0] and "ArrowInvalid" in raws[1] and "ArchiveLoadFailed" in raws[2]
    assert "ValueError: not a WARC file" in raws[3]

    def failing(file, cap):  # any exception type, raised after two good records
        yield ingest.Record(text="one")
        yield ingest.Record(text="two")
        raise ValueError("library says no")

    monkeypatch.setitem(ingest.READERS, "jsonl", failing)
    table = read_source([os.path.join(INGEST, "good.jsonl")])
    assert reasons(table) == [None, None, "unreadable_file"]
    assert table["id"].to_pylist() == ["src/good.jsonl#0", "src/good.jsonl#1", "src/good.jsonl#2"]
    assert table["text"][2].as_py().endswith("good.jsonl: ValueError: library says no")


def test_duplicate_original_ids_within_a_source_are_both_kept():
    table = read_source([os.path.join(BAD, "duplicate_ids.jsonl")], id_field="id")
    assert reasons(table) == [None, None, None]
    assert len(set(table["id"].to_pylist())) == 3
    assert [json.loads(m)["original_id"] for m in table["metadata"].to_pylist()] == ["c4-dup", "c4-dup", "c4-other"]


def test_every_file_of_the_bad_corpus_is_read_without_error():
    table = read_source([BAD], id_field="id")
    assert_quarantine_marked(table)
    assert table["drop_stage"].null_count == 32  # the good documents (tests/fixtures/README.md, bad/)
    assert len(set(table["id"].to_pylist())) == table.num_rows


# --------------------------------------------------------------------------- URIs (pyarrow filesystems)


def _kept_view(table):
    """What must not depend on how a file is named: ids, reasons, and the text of kept records
    (a quarantined record's text names the file's path)."""
    texts = [None if reason else text for text, reason in zip(table["text"].to_pylist(), reasons(table))]
    return table["id"].to_pylist(), reasons(table), texts, table["url"].to_pylist()


def test_a_uri_source_lists_and_reads_like_the_same_local_files():
    """`file://` goes through the same pyarrow filesystem code as `s3://` (tests/pipelines/
    test_s3_e2e.py reads from a local S3 server): same files, sizes, mtimes, ids and records,
    truncated gzip/zstd/WARC, corrupt Parquet and empty files quarantined alike."""
    for directory in (INGEST, BAD):
        local = list_input_files(SourceConfig(name="src", paths=[directory]))
        remote = list_input_files(SourceConfig(name="src", paths=["file://" + directory]))
        assert [f.path for f in remote] == ["file://" + f.path for f in local]
        assert [(f.relpath, f.format, f.size, f.mtime_ns) for f in remote] == [
            (f.relpath, f.format, f.size, f.mtime_ns) for f in local
        ]
        assert all(f.size > 0 or f.relpath == "empty.jsonl" for f in remote)
        local_table = read_source([directory], id_field="id")
        remote_table = read_source(["file://" + directory], id_field="id")
        assert _kept_view(remote_table) == _kept_view(local_table)
    assert "unreadable_file" in reasons(remote_table) and "empty_file" in reasons(remote_table)


def test_uri_globs_match_what_local_globs_match(tmp_path):
    for name in ("top.jsonl", "a/x.jsonl", "a/y.jsonl.gz", "a/b/z.jsonl", "a/b/deep/v.txt", "c/w.jsonl", "a/q1.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(good_lines(1)[0])
    for pattern in (
        "*.jsonl",
        "a/*",
        "a/*.jsonl",
        "**/*.jsonl",
        "a/**",
        "a/?.jsonl",
        "[ac]/*.jsonl",
        "a/[!x]*",
        "*/b",
        "a",
        "a/b/deep/v.txt",
    ):
        local = list_input_files(SourceConfig(name="src", paths=[str(tmp_path / pattern)]))
        remote = list_input_files(SourceConfig(name="src", paths=[f"file://{tmp_path}/{pattern}"]))
        assert [f.path for f in remote] == ["file://" + f.path for f in local], pattern
        assert [f.relpath for f in remote] == [f.relpath for f in local], pattern
    for missing in ("nothing*.jsonl", "missing_dir", "a/*.parquet"):
        with pytest.raises(FileNotFoundError, match="no file matches"):
            list_input_files(SourceConfig(name="src", paths=[f"file://{tmp_path}/{missing}"]))
