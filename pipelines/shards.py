"""`python -m pipelines.shards`: kept documents -> mixture-weighted Arrow token shards.

Steps:
1. tokenizer: trained first (tokenizer.train) when `<tokenizer.dir>/tokenizer.json` is missing
   or was trained with other settings or documents; `shards.tokenizer: extended` writes the
   shards with its vocabulary extension, `<tokenizer.dir>/extended` (tokenizer.extend);
2. tokenize on Ray: Ray Data map_batches over the Parquet documents; each worker loads
   the tokenizer once and calls `encode_batch`; EOS ends every document. Each batch
   is written as an Arrow file under `<shards.dir>/.work`; only (id, source, num_tokens,
   file, row) comes back to the driver;
3. plan on the driver: validation documents by a hash of the id; per-source token
   targets from the weights (small sources repeated in whole epochs up to max_epochs,
   large ones downsampled), a seeded shuffle of the documents;
4. write shards in parallel (a Ray task per file): Arrow IPC files, uncompressed so
   they memory-map with zero copy, one record batch of (id, source, tokens: list<uint16
   or uint32>) each, so document boundaries are the list offsets;
5. manifest.json: tokenizer and config hashes, per-source documents/tokens/epochs/
   shares, totals, files with SHA-256.

`docs`, `shards.dir` and `tokenizer.dir` may be URIs (`s3://bucket/out/docs`): everything is
read and written through pyarrow's filesystems, and Ray tasks get absolute paths or URIs and
the tokenizer itself (JSON), never a path only the driver can see. A tokenizer at a URI is
trained in a local temporary folder and uploaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import posixpath
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import ray
from tqdm import tqdm

from pipelines.console import log_dir, quiet_ray
from pipelines.workdir import absolute, exists, filesystem, is_uri, join, read_bytes, write_atomic
from tokenizer.config import OTHER, Config, load_config, parse_set, with_out_root
from tokenizer.corpus import list_files
from tokenizer.sampling import heldout_mask, weighted_counts, weighted_groups

FORMAT = "lmforge-token-shards/1"
WORK_DIR = ".work"
# What tokenization returns to the driver per document: where its tokens are, and how many.
METADATA_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("num_tokens", pa.int64()),
        ("file", pa.string()),
        ("row", pa.int64()),
    ]
)


def token_type(vocab_size: int) -> pa.DataType:
    """uint16 halves the bytes read per token when every id fits."""
    return pa.uint16() if vocab_size <= 1 << 16 else pa.uint32()


def shard_schema(dtype: pa.DataType) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("source", pa.string()), ("tokens", pa.list_(dtype))])


def write_arrow(path: str, table: pa.Table) -> tuple[int, str]:
    """One uncompressed record batch: the token values are one contiguous, mappable buffer.
    Written whole under a temporary name, then renamed (a local path or a URI); returns the
    file's size and SHA-256."""
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks(), max_chunksize=max(1, table.num_rows))
    data = sink.getvalue()
    fs, where = filesystem(path)
    write_atomic(fs, where, data)
    return data.size, hashlib.sha256(data).hexdigest()


def read_arrow(path: str) -> pa.Table:
    if is_uri(path):
        fs, where = filesystem(path)
        with fs.open_input_file(where) as source:
            return ipc.open_file(source).read_all()
    with pa.memory_map(path) as source:
        return ipc.open_file(source).read_all()


@functools.lru_cache(maxsize=1)
def load_tokenizer(tokenizer_json: str):
    """Once per Ray worker process (workers are reused across batches)."""
    # A task holds one core: keep `encode_batch` on one thread (the crate reads this per call).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json)


def tokenize_batch(batch: pa.Table, tokenizer_json: str, work_dir: str, eos_id: int, vocab_size: int) -> pa.Table:
    """Ray Data UDF: tokenize a batch of documents (EOS appended), write the tokens to the
    work folder and return per-document metadata (the tokens stay out of the driver)."""
    if not batch.num_rows:
        return pa.table({"id": [], "source": [], "num_tokens": [], "file": [], "row": []}, schema=METADATA_SCHEMA)
    dtype = token_type(vocab_size)
    encodings = load_tokenizer(tokenizer_json).encode_batch(batch["text"].to_pylist(), add_special_tokens=False)
    ids = [np.asarray(e.ids + [eos_id], dtype=dtype.to_pandas_dtype()) for e in encodings]
    lengths = np.array([len(i) for i in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(ids), dtype))
    table = pa.Table.from_arrays([batch["id"], batch["source"], tokens], schema=shard_schema(dtype))
    # Named after the batch's first id: a retried task rewrites the same file.
    name = "tok-" + hashlib.sha1(batch["id"][0].as_py().encode()).hexdigest()[:16] + ".arrow"
    write_arrow(join(work_dir, name), table)
    return pa.table(
        {
            "id": batch["id"],
            "source": batch["source"],
            "num_tokens": lengths,
            "file": [name] * batch.num_rows,
            "row": np.arange(batch.num_rows),
        },
        schema=METADATA_SCHEMA,
    )


def tokenize(config: Config, tokenizer_json: str, work_dir: str, eos_id: int, vocab_size: int) -> pa.Table:
    """Metadata of every document (METADATA_SCHEMA), sorted by id. The tokenizer travels to
    the workers as JSON and `work_dir` is absolute or a URI: no task needs the driver's files."""
    files = [absolute(f) for f in list_files(config.docs) if f.endswith(".parquet")]
    if not files:
        raise FileNotFoundError(f"no Parquet documents in {config.docs!r} (run the corpus pipeline first)")
    fs, _ = filesystem(files[0])
    if len({type(filesystem(f)[0]) for f in files}) > 1:
        raise ValueError(f"the documents {config.docs!r} are on more than one filesystem; read them from one")
    ds = ray.data.read_parquet([filesystem(f)[1] for f in files], filesystem=fs, columns=["id", "source", "text"])
    ds = ds.map_batches(
        tokenize_batch,
        fn_kwargs={"tokenizer_json": tokenizer_json, "work_dir": work_dir, "eos_id": eos_id, "vocab_size": vocab_size},
        batch_size=config.shards.batch_size,
        batch_format="pyarrow",
        num_cpus=1,
    )
    meta = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    # Sorting by id makes the plan independent of how Ray split and ordered the batches.
    return meta.take(pc.sort_indices(meta, [("id", "ascending")]))


@dataclasses.dataclass
class Plan:
    train: np.ndarray  # rows of the metadata, in training order, repeats included
    val: np.ndarray  # rows of the validation documents, by id
    sources: dict[str, dict]  # per weighted source: documents, tokens, shares, epochs
    unweighted: list[str]  # sources present but given no weight: left out


def plan(meta: pa.Table, config: Config) -> Plan:
    """Which documents go to validation and, how many times and in which order, to training."""
    shards = config.shards
    val = heldout_mask(meta["id"].to_pylist(), shards.val_fraction)
    sources = np.array(meta["source"].to_pylist(), dtype=object)
    groups = weighted_groups(sources, shards.weights)
    tokens = meta["num_tokens"].to_numpy()
    train_rows = np.flatnonzero(~val)
    counts, stats = weighted_counts(
        sources[train_rows], tokens[train_rows], shards.weights, shards.total_tokens, shards.max_epochs, config.seed
    )
    order = np.random.default_rng(config.seed).permutation(np.repeat(train_rows, counts))
    per_source = {}
    for source, s in stats.items():
        in_val = val & (groups == source)
        per_source[source] = {
            "documents": s["documents"],
            "tokens_available": s["available"],
            "requested_share": round(s["requested_share"], 6),
            "target_tokens": round(s["target"]),
            "tokens": s["achieved"],
            "achieved_share": round(s["achieved_share"], 6),
            "epochs": round(s["epochs"], 4),
            "documents_used": s["documents_used"],
            "val_documents": int(in_val.sum()),
            "val_tokens": int(tokens[in_val].sum()),
        }
    left_out = shards.weights is not None and OTHER not in shards.weights
    unweighted = sorted(set(sources[groups == OTHER])) if left_out else []
    return Plan(order, np.flatnonzero(val), per_source, unweighted)


@ray.remote
def write_shard(path: str, files: list[str], rows: np.ndarray, work_dir: str) -> dict:
    """Gather the documents (file, row) in the given order into one shard file."""
    files_arr = np.array(files, dtype=object)
    pieces, positions = [], []
    for name in sorted(set(files)):
        mask = files_arr == name
        pieces.append(read_arrow(join(work_dir, name)).take(rows[mask]))
        positions.append(np.flatnonzero(mask))
    table = pa.concat_tables(pieces).take(np.argsort(np.concatenate(positions), kind="stable"))
    size, sha256 = write_arrow(path, table)
    tokens = int(pc.sum(pc.list_value_length(table["tokens"])).as_py())
    return {
        "path": path.rpartition("/")[2],
        "documents": table.num_rows,
        "tokens": tokens,
        "bytes": size,
        "sha256": sha256,
    }


def write_split(
    split: str, order: np.ndarray, meta: pa.Table, out_dir: str, work_dir: str, shard_tokens: int
) -> list[dict]:
    """Cut `order` into files of about `shard_tokens` tokens (whole documents) and write them."""
    if not len(order):
        return []
    lengths = meta["num_tokens"].to_numpy()[order]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    shard_of = starts // shard_tokens  # a document goes where its first token falls
    files = np.array(meta["file"].to_pylist(), dtype=object)[order]
    rows = meta["row"].to_numpy()[order]
    tasks = []
    for index, shard in enumerate(np.unique(shard_of)):
        members = shard_of == shard
        path = join(out_dir, f"{split}-{index:05d}.arrow")
        tasks.append(write_shard.remote(path, files[members].tolist(), rows[members], work_dir))
    with tqdm(total=len(tasks), desc=f"shards: writing {split}", unit=" files", file=sys.stderr) as progress:
        pending = list(tasks)
        while pending:
            done, pending = ray.wait(pending)
            progress.update(len(done))
    return [{"split": split, **r} for r in ray.get(tasks)]


def ensure_tokenizer(config: Config, retrain: bool) -> str:
    """The tokenizer file the shards are written with (`shards.tokenizer`: the base or its
    extension), trained first when missing or when `tokenizer.train` recorded other settings
    or documents than the current ones (a tokenizer without that record, e.g. one extended by
    hand, is used as it is). A `tokenizer.dir` URI is trained locally, then uploaded."""
    from tokenizer.train import EXTENSION_DIR, fingerprint, train

    path = join(
        config.tokenizer.dir, *([EXTENSION_DIR] if config.shards.tokenizer == "extended" else []), "tokenizer.json"
    )
    report = join(config.tokenizer.dir, "report.json")
    reason = None
    if retrain:
        reason = "--retrain-tokenizer"
    elif not exists(path):
        reason = "no tokenizer yet"
    elif exists(report):
        recorded = json.loads(read_bytes(report)).get("fingerprint")
        if recorded not in (None, fingerprint(config)):
            reason = "trained with other settings or documents"
    if reason:
        print(f"shards: training the tokenizer into {config.tokenizer.dir} ({reason})", file=sys.stderr)
        if is_uri(config.tokenizer.dir):
            with tempfile.TemporaryDirectory(prefix="tokenizer-") as local:
                train(dataclasses.replace(config, tokenizer=dataclasses.replace(config.tokenizer, dir=local)))
                upload(local, config.tokenizer.dir)
        else:
            train(config)
    return path


def upload(local: str, uri: str) -> None:
    """Replace what is at `uri` with the files of the local folder; report.json last (its
    fingerprint says the tokenizer there is complete)."""
    fs, root = filesystem(uri)
    fs.delete_dir_contents(root, missing_dir_ok=True)
    names = sorted(
        os.path.relpath(os.path.join(folder, name), local) for folder, _, files in os.walk(local) for name in files
    )
    for name in sorted(names, key=lambda name: name == "report.json"):
        with open(os.path.join(local, name), "rb") as handle:
            write_atomic(fs, f"{root}/{name.replace(os.sep, '/')}", handle.read())


def prepare_output(out_dir: str) -> str:
    """Empty `out_dir` (a local path or a URI) of earlier shards; return a fresh work folder inside it."""
    fs, root = filesystem(out_dir)
    fs.create_dir(root)
    for info in fs.get_file_info(pafs.FileSelector(root)):
        if info.type == pafs.FileType.File and (info.base_name.endswith(".arrow") or info.base_name == "manifest.json"):
            fs.delete_file(info.path)
    fs.delete_dir_contents(f"{root}/{WORK_DIR}", missing_dir_ok=True)
    fs.create_dir(f"{root}/{WORK_DIR}")
    return join(out_dir, WORK_DIR)


def run(config: Config, retrain_tokenizer: bool = False) -> dict:
    """Build the shards; returns the manifest also written to `<shards.dir>/manifest.json`."""
    from tokenizers import Tokenizer

    from pipelines.corpus import init_ray

    started = time.perf_counter()
    tokenizer_file = ensure_tokenizer(config, retrain_tokenizer)
    tokenizer_bytes = read_bytes(tokenizer_file)
    tokenizer_json = tokenizer_bytes.decode("utf-8")
    tokenizer = Tokenizer.from_str(tokenizer_json)
    eos_token = config.tokenizer.special_tokens["eos"]
    eos_id = tokenizer.token_to_id(eos_token)
    if eos_id is None:
        raise ValueError(f"{tokenizer_file} has no {eos_token!r} token (tokenizer.special_tokens.eos)")
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    out_dir = absolute(config.shards.dir)
    work_dir = prepare_output(out_dir)
    init_ray(config.num_cpus)
    meta = tokenize(config, tokenizer_json, work_dir, eos_id, vocab_size)
    chosen = plan(meta, config)
    files = write_split("train", chosen.train, meta, out_dir, work_dir, config.shards.shard_tokens) + write_split(
        "val", chosen.val, meta, out_dir, work_dir, config.shards.shard_tokens
    )
    fs, work_path = filesystem(work_dir)
    fs.delete_dir(work_path)
    splits = {
        split: {
            "documents": sum(f["documents"] for f in files if f["split"] == split),
            "tokens": sum(f["tokens"] for f in files if f["split"] == split),
        }
        for split in ("train", "val")
    }
    manifest = {
        "format": FORMAT,
        "dtype": str(token_type(vocab_size)),
        "vocab_size": vocab_size,
        "eos_id": eos_id,
        "tokenizer": {"path": tokenizer_file, "sha256": hashlib.sha256(tokenizer_bytes).hexdigest()},
        "config_sha256": config.digest,
        "config": dataclasses.asdict(config),
        "seed": config.seed,
        "documents_in": meta.num_rows,
        "total_tokens": splits["train"]["tokens"],
        "requested_total_tokens": config.shards.total_tokens,
        "max_epochs": config.shards.max_epochs,
        "sources": chosen.sources,
        "unweighted_sources": chosen.unweighted,  # present in the documents but given no weight: left out
        "splits": splits,
        "files": files,
        "seconds": round(time.perf_counter() - started, 2),
    }
    # Written last and whole: its presence says the shards are complete (`make train` checks it).
    fs, out_path = filesystem(out_dir)
    write_atomic(fs, f"{out_path}/manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    return manifest


def summary(manifest: dict) -> str:
    lines = ["source\tdocs\ttokens avail\trequested\tachieved\tepochs"]
    for source, s in manifest["sources"].items():
        lines.append(
            f"{source}\t{s['documents']}\t{s['tokens_available']}\t{s['requested_share']:.3f}\t"
            f"{s['achieved_share']:.3f}\t{s['epochs']:.2f}"
        )
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    lines.append(
        f"train {train['tokens']} tokens ({train['documents']} documents), val {val['tokens']} tokens "
        f"({val['documents']} documents), {len(manifest['files'])} files, {manifest['dtype']}, "
        f"{manifest['seconds']} s"
    )
    if manifest["unweighted_sources"]:
        lines.append(f"left out (no weight): {', '.join(manifest['unweighted_sources'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.shards",
        description="Tokenize the kept documents on Ray and write mixture-weighted, memory-mappable Arrow token "
        "shards with a validation split and manifest.json. Trains the tokenizer first if it is missing or was "
        "trained with other settings or documents.",
        epilog="Example: python -m pipelines.shards --config configs/shards.yaml --out out "
        "--set shards.max_epochs=2 (reads out/docs, writes out/tokenizer and out/shards)",
    )
    parser.add_argument("--config", default="configs/shards.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--out", help="root folder: read ROOT/docs, write ROOT/tokenizer and ROOT/shards")
    parser.add_argument("--num-cpus", type=int, help="cores for a local Ray instance (default: all)")
    parser.add_argument("--retrain-tokenizer", action="store_true", help="train the tokenizer even if it exists")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. shards.val_fraction=0.01 (repeatable)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own logs and Ray Data's status on the console (otherwise in ROOT/logs)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = with_out_root(parse_set(args.set), args.out)
        if args.num_cpus:
            overrides["num_cpus"] = args.num_cpus
        config = load_config(args.config, overrides)
    except ValueError as error:
        print(f"shards: config error: {error}", file=sys.stderr)
        return 2
    if not args.verbose:
        from pipelines.corpus import init_ray

        quiet_ray(log_dir(posixpath.dirname(config.shards.dir.rstrip("/"))))
        init_ray(config.num_cpus, log_to_driver=False)
    try:
        manifest = run(config, args.retrain_tokenizer)
    except (ValueError, FileNotFoundError) as error:
        print(f"shards: {error}", file=sys.stderr)
        return 2
    print(summary(manifest))
    print(f"tokenizer: {config.tokenizer.dir} (report.md: characters per token, tokens per word)")
    print(f"manifest: {join(config.shards.dir, 'manifest.json')}")
    return 0


if __name__ == "__main__":
    # Run the importable module, not __main__, so Ray workers find its functions by name.
    from pipelines.shards import main as module_main

    sys.exit(module_main())
