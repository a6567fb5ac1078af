"""The vocabulary extension in training, on CPU: `python -m bench.vocab_extension`.

What the extension buys a model continued on Chinese text. From the kept documents of the
sample run (`--docs`, default bench/work/sample_out/docs):
1. the tokenizer of configs/shards.yaml and its extension (+1024 tokens from the Chinese
   documents' Han runs), and shards of the default mixture with the base tokenizer;
2. the tiny model (configs/train/tiny.yaml) pretrained on that mixture;
3. Chinese-only shards (source zh, 5 % held out by document hash: the same validation documents
   for both tokenizers) written with the base and with the extended tokenizer;
4. the model continued for `--steps` steps on each, from the same weights (`init_from`; with the
   extended tokenizer the embeddings grow, new rows at the mean of the old).
With `--english-base` the base tokenizer learns from the English documents only: the case of
adapting an English model to Chinese, where the extension has the most to add.
Prints Chinese characters per token of both tokenizers (the extension report's held-out
documents, and their runs of Han characters alone) and the Chinese validation bits per byte
of both continued models (bits per byte does not depend on the tokenizer, so they compare).
Every step runs as its own command, printed (as a markdown list item) before it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import regex


def run(arguments: list[str]) -> None:
    print(f"- `python {' '.join(arguments)}`", flush=True)
    subprocess.run([sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL)


def shards(docs: str, tokenizer_dir: str, out: str, *overrides: str) -> None:
    sets = [f"docs={docs}", f"tokenizer.dir={tokenizer_dir}", f"shards.dir={out}", *overrides]
    run(["-m", "pipelines.shards", "--config", "configs/shards.yaml", *[a for s in sets for a in ("--set", s)]])


def train(shards_dir: str, out: str, *overrides: str) -> dict:
    """Train configs/train/tiny.yaml on `shards_dir` into `out`; returns the final validation row."""
    sets = [f"data.shards={shards_dir}", f"checkpoint.dir={out}", "log.progress=false", "sample.tokens=0", *overrides]
    run(["-m", "train.pretrain", "--config", "configs/train/tiny.yaml", *[a for s in sets for a in ("--set", s)]])
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {
        "tokens": [row for row in rows if "tokens" in row][-1]["tokens"],
        **[row for row in rows if "val_bpb" in row][-1],
    }


def han_chars_per_token(tokenizer_file: str, texts: list[str]) -> float:
    from tokenizers import Tokenizer

    runs = [run for text in texts for run in regex.findall(r"\p{Han}+", text)]
    tokens = sum(len(e.ids) for e in Tokenizer.from_file(tokenizer_file).encode_batch(runs, add_special_tokens=False))
    return sum(map(len, runs)) / tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vocab_extension", description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default="bench/work/sample_out/docs", help="kept documents (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=100, help="continued-pretraining steps (default: %(default)s)")
    parser.add_argument(
        "--english-base", action="store_true", help="train the base tokenizer on the English documents only"
    )
    args = parser.parse_args(argv)
    work = os.path.join("bench", "work", "vocab_extension" + ("_english_base" if args.english_base else ""))
    tokenizer_dir = f"{work}/tokenizer"
    base_tokenizer = ["tokenizer.sample.weights={en: 1.0}"] if args.english_base else []
    if not os.path.isdir(args.docs):
        parser.error(
            f"{args.docs} not found: run `python -m pipelines.corpus --config configs/corpus.yaml "
            "--out bench/work/sample_out` first"
        )
    shards(args.docs, tokenizer_dir, f"{work}/shards", *base_tokenizer)
    train(f"{work}/shards", f"{work}/model")
    chinese = [*base_tokenizer, "shards.weights={zh: 1.0}", "shards.val_fraction=0.05"]
    shards(args.docs, tokenizer_dir, f"{work}/zh_base", *chinese)
    shards(args.docs, tokenizer_dir, f"{work}/zh_extended", *chinese, "shards.tokenizer=extended")
    continued = {
        name: train(
            f"{work}/zh_{name}",
            f"{work}/model_{name}",
            f"init_from={work}/model",
            f"train.max_steps={args.steps}",
            "optim.warmup_steps=10",
        )
        for name in ("base", "extended")
    }
    with open(f"{work}/tokenizer/extended/report.json", encoding="utf-8") as handle:
        report = json.load(handle)
    from tokenizer.extend import read_split

    heldout = read_split(args.docs, ["zh"], 0.05, 2_000_000)[1]["zh"]  # the report's held-out documents
    files = {"base": f"{work}/tokenizer/tokenizer.json", "extended": f"{work}/tokenizer/extended/tokenizer.json"}
    print(
        f"\n| tokenizer | vocabulary | zh chars/token | zh chars/token, Han runs | zh val bits/byte after "
        f"{args.steps} steps | zh text seen (MB) |\n| --- | --- | --- | --- | --- | --- |"
    )
    for name in ("base", "extended"):
        with open(f"{work}/zh_{name}/manifest.json", encoding="utf-8") as handle:
            manifest = json.load(handle)
        row = continued[name]
        bytes_per_token = row["val_loss"] / math.log(2) / row["val_bpb"]  # of the validation text
        print(
            f"| {name} | {manifest['vocab_size']} | {report['results'][name]['zh']['chars_per_token']:.3f} | "
            f"{han_chars_per_token(files[name], heldout):.3f} | {row['val_bpb']:.4f} | "
            f"{row['tokens'] * bytes_per_token / 1e6:.2f} |"
        )
    print(
        f"\nzh text seen: training tokens x the validation text's bytes per token. Added tokens: "
        f"{work}/tokenizer/extended/report.md"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
