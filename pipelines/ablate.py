"""`make ablate`: did each stage of the pipeline help? Proxy models trained on corpus variants.

    python -m pipelines.ablate --config configs/ablate.yaml [--set tokens=262144]

From one raw input, each variant runs the corpus pipeline (pipelines.corpus) with a subset of the
corpus config's stages, with their parameters as configured there. Equal treatment then:
1. one tokenizer (tokenizer.train), trained on one variant's documents, writes every variant's
   shards (pipelines.shards, copied beside each variant's shards so none trains its own);
2. the same proxy model (train.pretrain) trains on each for the same number of tokens (a small
   variant is repeated for more epochs, as a real run would), once per seed;
3. every model is scored on the same held-out text, which the decontaminate stage's n-gram index
   checks no variant contains: bits per byte (the trainer's own evaluation), and a cheap
   downstream signal that a tiny model can show, word order: how often the model prefers a
   span of held-out text to the same words shuffled.
Writes `<out>/ablate.json` and `<out>/report.html`, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq
import torch
from pydantic import Field, PositiveInt, model_validator

from pipelines.config import Source, parse_config
from stages.base import ConfigError, Strict, validated
from stages.decontaminate import Decontaminate, read_eval_texts
from tokenizer.config import parse_set, read_yaml
from tokenizer.models import TOKENIZER_FILES

REPORT = "report.html"
WORD_ORDER_SPAN = 20  # words per span of the word-order test: ~30 tokens, well inside a proxy's context


class AblateConfig(Strict):
    seed: int = 0
    out: str = "out/ablate"
    corpus: str = "configs/corpus.yaml"  # stages and their parameters
    sources: dict[str, Source] = Field(min_length=1)  # the raw input (replaces the corpus config's sources)
    heldout: str  # JSONL (`text`) or text with one document per line: the evaluation text
    variants: dict[str, list[str] | Literal["all"]] = Field(min_length=2)  # stages after ingest; all = every one
    tokenizer_variant: str = "raw"  # whose documents train the one tokenizer
    shards: dict[str, Any] = {}  # pipelines.shards config (tokenizer, shards); docs and dirs set per variant
    train: str  # the proxy's train/pretrain config
    tokens: PositiveInt  # training tokens per run
    seeds: list[int] = Field(min_length=2)
    num_cpus: PositiveInt | None = None

    @model_validator(mode="after")
    def _tokenizer_variant(self) -> AblateConfig:
        if self.tokenizer_variant not in self.variants:
            raise ValueError(f"tokenizer_variant {self.tokenizer_variant!r} is not a variant")
        return self


def load_ablate_config(path: str, overrides: dict[str, Any] | None = None) -> AblateConfig:
    return validated(AblateConfig, read_yaml(path, overrides))


def folder(name: str) -> str:
    """A variant's folder name: `+dedup` -> `dedup`."""
    return name.lstrip("+")


def variant_corpus(config: AblateConfig, name: str, corpus: dict) -> dict:
    """The corpus config of a variant: the corpus config's stages it names, the ablation's
    sources, its own output folder. A stage's per-source rules for sources the ablation does
    not have are dropped (the config check refuses them)."""
    chosen = config.variants[name]
    known = [stage["name"] for stage in corpus["stages"]]
    missing = [] if chosen == "all" else [stage for stage in chosen if stage not in known]
    if missing:
        raise ConfigError([(f"variants.{name}", f"{', '.join(missing)} not in {config.corpus} (stages: {known})")])
    stages = []
    for stage in corpus["stages"]:
        if chosen != "all" and stage["name"] not in chosen:
            continue
        params = dict(stage.get("params") or {})
        if isinstance(params.get("per_source"), dict):
            params["per_source"] = {k: v for k, v in params["per_source"].items() if k in config.sources}
        stages.append({"name": stage["name"], "params": params})
    return {
        **corpus,
        "seed": config.seed,
        "sources": {source: spec.model_dump() for source, spec in config.sources.items()},
        "stages": stages,
        "output": {**corpus.get("output", {}), "dir": os.path.join(config.out, folder(name), "corpus")},
        "execution": {**corpus.get("execution", {}), "num_cpus": config.num_cpus},
    }


def finished_stats(variant) -> dict | None:
    """stats.json of the variant's finished corpus output if its `_SUCCESS` names this config's digest."""
    try:
        with open(os.path.join(variant.output.dir, "_SUCCESS"), encoding="utf-8") as handle:
            success = json.load(handle)
        with open(os.path.join(variant.output.dir, "stats.json"), encoding="utf-8") as handle:
            stats = json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return stats if success.get("config_digest") == variant.digest else None


def build_variants(config: AblateConfig, reuse: bool = False) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Run the corpus pipeline once per variant: the stages of each, and its stats.json. `reuse` keeps
    a finished output of the same config (not checked against changed input files)."""
    from pipelines.corpus import run

    corpus = read_yaml(config.corpus)
    variants = {
        name: parse_config(variant_corpus(config, name, corpus)) for name in config.variants
    }  # all checked first
    stats = {}
    for name, variant in variants.items():
        print(f"ablate: variant {name}: {', '.join(s.name for s in variant.stages)}", file=sys.stderr, flush=True)
        stats[name] = (reuse and finished_stats(variant)) or run(variant, fresh=True)
    return {name: [s.name for s in variant.stages] for name, variant in variants.items()}, stats


def contamination(config: AblateConfig, name: str) -> int:
    """Kept documents of a variant that share an n-gram with the held-out text (decontaminate's index)."""
    stage = Decontaminate(files=[config.heldout], mode="flag")
    table = pq.read_table(os.path.join(config.out, folder(name), "corpus", "docs"), columns=["text", "lang"])
    return sum(hit is not None for hit in stage.score(table)["contaminated_by"])


def shards_config(config: AblateConfig, docs: str, tokenizer_dir: str, shards_dir: str):
    from tokenizer.config import parse_config as parse_shards_config

    raw = json.loads(json.dumps(config.shards))  # a deep copy
    raw.update(docs=docs, seed=config.seed, num_cpus=config.num_cpus)
    raw.setdefault("tokenizer", {})["dir"] = tokenizer_dir
    raw.setdefault("shards", {})["dir"] = shards_dir
    return parse_shards_config(raw)


def build_shards(config: AblateConfig) -> tuple[str, dict[str, dict]]:
    """Train the one tokenizer on the tokenizer variant, then write every variant's shards with it."""
    from pipelines.shards import run as write_shards
    from tokenizer.train import train as train_tokenizer

    docs = {name: os.path.join(config.out, folder(name), "corpus", "docs") for name in config.variants}
    tokenizer_dir = os.path.join(config.out, "tokenizer")
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    train_tokenizer(shards_config(config, docs[config.tokenizer_variant], tokenizer_dir, ""), show_progress=False)
    manifests = {}
    for name in config.variants:
        # The tokenizer's files without its report: pipelines.shards uses such a tokenizer as it is.
        local = os.path.join(config.out, folder(name), "tokenizer")
        shutil.rmtree(local, ignore_errors=True)
        os.makedirs(local)
        for file in TOKENIZER_FILES:
            shutil.copyfile(os.path.join(tokenizer_dir, file), os.path.join(local, file))
        shards_dir = os.path.join(config.out, folder(name), "shards")
        manifests[name] = write_shards(shards_config(config, docs[name], local, shards_dir))
    return tokenizer_dir, manifests


def heldout_tokens(texts: list[str], encode, eos_id: int) -> np.ndarray:
    """The held-out documents as the shards hold documents: tokens, then EOS."""
    ids = [token for text in texts for token in [*encode(text), eos_id]]
    return np.array(ids, dtype=np.int64)


def word_order_spans(texts: list[str], seed: int) -> list[tuple[str, str]]:
    """(span, the same words shuffled) for consecutive spans of WORD_ORDER_SPAN held-out words."""
    rng = random.Random(seed)
    pairs = []
    for text in texts:
        words = text.split()
        for start in range(0, len(words) - WORD_ORDER_SPAN + 1, WORD_ORDER_SPAN):
            span = words[start : start + WORD_ORDER_SPAN]
            shuffled = span[:]
            while shuffled == span:
                rng.shuffle(shuffled)
            pairs.append((" ".join(span), " ".join(shuffled)))
    return pairs


@torch.no_grad()
def log_prob(model: torch.nn.Module, tokens: list[int]) -> float:
    """Sum of log p(token | the ones before) over tokens[1:]."""
    ids = torch.tensor([tokens], device=next(model.parameters()).device)
    logits, _ = model(ids[:, :-1])
    return float(torch.log_softmax(logits.float(), dim=-1)[0].gather(1, ids[0, 1:, None]).sum())


def word_order_accuracy(model: torch.nn.Module, pairs: list[tuple[str, str]], encode, eos_id: int) -> float:
    model.eval()
    wins = sum(
        log_prob(model, [eos_id, *encode(real)]) > log_prob(model, [eos_id, *encode(fake)]) for real, fake in pairs
    )
    return wins / len(pairs)


def train_proxy(config: AblateConfig, name: str, seed: int, heldout: SimpleNamespace) -> dict:
    """Train the proxy on a variant with a seed; its held-out bits per byte and word-order accuracy."""
    from train.checkpoint import load_model
    from train.config import load_config as load_train_config
    from train.data import TokenArray
    from train.pretrain import evaluate, train, val_batch_size
    from train.runtime import init_runtime

    shards = os.path.join(config.out, folder(name), "shards")
    directory = os.path.join(config.out, folder(name), f"seed-{seed}")
    shutil.rmtree(directory, ignore_errors=True)
    probe = load_train_config(config.train, {"data.shards": shards})
    steps = math.ceil(config.tokens / (probe.data.batch_size * probe.data.seq_len * probe.train.grad_accum))
    train_config = load_train_config(
        config.train,
        {"data.shards": shards, "checkpoint.dir": directory, "train.seed": seed, "train.max_steps": steps},
    )
    started = time.perf_counter()
    final = train(train_config)
    seconds = time.perf_counter() - started
    runtime = init_runtime(train_config.train)
    model = load_model(directory, runtime.device)
    # The trainer's evaluation (windows of seq_len + 1, bits per byte), on the held-out tokens.
    val = TokenArray(heldout.tokens)
    data = SimpleNamespace(
        val=val, val_batch_size=val_batch_size(val, train_config, runtime), bytes_per_token=heldout.bytes_per_token
    )
    scored = evaluate(model, data, train_config, runtime)
    return {
        "seed": seed,
        "steps": steps,
        "tokens": steps * probe.data.batch_size * probe.data.seq_len * probe.train.grad_accum,
        "heldout_bpb": round(scored["val_bpb"], 5),
        "heldout_loss": round(scored["val_loss"], 5),
        "word_order": round(word_order_accuracy(model, heldout.pairs, heldout.encode, heldout.eos_id), 5),
        "own_val_bpb": round(final["val_bpb"], 5),  # the variant's own validation split: not comparable across variants
        "train_seconds": round(seconds, 1),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 5),
        "std": round(statistics.stdev(values), 5) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarise(stages: list[str], stats: dict, manifest: dict, runs: list[dict], hits: int) -> dict:
    train_tokens = manifest["splits"]["train"]["tokens"]
    return {
        "stages": stages,
        "documents": stats["kept_documents"],
        "input_documents": stats["input_documents"],
        "bytes": stats["bytes_out"],
        "train_tokens": train_tokens,
        "val_tokens": manifest["splits"]["val"]["tokens"],
        "epochs": round(runs[0]["tokens"] / train_tokens, 2) if train_tokens else None,
        "heldout_overlap_documents": hits,
        "runs": runs,
        "heldout_bpb": spread([run["heldout_bpb"] for run in runs]),
        "word_order": spread([run["word_order"] for run in runs]),
    }


def separated(result: dict, baseline: str) -> dict[str, dict]:
    """Each variant's mean bits per byte against the baseline's, and whether the two seed ranges
    overlap (with 2 seeds, ranges that do not overlap are the least one can ask)."""
    base = result["variants"][baseline]["heldout_bpb"]
    out = {}
    for name, variant in result["variants"].items():
        bpb = variant["heldout_bpb"]
        out[name] = {
            "delta_bpb": round(bpb["mean"] - base["mean"], 5),
            "beyond_seed_spread": name != baseline and (bpb["max"] < base["min"] or bpb["min"] > base["max"]),
        }
    return out


def table(result: dict) -> list[list[str]]:
    rows = []
    for name, v in result["variants"].items():
        bpb, order, vs = v["heldout_bpb"], v["word_order"], result["versus_baseline"][name]
        rows.append(
            [
                name,
                f"{v['documents']:,}",
                f"{v['bytes'] / 2**20:.2f}",
                f"{v['train_tokens']:,}",
                f"{v['epochs']:.1f}",
                f"{bpb['mean']:.4f} ± {bpb['std']:.4f}",
                f"{bpb['min']:.4f}–{bpb['max']:.4f}",
                f"{vs['delta_bpb']:+.4f}" + (" *" if vs["beyond_seed_spread"] else ""),
                f"{order['mean']:.3f} ± {order['std']:.3f}",
            ]
        )
    return rows


HEADERS = [
    "variant",
    "documents",
    "MiB",
    "train tokens",
    "epochs",
    "held-out bpb (mean ± sd)",
    "bpb range over seeds",
    "Δ bpb vs baseline",
    "word order",
]


def bpb_chart(result: dict) -> str:
    """Held-out bits per byte per variant: each seed a dot, the mean a bar."""
    from pipelines.report.charts import SERIES, figure, styled, to_svg

    @styled
    def draw() -> str:
        names = list(result["variants"])
        fig = figure(0.45 * len(names) + 0.9, width=7.5)
        ax = fig.subplots()
        for row, name in enumerate(names):
            variant = result["variants"][name]
            values = [run["heldout_bpb"] for run in variant["runs"]]
            ax.barh(row, variant["heldout_bpb"]["mean"], color=SERIES[0], alpha=0.35, height=0.6)
            ax.plot(values, [row] * len(values), "o", color=SERIES[0], markersize=4)
            ax.hlines(row, min(values), max(values), color=SERIES[0], linewidth=2)
        lows = [run["heldout_bpb"] for v in result["variants"].values() for run in v["runs"]]
        span = max(lows) - min(lows) or 0.01
        ax.set_xlim(min(lows) - 2 * span, max(lows) + span)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("held-out bits per byte (lower is better): bar = mean, dots = seeds, line = range")
        return to_svg(fig, "ablate-bpb")

    return draw()


def write_report(result: dict, path: str) -> None:
    import jinja2

    from pipelines.report.charts import counts
    from pipelines.report.page import Section

    section = Section(
        "ablate",
        "Did the pipeline help?",
        f"The same proxy model ({result['train_config']}) trained for {result['tokens_per_run']:,} tokens on each "
        f"corpus variant with seeds {result['seeds']}, evaluated on the same held-out text "
        f"({result['heldout']['documents']} documents, {result['heldout']['bytes']:,} bytes) that no variant "
        "contains. * marks a variant whose seed range does not overlap the baseline's.",
    )
    section.heading("Held-out bits per byte", "Which variant gives the better model, beyond the seed spread?")
    section.chart(bpb_chart(result))
    section.table(HEADERS, table(result))
    section.heading("Documents per variant", "How much text does each variant keep?")
    section.chart(counts({n: v["documents"] for n, v in result["variants"].items()}, "ablate-docs", "documents"))
    section.chart(counts({n: v["train_tokens"] for n, v in result["variants"].items()}, "ablate-tokens", "tokens"))
    section.table(
        ["variant", "stages after ingest"],
        [[name, ", ".join(v["stages"])] for name, v in result["variants"].items()],
    )
    section.code(json.dumps(result["config"], indent=2), "configuration")
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipelines.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = environment.get_template("report.html.j2").render(
        sections=[section],
        summary=[
            f"{len(result['variants'])} variants x {len(result['seeds'])} seeds in {result['seconds']['total']:.0f} s"
        ],
        stale=[],
        missing=[],
        root=result["config"]["out"],
        generated=time.strftime("%Y-%m-%d %H:%M %Z"),
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)


def heldout_set(config: AblateConfig, tokenizer_dir: str, eos_id: int) -> SimpleNamespace:
    """The held-out text as every proxy is scored on it: tokens (with EOS after each document, as
    in the shards), bytes per token, the word-order pairs, and the tokenizer's encode."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    texts = read_eval_texts(config.heldout, "text")

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text).ids

    tokens = heldout_tokens(texts, encode, eos_id)
    text_bytes = sum(len(text.encode()) for text in texts)
    return SimpleNamespace(
        documents=len(texts),
        bytes=text_bytes,
        tokens=tokens,
        bytes_per_token=text_bytes / len(tokens),  # EOS counted in tokens, not bytes, as the trainer counts
        pairs=word_order_spans(texts, config.seed),
        encode=encode,
        eos_id=eos_id,
        vocab_size=tokenizer.get_vocab_size(),
    )


def run(config: AblateConfig, reuse: bool = False) -> dict:
    """The whole ablation; returns what is written to `<out>/ablate.json`. `reuse`: see build_variants."""
    import ray

    from pipelines.corpus import init_ray

    started = time.perf_counter()
    os.makedirs(config.out, exist_ok=True)
    own_ray = not ray.is_initialized()
    init_ray(config.num_cpus)
    stages, stats = build_variants(config, reuse)
    corpus_seconds = time.perf_counter() - started
    hits = {name: contamination(config, name) for name in config.variants}
    if any(hits.values()):
        raise RuntimeError(f"held-out text found in the variants' documents: {hits}; rebuild the input without it")
    tokenizer_dir, manifests = build_shards(config)
    if own_ray:  # training runs in this process: Ray's idle workers and monitors would take CPU from it
        ray.shutdown()
    shards_seconds = time.perf_counter() - started - corpus_seconds
    eos_id = next(iter(manifests.values()))["eos_id"]
    heldout = heldout_set(config, tokenizer_dir, eos_id)
    variants = {}
    for name in config.variants:
        runs = []
        for seed in config.seeds:
            runs.append(train_proxy(config, name, seed, heldout))
            print(
                f"ablate: {name} seed {seed}: held-out bpb {runs[-1]['heldout_bpb']:.4f}", file=sys.stderr, flush=True
            )
        variants[name] = summarise(stages[name], stats[name], manifests[name], runs, hits[name])
    result = {
        "config": config.model_dump(mode="json"),
        "train_config": config.train,
        "tokens_per_run": variants[config.tokenizer_variant]["runs"][0]["tokens"],
        "seeds": config.seeds,
        "input": {
            "documents": stats[config.tokenizer_variant]["input_documents"],
            "bytes": stats[config.tokenizer_variant]["bytes_in"],
        },
        "heldout": {
            "path": config.heldout,
            "documents": heldout.documents,
            "bytes": heldout.bytes,
            "tokens": int(len(heldout.tokens)),
            "word_order_pairs": len(heldout.pairs),
        },
        "tokenizer": {
            "dir": tokenizer_dir,
            "trained_on": config.tokenizer_variant,
            "vocab_size": heldout.vocab_size,
            "eos_id": eos_id,
        },
        "baseline": config.tokenizer_variant,
        "variants": variants,
    }
    result["versus_baseline"] = separated(result, config.tokenizer_variant)
    total = time.perf_counter() - started
    result["seconds"] = {
        "corpus": round(corpus_seconds, 1),
        "shards": round(shards_seconds, 1),
        "train": round(total - corpus_seconds - shards_seconds, 1),
        "total": round(total, 1),
    }
    with open(os.path.join(config.out, "ablate.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    write_report(result, os.path.join(config.out, REPORT))
    return result


def print_table(result: dict) -> None:
    rows = [HEADERS] + table(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))
            )
        )
    print(
        f"{result['tokens_per_run']:,} training tokens per run, seeds {result['seeds']}; held-out: "
        f"{result['heldout']['documents']} documents, {result['heldout']['tokens']:,} tokens; "
        f"* = seed range clear of {result['baseline']}'s; {result['seconds']['total']:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ablate",
        description="Build corpus variants (stage subsets of the corpus config) from one raw input, train the same "
        "proxy model on each for the same number of tokens with several seeds, and compare them on held-out text "
        "in bits per byte. Writes <out>/ablate.json and <out>/report.html.",
        epilog="Example: python -m pipelines.ablate --config configs/ablate.yaml --set tokens=262144",
    )
    parser.add_argument("--config", default="configs/ablate.yaml", help="ablation YAML (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument(
        "--reuse-corpus",
        action="store_true",
        help="keep a variant's finished corpus output of the same config instead of rebuilding it (to iterate on "
        "the proxy; the input files are not checked for changes)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="Ray's own logs on the console (otherwise in <out>/logs)"
    )
    args = parser.parse_args(argv)
    try:
        config = load_ablate_config(args.config, parse_set(args.set))
    except (ValueError, FileNotFoundError) as error:
        print(f"ablate: config error: {error}", file=sys.stderr)
        return 2
    if not args.verbose:
        from pipelines.console import log_dir, quiet_ray
        from pipelines.corpus import init_ray

        quiet_ray(log_dir(config.out))
        init_ray(config.num_cpus, log_to_driver=False)
    result = run(config, args.reuse_corpus)
    print_table(result)
    print(f"report: {os.path.join(config.out, REPORT)}")
    return 0


if __name__ == "__main__":
    # Run the importable module, not __main__, so Ray workers find its functions by name.
    from pipelines.ablate import main as module_main

    sys.exit(module_main())
