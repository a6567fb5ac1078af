"""Reading documents for tokenizer training, extension and evaluation.

Inputs are the corpus pipeline's kept documents (Parquet with `id`, `source`,
`text`, `lang`) or plain `.txt` files (one document per non-empty line), as local
paths or URIs (`s3://bucket/out/docs`, read through pyarrow's filesystems).
Batches are streamed so only the columns asked for are decoded and a large
corpus never has to fit in memory at once.
"""

from __future__ import annotations

import glob
import io
import os
import posixpath
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from pipelines.workdir import exists, file_info, filesystem, is_uri, join, list_uri

COLUMNS = ("id", "source", "text", "lang")
SUFFIXES = (".parquet", ".txt")


def require_complete_corpus(directory: str) -> None:
    """Refuse the `docs/` of a corpus output that was never completed: the corpus pipeline writes
    `_SUCCESS` beside it last, so without it the documents may be partial or mixed."""
    if is_uri(directory):
        directory = directory.rstrip("/")
        name, out = posixpath.basename(directory), posixpath.dirname(directory)
    else:
        name, out = os.path.basename(os.path.abspath(directory)), os.path.dirname(os.path.abspath(directory))
    is_corpus_output = name == "docs" and any(exists(join(out, n)) for n in ("stats.json", ".run"))
    if is_corpus_output and not exists(join(out, "_SUCCESS")):
        raise FileNotFoundError(
            f"{directory} is not a complete corpus output: {out}/_SUCCESS is missing (the run was interrupted, "
            f"failed, or predates it). Run `python -m pipelines.corpus --out {out}` (or `make corpus`) again: "
            "an interrupted run resumes where it stopped"
        )


def list_files(paths: str | list[str]) -> list[str]:
    """Parquet/.txt files named by `paths` (files, directories or globs; local or URIs), sorted."""
    files: list[str] = []
    for path in [paths] if isinstance(paths, str) else paths:
        if is_uri(path):
            if file_info(path).type == pafs.FileType.Directory:
                require_complete_corpus(path)
                found = [uri for uri in list_uri(path) or {} if uri.endswith(SUFFIXES)]
            else:
                found = list(list_uri(path) or {})
        elif os.path.isdir(path):
            require_complete_corpus(path)
            found = [
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.endswith(SUFFIXES)
            ]
        else:
            found = glob.glob(path)
        if not found:
            raise FileNotFoundError(f"no documents at {path!r} (expected Parquet or .txt files)")
        files.extend(found)
    return sorted(set(files))


def _text_file_batch(path: str) -> pa.Table:
    fs, where = filesystem(path)
    with io.TextIOWrapper(io.BufferedReader(fs.open_input_file(where)), encoding="utf-8") as handle:
        lines = [(number, line.rstrip("\n")) for number, line in enumerate(handle) if line.strip()]
    name = os.path.splitext(os.path.basename(path))[0]
    return pa.table(
        {
            "id": [f"{name}#{number}" for number, _ in lines],
            "source": [name] * len(lines),
            "text": [text for _, text in lines],
            "lang": pa.nulls(len(lines), pa.string()),
        }
    )


def iter_documents(
    paths: str | list[str], columns: tuple[str, ...] = COLUMNS, batch_rows: int = 1024
) -> Iterator[pa.Table]:
    """Document batches with `columns` (missing ones as nulls), in a stable order."""
    for path in list_files(paths):
        if path.endswith(".txt"):
            batches = [_text_file_batch(path)]
        else:
            fs, where = filesystem(path)
            dataset = pads.dataset(where, format="parquet", filesystem=fs)
            present = [c for c in columns if c in dataset.schema.names]
            batches = (pa.Table.from_batches([b]) for b in dataset.to_batches(columns=present, batch_size=batch_rows))
        for batch in batches:
            for column in columns:
                if column not in batch.column_names:
                    batch = batch.append_column(column, pa.nulls(batch.num_rows, pa.string()))
            yield batch.select(list(columns))
