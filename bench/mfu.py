"""Training throughput and MFU of a model config: `python -m bench.mfu --config configs/train/350m.yaml --steps 20`.

Times the trainer's optimizer step (train.pretrain's: grad_accum micro-steps of forward and
backward under autocast, gradient clipping, AdamW) on random tokens, so no corpus is needed; the
vocabulary is the config's `model.vocab_size`, else the shard manifest's, else --vocab-size.
Uses what the config asks for and the trainer does on a GPU: bf16 autocast, `torch.compile` of the
blocks (`train.compile`), and on CUDA the flash attention kernel only (an error rather than a
silent fallback to another one). One process, the first device; --set overrides config keys.

Prints the setup, then one line:

    tokens_per_s X mfu Y peak_memory_gib Z

MFU = model FLOPs per token (train.model.Transformer.flops_per_token: 6 x matmul weights +
attention) x tokens/s / the device's dense bf16 peak (train.runtime.PEAK_BF16_FLOPS, e.g. H100/H200
SXM 989 TFLOPS, A100 312); `n/a` on CPU or an unknown GPU. Peak memory: CUDA's peak allocated
tensors, or on CPU the process's peak resident set. The first --warmup steps (compilation,
allocator warm-up) are not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from typing import Any

import torch

from stages.base import ConfigError
from tokenizer.config import parse_set
from train.config import TrainConfig, load_config
from train.model import Transformer
from train.runtime import Runtime, build_optimizer, init_runtime, parallelize, peak_flops


def benchmark_config(path: str, overrides: dict[str, Any], vocab_size: int) -> TrainConfig:
    """The config with `model.vocab_size` = `vocab_size` when neither it nor a shard manifest sets one."""
    try:
        return load_config(path, overrides)
    except ConfigError as error:
        if "model.vocab_size" in overrides or not any(key == "data.shards" for key, _ in error.problems):
            raise
    return load_config(path, {**overrides, "model.vocab_size": vocab_size})


def attention_kernels(device: torch.device) -> contextlib.AbstractContextManager:
    """Flash attention only on CUDA (it also serves grouped-query attention); CPU picks its own."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.FLASH_ATTENTION)


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(config: TrainConfig, steps: int, warmup: int, runtime: Runtime) -> dict[str, float | None]:
    """Time `steps` optimizer steps after `warmup` untimed ones; tokens/s, MFU (None if no peak), peak memory."""
    torch.manual_seed(config.train.seed)
    model_config = config.model_config()
    model = Transformer(model_config).to(runtime.device)
    flops_per_token = model.flops_per_token(config.data.seq_len)
    model = parallelize(model, runtime, config.train)
    optimizer = build_optimizer(model, config.optim, runtime.device)
    batch, seq_len, accum = config.data.batch_size, config.data.seq_len, config.train.grad_accum
    tokens = torch.randint(0, model_config.vocab_size, (accum, batch, seq_len + 1), device=runtime.device)

    def step() -> torch.Tensor:
        for micro in range(accum):
            with runtime.autocast():
                _, loss = model(tokens[micro, :, :-1], tokens[micro, :, 1:])
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def synchronize() -> None:
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)

    with attention_kernels(runtime.device):
        for _ in range(warmup):
            step()
        synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            loss = step()
        loss.item()  # waits for the device
        synchronize()
        seconds = time.perf_counter() - started
    tokens_per_s = steps * accum * batch * seq_len / seconds
    peak = peak_flops(runtime.device)
    return {
        "tokens_per_s": tokens_per_s,
        "mfu": flops_per_token * tokens_per_s / peak if peak else None,
        "peak_memory_gib": peak_memory_bytes(runtime.device) / 2**30,
        "flops_per_token": flops_per_token,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training YAML, e.g. configs/train/350m.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=32000,
        help="vocabulary when neither model.vocab_size nor a shard manifest gives one",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.batch_size=4 (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    try:
        config = benchmark_config(args.config, parse_set(args.set), args.vocab_size)
    except ValueError as error:
        parser.exit(2, f"bench.mfu: config error: {error}\n")
    runtime = init_runtime(config.train)
    device = torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "cpu"
    model, data = config.model_config(), config.data
    print(f"command: python -m bench.mfu {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"device {device}; torch {torch.__version__}; {'bf16 autocast' if runtime.autocast_dtype else 'fp32'}, "
        f"compile {config.train.compile}, attention {'flash' if runtime.device.type == 'cuda' else 'CPU SDPA'}"
    )
    print(
        f"model dim {model.dim} layers {model.n_layers} heads {model.n_heads}/{model.n_kv_heads} vocab "
        f"{model.vocab_size}; {data.batch_size} x {data.seq_len} tokens x {config.train.grad_accum} micro-steps "
        f"per step; {args.steps} timed steps after {args.warmup}"
    )
    result = measure(config, args.steps, args.warmup, runtime)
    mfu = "n/a" if result["mfu"] is None else f"{100 * result['mfu']:.1f}%"
    print(f"flops_per_token {result['flops_per_token']:.4g} seconds {result['seconds']:.2f}")
    print(f"tokens_per_s {result['tokens_per_s']:.0f} mfu {mfu} peak_memory_gib {result['peak_memory_gib']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
