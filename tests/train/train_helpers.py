"""Small training inputs built in seconds: a byte-level text file, and a token-shard folder with
its own small BPE tokenizer (trained on the embedded sample corpus) as `make corpus` writes them."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import yaml

from pipelines.shards import shard_schema, write_arrow
from tokenizer.config import TokenizerConfig
from tokenizer.models import new_tokenizer, save

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_run_config(path: str, config: dict, sections: dict) -> str:
    """Write `config` as YAML with each of `sections` merged into its section (a mapping) or replacing it."""
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    return path


def sample_texts(limit: int = 200) -> list[str]:
    """Real documents from data/sample: German/other lingua sentences and Tang poems."""
    texts = []
    with open(os.path.join(ROOT, "data/sample/multilingual/lingua-0000.jsonl"), encoding="utf-8") as handle:
        for line, _ in zip(handle, range(limit)):
            texts.append(json.loads(line)["content"])
    for path in sorted(glob.glob(os.path.join(ROOT, "data/sample/zh/tang300/*.txt")))[:20]:
        with open(path, encoding="utf-8") as handle:
            texts.append(handle.read())
    return texts


def write_text(path: str, chars: int = 60_000) -> str:
    text = "\n".join(sample_texts())
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text[:chars])
    return path


def write_tokenized_shards(root: str, vocab_size: int = 512) -> str:
    """`root/tokenizer` (byte-level BPE with chat tokens) and `root/shards` (train + val files,
    uint16, EOS after each document, manifest); returns the shards folder."""
    config = TokenizerConfig(dir=os.path.join(root, "tokenizer"), vocab_size=vocab_size)
    tokenizer, trainer = new_tokenizer(config, show_progress=False)
    texts = sample_texts()
    tokenizer.train_from_iterator(texts, trainer)
    return write_shards(root, tokenizer, texts)


def write_shards(root: str, tokenizer, texts: list[str]) -> str:
    """`root/tokenizer` (`tokenizer` with the default special-token files) and `root/shards` of
    `texts` (the first 10 for validation) as `make corpus` writes them; returns the shards folder."""
    config = TokenizerConfig(dir=os.path.join(root, "tokenizer"), vocab_size=tokenizer.get_vocab_size())
    save(tokenizer, config.dir, config)
    eos = tokenizer.token_to_id(config.special_tokens["eos"])
    shards = os.path.join(root, "shards")
    os.makedirs(shards, exist_ok=True)
    files = []
    for split, docs in (("train", texts[10:]), ("val", texts[:10])):
        ids = [tokenizer.encode(text).ids + [eos] for text in docs]
        offsets = np.concatenate([[0], np.cumsum([len(x) for x in ids])]).astype(np.int32)
        tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(ids), pa.uint16()))
        table = pa.Table.from_arrays(
            [pa.array([f"{split}{i}" for i in range(len(ids))]), pa.array(["sample"] * len(ids)), tokens],
            schema=shard_schema(pa.uint16()),
        )
        name = f"{split}-00000.arrow"
        write_arrow(os.path.join(shards, name), table)
        files.append({"split": split, "path": name, "tokens": int(offsets[-1]), "documents": len(ids)})
    manifest = {
        "files": files,
        "vocab_size": tokenizer.get_vocab_size(),
        "eos_id": eos,
        "tokenizer": {"path": os.path.join(config.dir, "tokenizer.json")},
    }
    with open(os.path.join(shards, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    return shards


def torchrun_two_processes(module: str, config: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 -m MODULE --config CONFIG` on CPU (gloo), checked for exit 0."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        module,
        "--config",
        config,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result
