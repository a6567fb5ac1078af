"""The run's work directory `<out>/.run`: what makes a corpus run resumable and its output atomic.

Layout (see docs/ARCHITECTURE.md):

    .run/run.json                     config digest and input file list of the run in progress
    .run/inputs/<unit>.json           one per input file, written when ingest has read all of it:
                                      {unit, source, path, documents}
    .run/phase-<p>/<unit>/<start>-<count>.parquet
                                      rows [start, start + count) of one input file after phase p
    .run/marks-<p>/<unit>/<name>.parquet
                                      a global phase's marks (documents to drop or change) of one file
    .run/marks-<p>/_FOUND             written once all its marks are: the stage's stats
    .run/final/<unit>/<start>-<count>.parquet
                                      the last phase's per-part counts (stats.json is folded from them)
    .run/staging/                     docs/ rejects/ quarantine/ stats.json report.md being built
    .run/PUBLISHING                   present while staging is moved into <out>

`<unit>` is a hash of the input file's id prefix (`source/relpath`). Every document keeps its row
in every phase (removed ones are marked, not dropped), so an input file of N records is complete
in a phase when that phase's parts for it cover [0, N) exactly. Each file is written under a
temporary name and renamed, so a part that exists is whole.

Ray Data's own checkpointing (`ray.data.checkpoint`) skips rows already written by one sink; it
cannot resume our three-way output, the global phases between row phases, or the stats, so the
records here are our own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

WORK = ".run"
PUBLISHED = ("docs", "rejects", "quarantine", "stats.json", "report.md")
SUCCESS = "_SUCCESS"


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Local paths and remote URIs (s3://, gs://, hdfs://) alike, via pyarrow."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def is_uri(path: str) -> bool:
    return "://" in path


def join(base: str, *names: str) -> str:
    """`base/name/...` for a local path or a URI alike (URIs always use `/`)."""
    return "/".join([base.rstrip("/"), *names]) if is_uri(base) else os.path.join(base, *names)


def absolute(path: str) -> str:
    """A URI as it is, a local path made absolute: what a Ray task on any node may be given."""
    return path if is_uri(path) else os.path.abspath(path)


def file_info(path: str) -> pafs.FileInfo:
    """Type, size and mtime of a local path or a URI (type NotFound when there is nothing)."""
    fs, where = filesystem(path)
    return fs.get_file_info(where)


def exists(path: str) -> bool:
    return file_info(path).type != pafs.FileType.NotFound


def read_bytes(path: str) -> bytes:
    """The file's bytes as stored (never decompressed by its extension, as pyarrow would by default)."""
    fs, where = filesystem(path)
    with fs.open_input_stream(where, compression=None) as stream:
        return stream.read()


def uri_head(uri: str, path: str) -> str:
    """What comes before a filesystem path in its URI: `s3://` (the bucket is part of pyarrow's
    path), `hdfs://host:port`, `file://`; `head + info.path` is the URI of a listed file."""
    plain, path = uri.rstrip("/"), path.rstrip("/")
    if not plain.endswith(path):
        raise ValueError(f"cannot tell the path of {uri!r} apart from its filesystem (pyarrow gives {path!r})")
    return plain[: len(plain) - len(path)]


GLOB_CHARS = re.compile(r"[*?\[]")


def glob_regex(pattern: str) -> re.Pattern:
    """A glob as a regex over `/`-separated paths: `*`, `?` and `[...]` stay within a path
    segment, `**` matches any number of segments (as glob.glob with recursive=True)."""
    out, position = [], 0
    while position < len(pattern):
        if pattern.startswith("**/", position):
            out.append("(?:.*/)?")
            position += 3
        elif pattern.startswith("**", position):
            out.append(".*")
            position += 2
        elif pattern[position] == "*":
            out.append("[^/]*")
            position += 1
        elif pattern[position] == "?":
            out.append("[^/]")
            position += 1
        elif pattern[position] == "[" and "]" in pattern[position + 2 :]:
            end = pattern.index("]", position + 2)
            body = pattern[position + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            position = end + 1
        else:
            out.append(re.escape(pattern[position]))
            position += 1
    return re.compile("".join(out))


def list_uri(pattern: str) -> dict[str, pafs.FileInfo] | None:
    """The files a URI names, by URI: the object itself, every object under a prefix (a
    "directory"), or those matching a glob (listed under the glob's fixed prefix, then matched
    with `glob_regex`; a matching folder means every file below it, as a local glob's
    directories do). {} for a prefix with no files, None when the pattern names nothing."""
    glob_at = GLOB_CHARS.search(pattern)
    fixed = pattern if glob_at is None else pattern[: pattern.rfind("/", 0, glob_at.start())]
    fs, base = filesystem(fixed)
    head = uri_head(fixed, base)
    info = fs.get_file_info(base)
    if glob_at is None and info.type == pafs.FileType.File:
        return {head + info.path: info}
    if info.type != pafs.FileType.Directory:
        return None
    infos = [i for i in fs.get_file_info(pafs.FileSelector(base, recursive=True)) if i.type == pafs.FileType.File]
    if glob_at is None:
        return {head + i.path: i for i in infos}
    matcher = glob_regex(base.rstrip("/") + pattern[len(fixed) :])

    def matches(path: str) -> bool:  # the file, or a folder above it (a folder means all below it)
        while len(path) > len(base):
            if matcher.fullmatch(path):
                return True
            path = path.rpartition("/")[0]
        return False

    return {head + i.path: i for i in infos if matches(i.path)} or None


OBJECT_STORES = ("s3", "gcs")  # pyarrow filesystems that cannot rename a directory


def move(fs: pafs.FileSystem, source: str, target: str) -> None:
    """`fs.move`, also for a directory on an object store (S3, GCS), which pyarrow cannot rename:
    there its objects are copied one by one, then the source is deleted. Not atomic there: readers
    rely on `_SUCCESS`, written after all the moves."""
    if fs.type_name not in OBJECT_STORES or fs.get_file_info(source).type != pafs.FileType.Directory:
        fs.move(source, target)
        return
    fs.create_dir(target)
    prefix = source.rstrip("/") + "/"
    for info in fs.get_file_info(pafs.FileSelector(source, recursive=True)):
        destination = f"{target.rstrip('/')}/{info.path[len(prefix) :]}"
        if info.type == pafs.FileType.Directory:
            fs.create_dir(destination)
        else:
            fs.copy_file(info.path, destination)
    fs.delete_dir(source)


@contextmanager
def atomic_output(fs: pafs.FileSystem, path: str) -> Iterator:
    """A stream to a temporary name, renamed to `path` once complete: a reader never sees half a file."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    fs.create_dir(path.rpartition("/")[0])
    with fs.open_output_stream(temporary) as stream:
        yield stream
    fs.move(temporary, path)


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with atomic_output(fs, path) as stream:
        stream.write(data)


def write_local_atomic(path: str, data: bytes | str) -> None:
    """`write_atomic` for a local path; text is written as UTF-8."""
    write_atomic(pafs.LocalFileSystem(), os.path.abspath(path), data.encode() if isinstance(data, str) else data)


def save_tokenizer_atomic(tokenizer, path: str) -> None:
    """`tokenizers.Tokenizer.save` under a temporary name, then renamed."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    tokenizer.save(temporary)
    os.replace(temporary, path)


def write_parquet_atomic(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    with atomic_output(fs, path) as stream:
        pq.write_table(table, stream, compression="zstd")


def read_json(fs: pafs.FileSystem, path: str) -> dict | None:
    try:
        with fs.open_input_stream(path) as stream:
            return json.loads(stream.read())
    except FileNotFoundError:
        return None


def unit_of(doc_id: str) -> str:
    """The input file a document id names: `source/relpath#index` -> `source/relpath`."""
    return doc_id.rpartition("#")[0]


def unit_key(unit: str) -> str:
    return hashlib.sha1(unit.encode()).hexdigest()[:16]


def part_name(start: int, count: int) -> str:
    return f"{start:012d}-{count}.parquet"


def parse_part(name: str) -> tuple[int, int] | None:
    stem, dot, ext = name.partition(".")
    start, dash, count = stem.partition("-")
    if ext != "parquet" or not dash or not start.isdigit() or not count.isdigit():
        return None  # a temporary file of a killed writer, or anything else
    return int(start), int(count)


@dataclass(frozen=True)
class WorkDir:
    """Paths and completion records of one output directory's run in progress."""

    out: str

    @property
    def fs_root(self) -> tuple[pafs.FileSystem, str]:
        return filesystem(self.out)

    @property
    def root(self) -> str:
        return f"{self.fs_root[1]}/{WORK}"

    def phase_dir(self, phase: int | str) -> str:
        return f"{self.root}/{phase if isinstance(phase, str) else f'phase-{phase}'}"

    @property
    def staging(self) -> str:
        return f"{self.root}/staging"

    # Input records
    def record_input(self, unit: str, source: str, path: str, documents: int) -> None:
        fs, _ = self.fs_root
        data = {"unit": unit, "source": source, "path": path, "documents": documents}
        write_atomic(fs, f"{self.root}/inputs/{unit_key(unit)}.json", json.dumps(data).encode())

    def inputs(self) -> dict[str, dict]:
        """unit key -> input record, for the files ingest has read completely."""
        fs, _ = self.fs_root
        records = {}
        for info in fs.get_file_info(pafs.FileSelector(f"{self.root}/inputs", allow_not_found=True)):
            if info.base_name.endswith(".json"):
                records[info.base_name[:-5]] = read_json(fs, info.path)
        return records

    # Parts
    def parts(self, phase: int | str, unit: str | None = None) -> dict[str, list[tuple[int, int, str]]]:
        """unit key -> sorted (start, count, path) of the parts a phase has written (of one `unit`)."""
        fs, _ = self.fs_root
        found: dict[str, list] = {}
        where = self.phase_dir(phase) if unit is None else f"{self.phase_dir(phase)}/{unit}"
        for info in fs.get_file_info(pafs.FileSelector(where, recursive=True, allow_not_found=True)):
            span = parse_part(info.base_name)
            if span and info.type == pafs.FileType.File:
                found.setdefault(info.path.rsplit("/", 2)[-2], []).append((*span, info.path))
        return {unit: sorted(spans) for unit, spans in found.items()}

    def complete_units(self, phase: int | str, inputs: dict[str, dict]) -> set[str]:
        """Units whose parts in `phase` cover exactly the [0, documents) of their input record."""
        done = set()
        for unit, spans in self.parts(phase).items():
            if unit not in inputs:
                continue
            position = 0
            for start, count, _ in spans:
                if start != position:
                    break
                position += count
            else:
                if position == inputs[unit]["documents"]:
                    done.add(unit)
        return done

    def discard_units(self, phase: int | str, units: set[str]) -> None:
        """Remove what a killed run left of `units` in `phase` (and their staged output)."""
        fs, _ = self.fs_root
        for unit in units:
            fs.delete_dir_contents(f"{self.phase_dir(phase)}/{unit}", missing_dir_ok=True)
        if phase == "final":
            for sub in ("docs", "rejects", "quarantine"):
                for info in fs.get_file_info(pafs.FileSelector(f"{self.staging}/{sub}", allow_not_found=True)):
                    if info.base_name.startswith("part-") and info.base_name[5:21] in units:
                        fs.delete_file(info.path)

    def discard_phase(self, phase: int | str) -> None:
        fs, _ = self.fs_root
        fs.delete_dir_contents(self.phase_dir(phase), missing_dir_ok=True)
        if phase == "final":
            for sub in ("docs", "rejects", "quarantine"):
                fs.delete_dir_contents(f"{self.staging}/{sub}", missing_dir_ok=True)

    # Global phases: a stage's marks, per input file (stages/dedup.py), then its per-file parts
    def marks_dir(self, phase: int) -> str:
        return f"{self.root}/marks-{phase}"

    def marks_found(self, phase: int) -> dict | None:
        """The completion record (with the stage's stats) of a global phase's marks, once all are written."""
        fs, _ = self.fs_root
        return read_json(fs, f"{self.marks_dir(phase)}/_FOUND")

    def record_marks_found(self, phase: int, record: dict) -> None:
        fs, _ = self.fs_root
        write_atomic(fs, f"{self.marks_dir(phase)}/_FOUND", json.dumps(record, sort_keys=True).encode())

    def discard_marks(self, phase: int) -> None:
        fs, _ = self.fs_root
        fs.delete_dir_contents(self.marks_dir(phase), missing_dir_ok=True)

    def read_marks(self, phase: int, unit: str, schema: pa.Schema) -> pa.Table:
        """The marks of one input file (none: an empty table)."""
        fs, _ = self.fs_root
        infos = fs.get_file_info(pafs.FileSelector(f"{self.marks_dir(phase)}/{unit}", allow_not_found=True))
        paths = sorted(i.path for i in infos if i.base_name.endswith(".parquet") and ".tmp-" not in i.base_name)
        return pa.concat_tables(
            [schema.empty_table(), *(pq.read_table(p, filesystem=fs, schema=schema) for p in paths)]
        )

    # The run as a whole
    def state(self) -> dict | None:
        fs, _ = self.fs_root
        return read_json(fs, f"{self.root}/run.json")

    def start(self, state: dict) -> None:
        fs, _ = self.fs_root
        fs.delete_dir_contents(self.root, missing_dir_ok=True)
        fs.create_dir(self.root)
        write_atomic(fs, f"{self.root}/run.json", json.dumps(state, sort_keys=True).encode())

    def discard(self) -> None:
        fs, _ = self.fs_root
        if fs.get_file_info(self.root).type != pafs.FileType.NotFound:
            fs.delete_dir(self.root)

    def publish(self, success: dict | None = None, after_move: Callable[[str], None] = lambda name: None) -> None:
        """Move the staged output into `<out>`, then write `_SUCCESS` (the stats digest) last.

        `_SUCCESS` is removed first, so while the names move a reader sees an incomplete output,
        never a mix taken for a whole one. PUBLISHING records that staging is complete (and the
        `_SUCCESS` content): rerun after a kill, `publish()` finishes the moves."""
        fs, root = self.fs_root
        if success is None:
            success = read_json(fs, f"{self.root}/PUBLISHING")
        else:
            write_atomic(fs, f"{self.root}/PUBLISHING", json.dumps(success).encode())
        if fs.get_file_info(f"{root}/{SUCCESS}").type != pafs.FileType.NotFound:
            fs.delete_file(f"{root}/{SUCCESS}")
        fs.create_dir(f"{self.root}/previous")
        for name in PUBLISHED:
            staged = f"{self.staging}/{name}"
            if fs.get_file_info(staged).type == pafs.FileType.NotFound:
                continue  # moved before a kill
            target = f"{root}/{name}"
            if fs.get_file_info(target).type != pafs.FileType.NotFound:
                move(fs, target, f"{self.root}/previous/{name}")
            move(fs, staged, target)
            after_move(name)
        write_atomic(fs, f"{root}/{SUCCESS}", json.dumps(success, indent=2, sort_keys=True).encode())
        self.discard()

    def publishing(self) -> bool:
        fs, _ = self.fs_root
        return fs.get_file_info(f"{self.root}/PUBLISHING").type == pafs.FileType.File
