"""Ingest: turn input files into document batches, quarantining malformed records.

Formats: JSONL (plain, .gz, .zst), Parquet, folders of .txt, WARC (HTML main
text extracted with trafilatura, as datatrove's WarcReader does) and WET.
Every record gets a stable id `source/relative/path#index`, so ids do not
depend on the machine, the worker or the order files are read in.

Readers are written here rather than reusing datatrove's because datatrove's
readers skip bad records with a log line; this pipeline must count and keep
every one of them (quarantine with a reason).
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from stages.base import DOCUMENT_SCHEMA, QUARANTINE_STAGE

FORMATS = ("jsonl", "parquet", "txt", "warc", "wet")
QUARANTINE_SNIPPET_CHARS = 2000


@dataclass(frozen=True)
class SourceConfig:
    """One named input source of the corpus (see configs/corpus.yaml)."""

    name: str
    paths: list[str]
    format: str = "auto"
    text_field: str = "text"
    id_field: str | None = None  # kept in metadata as `original_id` when present
    url_field: str = "url"
    priority: int = 100  # dedup keeps the document from the lowest-priority-number source


@dataclass(frozen=True)
class InputFile:
    source: str
    path: str
    relpath: str  # relative to the source's common root: the stable part of ids
    format: str
    text_field: str
    id_field: str | None
    url_field: str


@dataclass
class Record:
    text: str | None = None
    url: str | None = None
    metadata: dict = field(default_factory=dict)
    reason: str | None = None  # set for a quarantined record
    raw: str | None = None  # what we could read of a quarantined record


def detect_format(path: str) -> str:
    name = os.path.basename(path).lower()
    for suffix in (".gz", ".zst", ".zstd"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".wet") or name.endswith(".warc.wet"):
        return "wet"
    for ext, fmt in ((".warc", "warc"), (".jsonl", "jsonl"), (".json", "jsonl"), (".ndjson", "jsonl"),
                     (".parquet", "parquet"), (".txt", "txt")):
        if name.endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the format of {path!r} from its name; set `format:` on its source")


def list_input_files(source: SourceConfig) -> list[InputFile]:
    """Expand a source's globs (directories mean every file below them), sorted for determinism."""
    matched: list[str] = []
    for pattern in source.paths:
        hits = glob.glob(pattern, recursive=True)
        if not hits:
            raise FileNotFoundError(f"source {source.name!r}: no file matches {pattern!r} (cwd {os.getcwd()})")
        for hit in hits:
            if os.path.isdir(hit):
                matched.extend(
                    os.path.join(root, name) for root, _, names in os.walk(hit) for name in names
                )
            else:
                matched.append(hit)
    paths = sorted(set(os.path.abspath(p) for p in matched))
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    return [
        InputFile(
            source=source.name,
            path=path,
            relpath=os.path.relpath(path, root),
            format=detect_format(path) if source.format == "auto" else source.format,
            text_field=source.text_field,
            id_field=source.id_field,
            url_field=source.url_field,
        )
        for path in paths
    ]


def open_binary(path: str) -> io.BufferedIOBase:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith((".zst", ".zstd")):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
    return open(path, "rb")


def _decode(data: bytes) -> str | Record:
    """UTF-8 text, or a quarantined record showing what could be read and where it broke."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        return Record(reason="bad_encoding", raw=data.decode("utf-8", "replace")[:QUARANTINE_SNIPPET_CHARS]
                      + f"\n[{error}]")


def _text_record(text, url, metadata) -> Record:
    if not isinstance(text, str):
        return Record(reason="text_not_string", raw=json.dumps(text, default=str)[:QUARANTINE_SNIPPET_CHARS])
    if not text.strip():
        return Record(reason="empty_text", raw=text)
    return Record(text=text, url=url if isinstance(url, str) else None, metadata=metadata)


def read_jsonl(file: InputFile) -> Iterator[Record]:
    with open_binary(file.path) as handle:
        for line in handle:
            if not line.strip():
                continue  # blank separator lines hold no record
            decoded = _decode(line)
            if isinstance(decoded, Record):
                yield decoded
                continue
            try:
                obj = json.loads(decoded)
            except json.JSONDecodeError:
                yield Record(reason="bad_json", raw=decoded[:QUARANTINE_SNIPPET_CHARS])
                continue
            if not isinstance(obj, dict):
                yield Record(reason="not_an_object", raw=decoded[:QUARANTINE_SNIPPET_CHARS])
                continue
            if file.text_field not in obj:
                yield Record(reason="missing_text_field", raw=decoded[:QUARANTINE_SNIPPET_CHARS])
                continue
            yield _text_record(obj.pop(file.text_field), obj.pop(file.url_field, None), _metadata(obj, file))


def _metadata(obj: dict, file: InputFile) -> dict:
    if file.id_field and file.id_field in obj:
        obj["original_id"] = obj.pop(file.id_field)
    nested = obj.pop("metadata", None)
    if isinstance(nested, dict):
        obj = {**nested, **obj}
        if "url" in nested and file.url_field == "url":
            obj.pop("url")
    return obj


def read_parquet(file: InputFile) -> Iterator[Record]:
    parquet = pq.ParquetFile(file.path)
    if file.text_field not in parquet.schema_arrow.names:
        raise ValueError(
            f"{file.path}: no column {file.text_field!r} (columns: {parquet.schema_arrow.names}); "
            f"set `text_field:` on source {file.source!r}"
        )
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            text = row.pop(file.text_field)
            if text is None:
                yield Record(reason="empty_text", raw="")
                continue
            yield _text_record(text, row.pop(file.url_field, None), _metadata(row, file))


def read_txt(file: InputFile) -> Iterator[Record]:
    with open(file.path, "rb") as handle:
        data = handle.read()
    text = _decode(data)
    yield text if isinstance(text, Record) else _text_record(text, None, {})


def _warc_records(path: str, record_type: str):
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as handle:
        for record in ArchiveIterator(handle):
            if record.rec_type == record_type:
                yield record


def read_warc(file: InputFile) -> Iterator[Record]:
    import trafilatura

    for record in _warc_records(file.path, "response"):
        headers = record.rec_headers
        url = headers.get_header("WARC-Target-URI")
        meta = {"warc_record_id": headers.get_header("WARC-Record-ID"), "date": headers.get_header("WARC-Date")}
        content_type = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
        payload = record.content_stream().read()
        if "html" not in content_type.lower():
            yield Record(reason="unsupported_content_type", raw=f"{url} {content_type}", metadata=meta)
            continue
        try:
            text = trafilatura.extract(payload, favor_precision=True, include_comments=False, deduplicate=False)
        except Exception as error:  # trafilatura raises assorted lxml errors on broken HTML
            yield Record(reason="html_extraction_failed", raw=f"{url} {error}"[:QUARANTINE_SNIPPET_CHARS])
            continue
        if not text or not text.strip():
            yield Record(reason="no_extractable_text", raw=str(url))
            continue
        yield Record(text=text, url=url, metadata=meta)


def read_wet(file: InputFile) -> Iterator[Record]:
    for record in _warc_records(file.path, "conversion"):
        headers = record.rec_headers
        raw = record.content_stream().read()
        text = _decode(raw)
        if isinstance(text, Record):
            yield text
            continue
        meta = {"warc_record_id": headers.get_header("WARC-Record-ID"), "date": headers.get_header("WARC-Date")}
        yield _text_record(text, headers.get_header("WARC-Target-URI"), meta)


def _records_or_unreadable(file: InputFile) -> Iterator[Record]:
    """The file's records; a file that breaks mid-way (truncated gzip, corrupt zstd or
    Parquet) ends with one quarantined record saying so instead of failing the run."""
    try:
        yield from READERS[file.format](file)
    except (OSError, EOFError, pa.ArrowInvalid) as error:
        yield Record(reason="unreadable_file", raw=f"{file.path}: {type(error).__name__}: {error}")


READERS = {"jsonl": read_jsonl, "parquet": read_parquet, "txt": read_txt, "warc": read_warc, "wet": read_wet}


def read_file(file: InputFile, batch_rows: int = 1000) -> Iterator[pa.Table]:
    """Document batches of one input file, quarantined records included (marked)."""
    if file.format not in READERS:
        raise ValueError(f"source {file.source!r}: unknown format {file.format!r}; choose from {FORMATS}")
    rows: dict[str, list] = {name: [] for name in DOCUMENT_SCHEMA.names}
    for index, record in enumerate(_records_or_unreadable(file)):
        rows["id"].append(f"{file.source}/{file.relpath}#{index}")
        rows["source"].append(file.source)
        quarantined = record.reason is not None
        rows["text"].append(record.raw if quarantined else record.text)
        rows["url"].append(record.url)
        rows["metadata"].append(json.dumps(record.metadata, ensure_ascii=False, sort_keys=True, default=str))
        rows["drop_stage"].append(QUARANTINE_STAGE if quarantined else None)
        rows["drop_reason"].append(record.reason)
        if len(rows["id"]) >= batch_rows:
            yield pa.table(rows, schema=DOCUMENT_SCHEMA)
            rows = {name: [] for name in DOCUMENT_SCHEMA.names}
    if rows["id"]:
        yield pa.table(rows, schema=DOCUMENT_SCHEMA)
