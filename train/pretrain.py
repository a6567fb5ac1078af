"""Pretrain the LLaMA-style decoder (train/model.py) on token shards or a text file.

    python -m train.pretrain --config configs/train/tiny.yaml [--set train.max_steps=50] [--resume]
    torchrun --nproc_per_node 8 -m train.pretrain --config configs/train/125m.yaml

Writes to `checkpoint.dir`: model.safetensors + model_config.json (final weights),
checkpoints/step_N (resumable), metrics.jsonl, tensorboard/, hf/ (Hugging Face export).
The last line printed is `val_loss X tokens_per_s Y`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from train.checkpoint import (
    failpoint,
    latest_checkpoint,
    load_checkpoint,
    lr_schedule,
    model_state,
    read_initial_weights,
    remove_partial_checkpoints,
    save_checkpoint,
    save_weights,
)
from train.config import TrainConfig, load_config, parse_run_arguments
from train.data import TokenArray, TokenLoader, TokenShards, TokenSource, WindowDataset
from train.export import export_hf
from train.model import Transformer
from train.runtime import (
    MetricsLog,
    Runtime,
    build_optimizer,
    gradient_sync,
    init_runtime,
    lr_at,
    parallelize,
    peak_flops,
)

BYTES_PER_TOKEN_SAMPLE = 1_000_000  # validation tokens decoded to measure bytes per token


@dataclass
class Data:
    train: TokenLoader
    val: TokenSource
    bytes_per_token: float  # of the validation text, for bits per byte
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    start: list[int]  # what precedes a document in the stream (a prompt is appended to it)
    tokenizer_dir: str | None
    val_batch_size: int  # data.batch_size, or less when the validation split is smaller than one batch


def tokenizer_dir(shards: str) -> str:
    with open(os.path.join(shards, "manifest.json"), encoding="utf-8") as handle:
        recorded = os.path.dirname(json.load(handle)["tokenizer"]["path"])
    for candidate in (recorded, os.path.join(os.path.dirname(os.path.abspath(shards)), "tokenizer")):
        if os.path.exists(os.path.join(candidate, "tokenizer.json")):
            return candidate
    raise FileNotFoundError(f"no tokenizer.json for {shards} (looked in {recorded} and beside the shards)")


def load_data(config: TrainConfig, runtime: Runtime) -> Data:
    data, seed = config.data, config.train.seed
    common = dict(rank=runtime.rank, world_size=runtime.world_size, seed=seed, num_workers=data.num_workers)
    if data.text:  # byte-level: token = byte, the split as nanoGPT's prepare.py (first 90 % train)
        raw = np.fromfile(data.text, dtype=np.uint8)
        split = int(len(raw) * (1 - data.text_val_fraction))
        train = TokenLoader(TokenArray(raw[:split]), data.seq_len, data.batch_size, **common)
        val = TokenArray(raw[split:])
        return Data(
            train,
            val,
            1.0,
            lambda text: list(text.encode()),
            lambda ids: bytes(ids).decode(errors="replace"),
            list(b"\n"),
            None,
            val_batch_size(val, config, runtime),
        )
    from tokenizers import Tokenizer

    folder = tokenizer_dir(data.shards)
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    train = TokenLoader(data.shards, data.seq_len, data.batch_size, split="train", **common)
    val = TokenShards(data.shards, "val")
    batch_size = val_batch_size(val, config, runtime)
    return Data(
        train,
        val,
        bytes_per_token(val, tokenizer.decode),
        lambda text: tokenizer.encode(text).ids,
        tokenizer.decode,
        [train.source.manifest["eos_id"]],
        folder,
        batch_size,
    )


def val_batch_size(val: TokenSource, config: TrainConfig, runtime: Runtime) -> int:
    """Validation windows per process and batch: data.batch_size, or fewer when the validation split
    has less than one global batch (a small split is still evaluated whole). Checked before training,
    so a split too small for one window per process fails now, not after the last step."""
    windows = len(WindowDataset(val, config.data.seq_len))
    if windows < runtime.world_size:
        raise ValueError(
            f"the validation split holds {windows} window(s) of data.seq_len + 1 = "
            f"{config.data.seq_len + 1} tokens, fewer than one per process ({runtime.world_size}); "
            "hold out more validation text (shards.val_fraction, data.text_val_fraction) or "
            "shorten data.seq_len"
        )
    batch_size = min(config.data.batch_size, windows // runtime.world_size)
    if batch_size < config.data.batch_size and runtime.is_main:
        print(
            f"validation: {windows} windows, fewer than one batch of {config.data.batch_size} x "
            f"{runtime.world_size}; evaluating in batches of {batch_size}",
            file=sys.stderr,
        )
    return batch_size


def bytes_per_token(source: TokenShards, decode: Callable[[list[int]], str]) -> float:
    """UTF-8 bytes per token of (a prefix of) the validation documents, special tokens excluded."""
    tokens = text_bytes = 0
    for index in range(len(source.sizes)):
        stream, offsets = source.tokens(index), source.document_offsets(index)
        for start, end in zip(offsets[:-1], offsets[1:]):
            text_bytes += len(decode(stream[start:end].tolist()).encode())
            tokens += int(end - start)
            if tokens >= BYTES_PER_TOKEN_SAMPLE:
                return text_bytes / tokens
    return text_bytes / max(tokens, 1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data, config: TrainConfig, runtime: Runtime) -> dict[str, float]:
    """Mean validation loss over `eval.batches` batches (0 = all). A budget takes windows from all of
    the split, drawn at random once (the train seed): the same windows in every pass."""
    loader = TokenLoader(
        data.val,
        config.data.seq_len,
        data.val_batch_size,
        rank=runtime.rank,
        world_size=runtime.world_size,
        seed=config.train.seed,
        shuffle=config.eval.batches > 0,
        loop=False,
    )
    model.eval()
    total, count = 0.0, 0
    for batch, (inputs, targets) in enumerate(loader):
        if config.eval.batches and batch >= config.eval.batches:
            break
        with runtime.autocast():
            _, loss = model(inputs.to(runtime.device), targets.to(runtime.device))
        total, count = total + loss.item() * targets.numel(), count + targets.numel()
    model.train()
    total, count = runtime.all_reduce_sum([total, count])
    loss = total / count
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50)), "val_bpb": loss / math.log(2) / data.bytes_per_token}


def generate_sample(model: Transformer, data: Data, config: TrainConfig, runtime: Runtime) -> str:
    sample = config.sample
    prompt = data.start + data.encode(sample.prompt)
    tokens = torch.tensor([prompt], device=runtime.device)
    model.eval()
    generator = torch.Generator(runtime.device).manual_seed(config.train.seed)
    with runtime.autocast():
        out = model.generate(
            tokens, sample.tokens, temperature=sample.temperature, top_k=sample.top_k, generator=generator
        )
    model.train()
    return sample.prompt + data.decode(out[0, len(prompt) :].tolist())


def train(config: TrainConfig, resume: bool = False) -> dict[str, float]:
    runtime = init_runtime(config.train)
    torch.manual_seed(config.train.seed)  # same initial weights on every rank
    model_config = config.model_config()
    data = load_data(config, runtime)
    raw_model = Transformer(model_config).to(runtime.device)
    out_dir, checkpoints = config.checkpoint.dir, os.path.join(config.checkpoint.dir, "checkpoints")
    path = latest_checkpoint(checkpoints) if resume else None
    if config.init_from and not path:  # a resumed run's checkpoint already holds the (resized) weights
        raw_model.load_state_dict(read_initial_weights(config.init_from, model_config, data.tokenizer_dir))
    model = parallelize(raw_model, runtime, config.train)
    optimizer = build_optimizer(model, config.optim, runtime.device)
    schedule = lr_schedule(config.optim, config.train.max_steps)
    step, tokens_seen, metric_rows, saved_step = 0, 0, 0, None
    if runtime.is_main:
        remove_partial_checkpoints(checkpoints)  # a save that was killed before it completed
    if path:
        state = load_checkpoint(
            path, model, model_config, optimizer, runtime.rank, schedule, config.checkpoint.allow_schedule_change
        )
        step, tokens_seen, metric_rows = state["step"], state["tokens"], state["metric_rows"]
        saved_step = step
        data.train.load_state_dict(state["loader"])
        if runtime.is_main:
            print(f"resumed from {path} at step {step}", file=sys.stderr)
    log = MetricsLog(out_dir, runtime, config.log.tensorboard, step, metric_rows)
    loop, accum = config.train, config.train.grad_accum
    tokens_per_step = config.data.batch_size * config.data.seq_len * accum * runtime.world_size
    flops_per_token, peak = raw_model.flops_per_token(config.data.seq_len), peak_flops(runtime.device)
    if runtime.is_main:
        print(
            f"model: {raw_model.num_params() / 1e6:.2f}M parameters ({raw_model.num_params(False) / 1e6:.2f}M "
            f"without embeddings); {tokens_per_step:,} tokens per step; {runtime.world_size} process(es) on "
            f"{runtime.device.type}{' with bf16 autocast' if runtime.autocast_dtype else ''}",
            file=sys.stderr,
        )

    def checkpoint(state_step: int) -> None:
        save_checkpoint(
            checkpoints,
            model,
            model_config,
            optimizer,
            {
                "step": state_step,
                "tokens": tokens_seen,
                "loader": data.train.state_dict(),
                "schedule": schedule,
                "metric_rows": log.rows,
            },
            runtime.rank,
            config.checkpoint.keep,
        )

    batches = iter(data.train)
    progress = tqdm(
        total=loop.max_steps,
        initial=step,
        disable=not (runtime.is_main and config.log.progress),
        desc="pretrain",
        unit="step",
        dynamic_ncols=True,
    )
    train_seconds, trained_tokens, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    while step < loop.max_steps:
        lr = lr_at(step, config.optim, loop.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=runtime.device)
        for micro in range(accum):
            inputs, targets = next(batches)
            with gradient_sync(model, micro == accum - 1), runtime.autocast():
                _, loss = model(
                    inputs.to(runtime.device, non_blocking=True), targets.to(runtime.device, non_blocking=True)
                )
                (loss / accum).backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), config.optim.grad_clip or float("inf"), foreach=True
        )  # one call for all tensors, also on CPU
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, tokens_seen, window_tokens = step + 1, tokens_seen + tokens_per_step, window_tokens + tokens_per_step
        trained_tokens += tokens_per_step
        progress.update()
        if step % config.log.every == 0 or step == loop.max_steps:
            loss_value = runtime.all_reduce_sum([loss_sum.item() / accum])[0] / runtime.world_size
            elapsed = time.perf_counter() - window_start
            train_seconds += elapsed
            metrics = {
                "loss": loss_value,
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens": tokens_seen,
                "tokens_per_s": window_tokens / elapsed,
            }
            if peak:
                metrics["mfu"] = flops_per_token * metrics["tokens_per_s"] / (peak * runtime.world_size)
            log.write(step, **metrics)
            progress.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{metrics['tokens_per_s']:,.0f}")
            window_tokens, window_start = 0, time.perf_counter()
        paused = time.perf_counter()  # evaluation and checkpoints do not count as training time
        failpoint("step", step)
        if config.eval.every and step % config.eval.every == 0 and step < loop.max_steps:
            log.evaluation(step, evaluate(model, data, config, runtime))
        if config.checkpoint.every and step % config.checkpoint.every == 0 and step < loop.max_steps:
            checkpoint(step)
        window_start += time.perf_counter() - paused
    progress.close()
    if step != saved_step:  # the final state is safe before the final evaluation
        checkpoint(step)
    failpoint("final", step)
    final = evaluate(model, data, config, runtime)
    log.evaluation(step, final)
    state = model_state(model, model_config)
    if runtime.is_main:
        save_weights(state, model_config, out_dir)
        if config.export_hf and data.tokenizer_dir:
            export_hf(state, model_config, os.path.join(out_dir, "hf"), data.tokenizer_dir)
    if config.sample.tokens:  # on every rank: under FSDP the forward pass is collective
        sample = generate_sample(raw_model, data, config, runtime)
        if runtime.is_main:
            print(f"--- sample ---\n{sample}\n--------------", file=sys.stderr)
    log.close()
    final["tokens_per_s"] = trained_tokens / train_seconds if train_seconds else 0.0
    if dist.is_initialized():
        dist.destroy_process_group()
    return final


def main(argv: list[str] | None = None) -> int:
    config, resume = parse_run_arguments(
        argv,
        "python -m train.pretrain",
        "Pretrain the LLaMA-style decoder on token shards (make corpus) or a text file. "
        "Runs on CPU or GPU; under torchrun with DDP or FSDP2.",
        "configs/train/tiny.yaml",
        load_config,
    )
    final = train(config, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"val_loss {final['val_loss']:.4f} tokens_per_s {final['tokens_per_s']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
