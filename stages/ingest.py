"""Ingest: turn input files into document batches, quarantining malformed records.

Formats: JSONL (plain, .gz, .zst), Parquet, folders of .txt, WARC (HTML main
text extracted with trafilatura, as datatrove's WarcReader does) and WET.
Every record gets a stable id `source/relative/path#index` (index: the
record's position in its file, quarantined records included), so ids do not
depend on the machine, the worker or the order files are read in. Ids are
unique by construction: two records of a source carrying the same original id
(`id_field`) are both kept, each with its own id and its `original_id` in
metadata; deduplication is the dedup stages' job, not ingest's.

Input data never aborts a run: every bad record, and every file that cannot be
read to its end, becomes a quarantined record with one of these reasons (the
record's `text` shows what could be read and why it was refused):

| reason | meaning |
| --- | --- |
| `bad_json` | a JSONL line is not valid JSON |
| `not_an_object` | a JSONL line is valid JSON but not an object (e.g. an array) |
| `missing_text_field` | no `text_field` key in a JSON object; or a Parquet file without that column (one record) |
| `empty_text` | the text is null, empty or only whitespace (JSONL and Parquet alike) |
| `text_not_string` | the text is a number, list, object or boolean |
| `bad_encoding` | not valid UTF-8, or a lone surrogate (a JSON `\\ud800` escape) in text, url or metadata |
| `binary_content` | the text contains a NUL byte: binary data mistaken for text |
| `too_large` | the text is over `max_doc_bytes` UTF-8 bytes (a JSONL line over JSONL_LINE_FACTOR x that: unparsed) |
| `empty_file` | the file holds no record at all (0 bytes, only blank lines, no WARC response records) |
| `unsupported_format` | the file's format cannot be told from its name (e.g. a README.md in a source folder) |
| `unreadable_file` | reading failed part-way (truncated gzip/zstd/WARC, bad Parquet, any error); earlier records kept |
| `unsupported_content_type` | a WARC response that is not HTML |
| `html_extraction_failed` | trafilatura raised on a WARC response's HTML |
| `no_extractable_text` | trafilatura found no main text in a WARC response |

Reading is streaming and bounded by `max_doc_bytes`: a 60 MB JSONL line, a
2 GB .txt or a huge WARC payload is never held in memory whole (the rest is
read and thrown away); a JSONL line costs at most a few times
JSONL_LINE_FACTOR x max_doc_bytes (bytes, decoded string, parsed text).
Batches are bounded in rows and in bytes of text.
Parquet is read a record batch at a time (a row group's column chunk is the
smallest unit Parquet can read).

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
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.workdir import GLOB_CHARS, filesystem, list_uri
from stages.base import DOCUMENT_SCHEMA, QUARANTINE_STAGE

FORMATS = ("jsonl", "parquet", "txt", "warc", "wet")
UNSUPPORTED = "unsupported"  # InputFile.format of a file whose format its name does not tell
QUARANTINE_SNIPPET_CHARS = 2000
BATCH_ROWS = 1000
MAX_DOC_BYTES = 10_000_000  # UTF-8 bytes of one document's text
MAX_BATCH_BYTES = 64 * 2**20  # bytes of text in one batch
# A JSONL line is read with at most this many times max_doc_bytes in memory, and a longer one
# is refused as too_large unparsed. JSON escaping at most doubles the size of ordinary text
# (\uXXXX for a 3-byte character), so a line refused this way almost always holds a text over
# the cap; only a text dense in escaped emoji or control characters can be refused under it.
JSONL_LINE_FACTOR = 2
READ_CHUNK = 1 << 20
BOM = b"\xef\xbb\xbf"


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
    format: str  # one of FORMATS, or UNSUPPORTED
    text_field: str
    id_field: str | None
    url_field: str
    size: int = 0  # bytes and modification time at listing: a changed file makes the run start afresh
    mtime_ns: int = 0


@dataclass
class Record:
    text: str | None = None
    url: str | None = None
    metadata: dict = field(default_factory=dict)
    reason: str | None = None  # set for a quarantined record
    raw: str | None = None  # what we could read of a quarantined record, and why it was refused


def detect_format(path: str) -> str:
    name = os.path.basename(path).lower()
    for suffix in (".gz", ".zst", ".zstd"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".wet") or name.endswith(".warc.wet"):
        return "wet"
    for ext, fmt in (
        (".warc", "warc"),
        (".jsonl", "jsonl"),
        (".json", "jsonl"),
        (".ndjson", "jsonl"),
        (".parquet", "parquet"),
        (".txt", "txt"),
    ):
        if name.endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the format of {path!r} from its name; set `format:` on its source")


def list_input_files(source: SourceConfig) -> list[InputFile]:
    """Expand a source's globs (directories mean every file below them), sorted for determinism.

    A path is local or a URI (`s3://bucket/prefix`, `gs://...`: a prefix means every object
    below it; `*`, `?`, `[...]` match within a path segment, `**` across segments). Files are
    named by absolute paths or full URIs, so a Ray worker on any node opens the same file.
    A pattern matching nothing is a config error (raised before the run); a stray file whose
    format its name does not tell (README.md, .DS_Store) is data: it gets format UNSUPPORTED and
    becomes one quarantined record."""
    found: dict[str, pafs.FileInfo] = {}  # path or URI -> its size and mtime
    roots = []
    for pattern in source.paths:
        hits = list_uri(pattern) if "://" in pattern else _list_local(pattern)
        if hits is None:
            where = "" if "://" in pattern else f" (cwd {os.getcwd()})"
            raise FileNotFoundError(f"source {source.name!r}: no file matches {pattern!r}{where}")
        found.update(hits)
        roots.append(_pattern_root(pattern, hits))
    paths = sorted(found)
    if not paths:
        raise FileNotFoundError(f"source {source.name!r}: no file under {source.paths} (empty directories)")
    # ids are relative to a root that the config alone fixes, so adding a file never renames
    # the others (ids decide dedup survivors and the validation split)
    uri = any("://" in p for p in paths)
    root = (posixpath if uri else os.path).commonpath(roots)
    return [
        InputFile(
            source=source.name,
            path=path,
            relpath=posixpath.relpath(_path_part(path), root) if "://" in path else os.path.relpath(path, root),
            format=_auto_format(path) if source.format == "auto" else source.format,
            text_field=source.text_field,
            id_field=source.id_field,
            url_field=source.url_field,
            size=found[path].size or 0,
            mtime_ns=found[path].mtime_ns or 0,
        )
        for path in paths
    ]


def _list_local(pattern: str) -> dict[str, pafs.FileInfo] | None:
    """Local files a pattern names (glob, `**` included; a directory: every file below it), by
    absolute path; None when the pattern matches nothing."""
    hits = glob.glob(pattern, recursive=True)
    if not hits:
        return None
    matched: list[str] = []
    for hit in hits:
        if os.path.isdir(hit):
            matched.extend(os.path.join(root, name) for root, _, names in os.walk(hit) for name in names)
        else:
            matched.append(hit)
    paths = sorted(set(os.path.abspath(p) for p in matched))
    return dict(zip(paths, pafs.LocalFileSystem().get_file_info(paths)))


def _pattern_root(pattern: str, hits: dict) -> str:
    """The folder a source pattern's files are named from: the part before its first glob
    segment; for a plain path, the folder it names, or the folder of the file it names (as
    `_path_part` for URIs, absolute for local paths)."""
    uri = "://" in pattern
    glob_at = GLOB_CHARS.search(pattern)
    if glob_at is not None:
        fixed = pattern[: pattern.rfind("/", 0, glob_at.start()) + 1] or "."
    elif uri and len(hits) == 1 and _path_part(next(iter(hits))).rstrip("/") == _path_part(pattern).rstrip("/"):
        fixed = posixpath.dirname(pattern.rstrip("/"))
    elif not uri and os.path.isfile(pattern):
        fixed = os.path.dirname(pattern) or "."
    else:
        fixed = pattern
    return posixpath.normpath(_path_part(fixed)) if uri else os.path.abspath(fixed)


def _path_part(path: str) -> str:
    """A URI's path (`s3://bucket/a/b` -> `/bucket/a/b`), or a local path as it is."""
    if "://" not in path:
        return path
    rest = path.partition("://")[2]
    return "/" + rest if not rest.startswith("/") else rest


def _auto_format(path: str) -> str:
    try:
        return detect_format(path)
    except ValueError:
        return UNSUPPORTED


def open_file(path: str) -> io.BufferedReader:
    """A buffered, seekable binary file for a local path or a URI, through its pyarrow filesystem.
    A remote file's buffer is READ_CHUNK: each refill is a request, and a readline() must not
    cost one per few kilobytes."""
    fs, where = filesystem(path)
    return io.BufferedReader(fs.open_input_file(where), READ_CHUNK if "://" in path else io.DEFAULT_BUFFER_SIZE)


def file_size(path: str) -> int:
    fs, where = filesystem(path)
    info = fs.get_file_info(where)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such file: {path!r}")
    return info.size


class _ZstdReader(io.RawIOBase):
    """Decompressed bytes of a .zst file, raising EOFError where the file ends inside a frame:
    zstandard's stream_reader (zstandard 0.25) just stops there, silently dropping the tail."""

    def __init__(self, path: str):
        import zstandard

        self._path = path
        self._file = open_file(path)
        # read_across_frames: files from pzstd or appended streams hold several frames
        self._stream = zstandard.ZstdDecompressor().stream_reader(self._file, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._stream.readinto(buffer)
        if count == 0:
            cut = _zstd_cut(self._path)
            if cut:
                raise EOFError(cut)
        return count

    def close(self) -> None:
        if not self.closed:
            self._stream.close()  # closes self._file too
        super().close()


def _zstd_cut(path: str) -> str | None:
    """Why a zstd file is cut short, or None when all its frames are complete. Walks the frame
    and block headers (seeks, no decompression), so it costs little even on a large file."""
    import zstandard

    # Buffered: the block headers near each other come from one read, not one request each (a
    # URI); positions are computed, never sought past the end (S3 files refuse that).
    with open_file(path) as handle:
        size = handle.raw.size()
        position = 0
        while position < size:
            start = position
            handle.seek(start)
            head = handle.read(18)  # the longest frame header
            if int.from_bytes(head[:4], "little") & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
                position = start + 8 + int.from_bytes(head[4:8], "little")
                continue
            try:
                header_size = zstandard.frame_header_size(head)
                has_checksum = zstandard.get_frame_parameters(head).has_checksum
            except zstandard.ZstdError:
                return f"truncated zstd stream: the file ends in a frame header at byte {start:,}"
            position = start + header_size
            last = False
            while not last and size - position >= 3:
                handle.seek(position)
                value = int.from_bytes(handle.read(3), "little")
                last = bool(value & 1)
                position += 3 + (1 if (value >> 1) & 3 == 1 else value >> 3)  # RLE: 1 byte
            if not last or position + 4 * has_checksum > size:
                return (
                    f"truncated zstd stream: the file ({size:,} bytes) ends inside the frame starting at byte {start:,}"
                )
            position += 4 * has_checksum
    return None


@contextmanager
def open_binary(path: str) -> Iterator[io.BufferedIOBase]:
    """The decompressed bytes of a local file or a URI (.gz and .zst/.zstd by name)."""
    if path.endswith(".gz"):
        with open_file(path) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as handle:
            yield handle  # raises EOFError at a truncated end
    elif path.endswith((".zst", ".zstd")):
        with io.BufferedReader(_ZstdReader(path), READ_CHUNK) as handle:
            yield handle
    else:
        with open_file(path) as handle:
            yield handle


def _read_upto(handle, limit: int) -> bytes:
    """Up to `limit` bytes (fewer only at the end), read in chunks: a small file does not
    cost a `limit`-sized buffer, and some streams return short reads."""
    chunks, count = [], 0
    while count < limit:
        chunk = handle.read(min(READ_CHUNK, limit - count))
        if not chunk:
            break
        chunks.append(chunk)
        count += len(chunk)
    return b"".join(chunks)


def _drain(handle) -> int:
    """Read the rest of a stream without keeping it; its size in bytes."""
    count = 0
    while chunk := handle.read(READ_CHUNK):
        count += len(chunk)
    return count


def _snippet(data: bytes | str) -> str:
    """The first QUARANTINE_SNIPPET_CHARS characters, for a quarantined record's text."""
    if isinstance(data, bytes):
        data = data[: 4 * QUARANTINE_SNIPPET_CHARS].decode("utf-8", "replace")
    return data[:QUARANTINE_SNIPPET_CHARS].rstrip("\r\n")


def _too_large(head: bytes | str, size: int, cap: int, what: str = "document text") -> Record:
    return Record(reason="too_large", raw=f"{_snippet(head)}\n[{what} of {size:,} bytes, over max_doc_bytes = {cap:,}]")


def _decode(data: bytes) -> str | Record:
    """UTF-8 text, or a quarantined record showing what could be read and where it broke."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        return Record(reason="bad_encoding", raw=f"{_snippet(data)}\n[not valid UTF-8: {error}]")


def _text_record(text, url, metadata) -> Record:
    if text is None or (isinstance(text, str) and not text.strip()):
        return Record(
            reason="empty_text",
            raw=f"{text if text is not None else ''}\n[the text is "
            f"{'null' if text is None else 'empty or only whitespace'}]",
        )
    if not isinstance(text, str):
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
        return Record(
            reason="text_not_string",
            raw=f"{_snippet(json.dumps(text, default=str))}\n[the text is "
            f"{kind.get(type(text), type(text).__name__)}, not a string]",
        )
    return Record(text=text, url=url if isinstance(url, str) else None, metadata=metadata)


def read_jsonl(file: InputFile, cap: int) -> Iterator[Record]:
    limit = JSONL_LINE_FACTOR * cap
    with open_binary(file.path) as handle:
        first = True
        # readline(limit + 1) bounds memory: a longer line is counted and thrown away, not held.
        while line := handle.readline(limit + 1):
            if len(line) > limit and not line.endswith(b"\n"):
                size = len(line) + _discard_line(handle)
                yield _too_large(line, size, cap, f"JSONL line (not parsed, over {JSONL_LINE_FACTOR} x max_doc_bytes)")
                first = False
                continue
            if first:
                line, first = line.removeprefix(BOM), False  # a UTF-8 BOM opens some exported files
            if not line.strip():
                continue  # blank separator lines hold no record
            decoded = _decode(line)
            if isinstance(decoded, Record):
                yield decoded
                continue
            try:
                obj = json.loads(decoded)
            except (ValueError, RecursionError) as error:  # RecursionError: absurdly nested arrays
                yield Record(reason="bad_json", raw=f"{_snippet(decoded)}\n[{type(error).__name__}: {error}]")
                continue
            if not isinstance(obj, dict):
                kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
                yield Record(
                    reason="not_an_object",
                    raw=f"{_snippet(decoded)}\n[JSON {kind.get(type(obj), 'null')}, not an object]",
                )
                continue
            if file.text_field not in obj:
                yield Record(
                    reason="missing_text_field",
                    raw=f"{_snippet(decoded)}\n[no key {file.text_field!r}; "
                    f"set `text_field:` on source {file.source!r}]",
                )
                continue
            yield _text_record(obj.pop(file.text_field), obj.pop(file.url_field, None), _metadata(obj, file))


def _discard_line(handle) -> int:
    """Read the rest of the current line without keeping it; its size in bytes."""
    count = 0
    while chunk := handle.readline(READ_CHUNK):
        count += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return count


def _metadata(obj: dict, file: InputFile) -> dict:
    if file.id_field and file.id_field in obj:
        obj["original_id"] = obj.pop(file.id_field)
    nested = obj.pop("metadata", None)
    if isinstance(nested, dict):
        obj = {**nested, **obj}
        if "url" in nested and file.url_field == "url":
            obj.pop("url")
    return obj


def read_parquet(file: InputFile, cap: int) -> Iterator[Record]:
    fs, where = filesystem(file.path)
    with fs.open_input_file(where) as source:
        parquet = pq.ParquetFile(source)  # a corrupt footer raises here: unreadable_file
        names = parquet.schema_arrow.names
        if file.text_field not in names:
            yield Record(
                reason="missing_text_field",
                raw=f"{file.path}: no column {file.text_field!r} "
                f"(columns: {names}); set `text_field:` on source {file.source!r}",
            )
            return
        for batch in parquet.iter_batches(batch_size=256):  # text sizes are capped later, per document
            for row in batch.to_pylist():
                yield _text_record(row.pop(file.text_field), row.pop(file.url_field, None), _metadata(row, file))


def read_txt(file: InputFile, cap: int) -> Iterator[Record]:
    """The whole file is one document (read up to the cap; a larger one is measured, not kept)."""
    with open_binary(file.path) as handle:
        data = _read_upto(handle, cap + len(BOM) + 1).removeprefix(BOM)
        if len(data) > cap:
            yield _too_large(data, len(data) + _drain(handle), cap)
            return
    text = _decode(data)
    yield text if isinstance(text, Record) else _text_record(text, None, {})


def _warc_records(path: str, record_type: str):
    """WARC records of one type; every record, yielded or skipped, is checked to be complete."""
    from warcio.archiveiterator import ArchiveIterator

    with open_file(path) as handle:  # warcio decompresses .warc.gz itself
        for record in ArchiveIterator(handle):
            if record.format != "warc":  # warcio reads any text file as ARC records of junk
                raise ValueError(f"not a WARC file: warcio found an {record.format.upper()} record")
            if record.rec_type == record_type:
                yield record
            _check_complete(record)


def _check_complete(record) -> None:
    """Raise if the file ended before the record's Content-Length: warcio then just returns a
    short payload, which would pass for a whole (shorter) document."""
    _drain(record.raw_stream)
    missing = getattr(record.raw_stream, "limit", 0)  # LimitReader: bytes of Content-Length not read
    if missing:
        raise EOFError(
            f"truncated WARC: record {record.rec_headers.get_header('WARC-Record-ID')} "
            f"ends {missing:,} bytes short of its Content-Length {record.length:,}"
        )


def _payload(record, cap: int) -> tuple[bytes, int]:
    """The first cap + 1 bytes of a record's payload and its full size (the rest is read and
    thrown away); raises if the file is cut inside the record."""
    stream = record.content_stream()
    head = _read_upto(stream, cap + 1)
    size = len(head) + _drain(stream)
    _check_complete(record)
    return head, size


def _warc_meta(headers) -> dict:
    return {"warc_record_id": headers.get_header("WARC-Record-ID"), "date": headers.get_header("WARC-Date")}


def read_warc(file: InputFile, cap: int) -> Iterator[Record]:
    import trafilatura

    for record in _warc_records(file.path, "response"):
        url = record.rec_headers.get_header("WARC-Target-URI")
        meta = _warc_meta(record.rec_headers)
        content_type = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
        payload, size = _payload(record, cap)  # before any verdict: a cut record is the file's error
        if "html" not in content_type.lower():
            yield Record(reason="unsupported_content_type", raw=f"{url} {content_type}", metadata=meta)
            continue
        if size > cap:
            yield _too_large(payload, size, cap, f"HTML of {url}")
            continue
        try:
            text = trafilatura.extract(payload, favor_precision=True, include_comments=False, deduplicate=False)
        except Exception as error:  # trafilatura raises assorted lxml errors on broken HTML
            yield Record(reason="html_extraction_failed", raw=_snippet(f"{url} {error}"))
            continue
        if not text or not text.strip():
            yield Record(reason="no_extractable_text", raw=str(url))
            continue
        yield Record(text=text, url=url, metadata=meta)


def read_wet(file: InputFile, cap: int) -> Iterator[Record]:
    for record in _warc_records(file.path, "conversion"):
        payload, size = _payload(record, cap)
        if size > cap:
            yield _too_large(payload, size, cap)
            continue
        text = _decode(payload)
        if isinstance(text, Record):
            yield text
            continue
        yield _text_record(text, record.rec_headers.get_header("WARC-Target-URI"), _warc_meta(record.rec_headers))


READERS = {"jsonl": read_jsonl, "parquet": read_parquet, "txt": read_txt, "warc": read_warc, "wet": read_wet}


def _records(file: InputFile, cap: int) -> Iterator[Record]:
    """The file's records. A file that breaks mid-way (truncated gzip, zstd or WARC, corrupt
    Parquet, any library error) ends with one quarantined record saying so instead of failing
    the run; a file with nothing in it is one record too, so it shows in the accounting."""
    if file.format == UNSUPPORTED:
        yield Record(
            reason="unsupported_format",
            raw=f"{file.path}: cannot tell the format from the file "
            f"name; set `format:` ({', '.join(FORMATS)}) on source {file.source!r} or move the file",
        )
        return
    count = 0
    try:
        if file_size(file.path) == 0:
            yield Record(reason="empty_file", raw=f"{file.path}: the file is empty (0 bytes)")
            return
        for record in READERS[file.format](file, cap):
            count += 1
            yield record
    except Exception as error:  # noqa: BLE001 - whatever a library raises on bad data must not stop the run
        count += 1
        yield Record(reason="unreadable_file", raw=f"{file.path}: {type(error).__name__}: {error}")
    if count == 0:
        yield Record(
            reason="empty_file",
            raw=f"{file.path}: no records in the file (only blank lines, or no WARC response/conversion records)",
        )


def _checked(record: Record, cap: int) -> tuple[Record, str, int]:
    """The record as it can go into Arrow, its metadata JSON and the size of its text in bytes.

    Checks that need the decoded text happen here, for every format. A lone surrogate (left by
    a JSON escape like \\ud800) cannot be encoded to UTF-8: pa.table would raise on it."""
    metadata = json.dumps(record.metadata, ensure_ascii=False, sort_keys=True, default=str)
    if record.reason is not None:  # make what we show of it encodable, whatever it holds
        raw, url, metadata = (_encodable(value) for value in (record.raw or "", record.url, metadata))
        return Record(url=url, reason=record.reason, raw=raw), metadata, len(raw)
    try:
        text_size = len(record.text.encode("utf-8"))
        (record.url or "").encode("utf-8")
        metadata.encode("utf-8")
    except UnicodeEncodeError as error:
        shown = json.dumps({"text": record.text, "url": record.url, "metadata": record.metadata}, default=str)
        return _checked(
            Record(
                reason="bad_encoding",
                raw=f"{_snippet(shown)}\n[lone surrogate (an invalid \\uXXXX escape, not a character): {error}]",
            ),
            cap,
        )
    if text_size > cap:
        return _checked(_too_large(record.text, text_size, cap), cap)
    if "\x00" in record.text:
        shown = _snippet(record.text).replace("\x00", "\\x00")
        return _checked(
            Record(
                reason="binary_content",
                raw=f"{shown}\n[NUL byte at character {record.text.index(chr(0)):,}: binary data, not text]",
            ),
            cap,
        )
    return record, metadata, text_size


def _encodable(value: str | None) -> str | None:
    return None if value is None else value.encode("utf-8", "backslashreplace").decode("utf-8")


def read_file(
    file: InputFile,
    batch_rows: int = BATCH_ROWS,
    max_doc_bytes: int = MAX_DOC_BYTES,
    max_batch_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[pa.Table]:
    """Document batches of one input file, quarantined records included (marked). A batch is
    yielded as soon as it holds `batch_rows` records or `max_batch_bytes` bytes of text."""
    if file.format != UNSUPPORTED and file.format not in READERS:
        raise ValueError(f"source {file.source!r}: unknown format {file.format!r}; choose from {FORMATS}")
    rows: dict[str, list] = {name: [] for name in DOCUMENT_SCHEMA.names}
    size = 0
    for index, record in enumerate(_records(file, max_doc_bytes)):
        record, metadata, text_size = _checked(record, max_doc_bytes)
        quarantined = record.reason is not None
        rows["id"].append(f"{file.source}/{file.relpath}#{index}")
        rows["source"].append(file.source)
        rows["text"].append(record.raw if quarantined else record.text)
        rows["url"].append(record.url)
        rows["metadata"].append(metadata)
        rows["drop_stage"].append(QUARANTINE_STAGE if quarantined else None)
        rows["drop_reason"].append(record.reason)
        size += text_size
        if len(rows["id"]) >= batch_rows or size >= max_batch_bytes:
            yield pa.table(rows, schema=DOCUMENT_SCHEMA)
            rows = {name: [] for name in DOCUMENT_SCHEMA.names}
            size = 0
    if rows["id"]:
        yield pa.table(rows, schema=DOCUMENT_SCHEMA)
