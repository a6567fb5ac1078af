"""End to end on object storage: a corpus run whose inputs and output are `s3://` URIs on a local
S3 server (moto), then the shards step reading that output from S3 and writing its tokenizer,
shards and manifest to S3.

Endpoint and credentials are the standard AWS environment variables (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), which pyarrow's S3 filesystem
reads in every process. Each step runs as a driver subprocess on the test session's Ray
instance, as `ray job submit` runs it on a cluster: the driver has them in its environment and
its Ray workers get them from the job's runtime_env (what `ray job submit --runtime-env-json
'{"env_vars": {...}}'` sets)."""

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys

import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from pipelines.config import load_config
from pipelines.corpus import run
from pipelines.shards import ensure_tokenizer
from tests.helpers import FIXTURES, ROOT
from tokenizer.config import load_config as load_shards_config
from tokenizer.config import with_out_root

pytestmark = pytest.mark.slow

BUCKET = "lmforge-e2e"
SAMPLE = os.path.join(ROOT, "data", "sample")
BAD = os.path.join(FIXTURES, "bad")
# The input tree (uploaded to s3://BUCKET/input and copied to a local folder): path -> file copied there
INPUTS = {
    "web/c4-0001.jsonl.zst": os.path.join(SAMPLE, "web", "c4-0001.jsonl.zst"),
    "web/copy/c4-0001.jsonl.zst": os.path.join(SAMPLE, "web", "c4-0001.jsonl.zst"),  # exact duplicates
    "web/whirlwind.warc.gz": os.path.join(SAMPLE, "web", "whirlwind.warc.gz"),
    "web/whirlwind.warc.wet.gz": os.path.join(SAMPLE, "web", "whirlwind.warc.wet.gz"),
    "web/bad/truncated.jsonl.gz": os.path.join(BAD, "truncated.jsonl.gz"),
    "web/bad/truncated.jsonl.zst": os.path.join(BAD, "truncated.jsonl.zst"),
    "web/bad/truncated.warc.gz": os.path.join(BAD, "truncated.warc.gz"),
    "web/bad/corrupt.parquet": os.path.join(BAD, "corrupt.parquet"),
    "web/bad/empty.jsonl": os.path.join(BAD, "empty.jsonl"),
    "wiki/wiki-0000.parquet": os.path.join(SAMPLE, "wiki", "wiki-0000.parquet"),
    "wiki/notes.md": os.path.join(BAD, "README.md"),  # not matched by the wiki glob
    **{
        f"zh/poems/{name}": os.path.join(SAMPLE, "zh", "tang300", name)
        for name in sorted(os.listdir(os.path.join(SAMPLE, "zh", "tang300")))[:12]
    },
}


def corpus_config(root: str) -> dict:
    """The same small pipeline over the input tree at `root` (a local folder or an s3:// URI):
    a prefix, a glob and a recursive glob; row stages, then a global stage (its own phase)."""
    return {
        "sources": {
            "web": {"paths": [f"{root}/web"], "priority": 3},
            "wiki": {"paths": [f"{root}/wiki/*.parquet"], "priority": 1},
            "zh": {"paths": [f"{root}/zh/**/*.txt"], "priority": 2},
        },
        "stages": [
            {
                "name": "langid",
                "params": {
                    "languages": ["en"],
                    "threshold": 0.5,
                    "per_source": {"zh": {"languages": ["zh"], "threshold": 0.3}},
                },
            },
            {
                "name": "gopher_quality",
                "params": {"per_lang": {"zh": {"min_avg_word_length": 1.0, "max_avg_word_length": 4.0}}},
            },
            {"name": "exact_dedup"},
        ],
        "execution": {"batch_size": 16},
    }


SHARDS_CONFIG = {
    "tokenizer": {
        "vocab_size": 600,
        "sample": {"by": "lang", "weights": {"en": 0.7, "zh": 0.3}},
        "heldout_fraction": 0.1,
        "extension": {"add": 0},
    },
    "shards": {
        "weights": {"web": 0.4, "wiki": 0.4, "zh": 0.2},
        "val_fraction": 0.05,
        "shard_tokens": 4000,
        "max_epochs": 2,
    },
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free local port with the input tree uploaded; the AWS variables
    that point pyarrow at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    fs = pafs.S3FileSystem(
        endpoint_override=f"{host}:{port}",
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir(BUCKET)
    for name, source in INPUTS.items():
        with open(source, "rb") as handle:
            data = handle.read()
        with fs.open_output_stream(f"{BUCKET}/input/{name}", compression=None) as stream:  # as it is, not gzipped
            stream.write(data)
    yield fs, env
    server.stop()


def driver(args: list[str], s3_env: dict, ray_address: str) -> subprocess.CompletedProcess:
    """A driver process on the session's Ray, its workers given the AWS variables by runtime_env
    (the JSON `ray job submit --runtime-env-json` hands to its drivers)."""
    env = dict(
        os.environ,
        RAY_ADDRESS=ray_address,
        **s3_env,
        RAY_JOB_CONFIG_JSON_ENV_VAR=json.dumps({"runtime_env": {"env_vars": s3_env}}),
    )
    env.pop("LMFORGE_KILL_AT", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def read_json(fs, path):
    with fs.open_input_stream(path, compression=None) as stream:
        return json.loads(stream.read())


def s3_table(fs, path):
    files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path)) if i.base_name.endswith(".parquet"))
    return pq.read_table(files, filesystem=fs).sort_by("id") if files else None


def local_table(path):
    files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".parquet"))
    return pq.read_table(files).sort_by("id") if files else None


COUNTS = ("input_documents", "kept_documents", "removed_documents", "quarantined_documents", "removed", "quarantined")


@pytest.fixture(scope="module")
def runs(s3, ray_local, tmp_path_factory):
    """The corpus pipeline over the local copy of the input tree (in this process), and over
    s3://BUCKET/input into s3://BUCKET/out (a driver subprocess)."""
    fs, env = s3
    tmp = tmp_path_factory.mktemp("s3_e2e")
    for name, source in INPUTS.items():
        os.makedirs(os.path.dirname(tmp / "input" / name), exist_ok=True)
        shutil.copyfile(source, tmp / "input" / name)
    (tmp / "local.yaml").write_text(json.dumps(corpus_config(str(tmp / "input"))))
    (tmp / "s3.yaml").write_text(json.dumps(corpus_config(f"s3://{BUCKET}/input")))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        local_stats = run(load_config(str(tmp / "local.yaml"), {"output.dir": str(tmp / "out")}))
    finally:
        os.chdir(cwd)
    address = ray_local.get_runtime_context().gcs_address
    result = driver(["pipelines.corpus", "--config", str(tmp / "s3.yaml"), "--out", f"s3://{BUCKET}/out"], env, address)
    assert result.returncode == 0, result.stderr[-4000:]
    return fs, env, address, tmp, local_stats


def test_corpus_output_on_s3_is_complete_and_equals_the_local_run(runs):
    fs, _, _, tmp, local_stats = runs
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/out"))}
    assert {"_SUCCESS", "stats.json", "report.md", "docs", "rejects", "quarantine"} <= names
    assert ".run" not in names  # the work directory is discarded once published
    stats = read_json(fs, f"{BUCKET}/out/stats.json")
    assert {k: stats[k] for k in COUNTS} == {k: local_stats[k] for k in COUNTS}
    assert read_json(fs, f"{BUCKET}/out/_SUCCESS")["kept_documents"] == stats["kept_documents"] > 40
    assert stats["removed"]["exact_dedup"]["exact_duplicate"] >= 20  # web/copy/ repeats web/
    assert stats["quarantined"] == {"unreadable_file": 4, "empty_file": 1}
    # The same documents, ids included (ids are relative to each source's root, not the storage).
    docs, local_docs = s3_table(fs, f"{BUCKET}/out/docs"), local_table(tmp / "out" / "docs")
    assert docs.num_rows == stats["kept_documents"]
    assert docs.select(["id", "source", "text"]).equals(local_docs.select(["id", "source", "text"]))
    assert {i.split("/")[0] for i in docs["id"].to_pylist()} == {"web", "wiki", "zh"}
    quarantine = s3_table(fs, f"{BUCKET}/out/quarantine")
    assert not [i for i in quarantine["id"].to_pylist() if i.startswith("wiki/")]  # notes.md: not in the glob
    assert quarantine.select(["id", "drop_reason"]).equals(
        local_table(tmp / "out" / "quarantine").select(["id", "drop_reason"])
    )
    unreadable = [
        t
        for t, r in zip(quarantine["text"].to_pylist(), quarantine["drop_reason"].to_pylist())
        if r == "unreadable_file"
    ]
    assert all(t.startswith(f"s3://{BUCKET}/input/web/bad/") for t in unreadable)
    assert any("truncated zstd stream" in t for t in unreadable) and any("truncated WARC" in t for t in unreadable)


def test_shards_read_the_corpus_from_s3_and_write_to_s3(runs, monkeypatch, capsys):
    fs, env, address, tmp, _ = runs
    (tmp / "shards.yaml").write_text(json.dumps(SHARDS_CONFIG))
    out = f"s3://{BUCKET}/out"
    result = driver(["pipelines.shards", "--config", str(tmp / "shards.yaml"), "--out", out], env, address)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "training the tokenizer" in result.stderr
    manifest = read_json(fs, f"{BUCKET}/out/shards/manifest.json")
    stats = read_json(fs, f"{BUCKET}/out/stats.json")
    assert manifest["documents_in"] == stats["kept_documents"]
    assert manifest["tokenizer"]["path"] == f"{out}/tokenizer/tokenizer.json"
    with fs.open_input_stream(f"{BUCKET}/out/tokenizer/tokenizer.json", compression=None) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == manifest["tokenizer"]["sha256"]
    assert fs.get_file_info(f"{BUCKET}/out/tokenizer/report.json").type == pafs.FileType.File
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/out/shards"))}
    assert names == {f["path"] for f in manifest["files"]} | {"manifest.json"}  # .work removed
    train = [f for f in manifest["files"] if f["split"] == "train"]
    assert len(train) > 1 and any(f["split"] == "val" for f in manifest["files"])
    for entry in manifest["files"]:
        with fs.open_input_stream(f"{BUCKET}/out/shards/{entry['path']}", compression=None) as stream:
            data = stream.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
    for split in ("train", "val"):
        assert manifest["splits"][split]["tokens"] == sum(f["tokens"] for f in manifest["files"] if f["split"] == split)
    assert (
        manifest["total_tokens"]
        == manifest["splits"]["train"]["tokens"]
        == sum(s["tokens"] for s in manifest["sources"].values())
    )
    # A shard read back from S3: its token count is the manifest's, every document ends with EOS.
    with fs.open_input_file(f"{BUCKET}/out/shards/{train[0]['path']}") as source:
        table = ipc.open_file(source).read_all()
    lengths = [len(tokens) for tokens in table["tokens"].to_pylist()]
    assert sum(lengths) == train[0]["tokens"] and table.num_rows == train[0]["documents"]
    assert all(tokens[-1] == manifest["eos_id"] for tokens in table["tokens"].to_pylist())

    # The tokenizer's fingerprint, read back from S3, matches: a rerun would keep it, not retrain.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = load_shards_config(str(tmp / "shards.yaml"), with_out_root({}, out))
    before = fs.get_file_info(f"{BUCKET}/out/tokenizer/tokenizer.json").mtime_ns
    assert ensure_tokenizer(config, retrain=False) == f"{out}/tokenizer/tokenizer.json"
    assert "training the tokenizer" not in capsys.readouterr().err
    assert fs.get_file_info(f"{BUCKET}/out/tokenizer/tokenizer.json").mtime_ns == before
