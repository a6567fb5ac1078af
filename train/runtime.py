"""What every training entry point shares: device and torchrun process group, parallel
wrapping (DDP / FSDP2, compile), the learning-rate schedule, the optimizer, metrics logs."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from train.config import LoopConfig, OptimConfig


@dataclass
class Runtime:
    rank: int
    world_size: int
    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 autocast (default on GPU; on CPU only when asked); None = fp32

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.
    On CPU every op's output is a fresh allocation; by default glibc serves the larger ones from
    new mmaps or trims its heap after they are freed, so the next op faults its pages in again
    (~1,100 page faults and ~3.5 ms of kernel time per shakespeare_char step, measured; the
    usual remedy is a preloaded tcmalloc or jemalloc, which a running process cannot do).
    Costs memory only up to the process's peak. False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # malloc.h
    # 32 MiB: the largest mmap threshold glibc accepts on 64-bit; larger blocks still get their own mmap
    settings = ((m_mmap_threshold, 2**25), (m_trim_threshold, 2**31 - 1), (m_top_pad, 2**26))
    return all([libc.mallopt(option, value) == 1 for option, value in settings])


def init_runtime(loop: LoopConfig) -> Runtime:
    """One process of a torchrun job (RANK/WORLD_SIZE/LOCAL_RANK), or a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = loop.device == "cuda" or (loop.device == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError("train.device: cuda requested but torch sees no GPU (is a CPU build of torch installed?)")
    device = torch.device("cuda", local_rank) if want_cuda else torch.device("cpu")
    if want_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        keep_freed_memory()
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    bf16 = loop.dtype == "bf16" or (loop.dtype == "auto" and want_cuda)
    return Runtime(rank, world_size, device, torch.bfloat16 if bf16 else None)


def parallelize(model: nn.Module, runtime: Runtime, loop: LoopConfig) -> nn.Module:
    """Compile blocks in place (state-dict names unchanged), then wrap for several processes."""
    if loop.compile:
        for block in model.layers:
            block.compile()
    if runtime.world_size == 1:
        return model
    if loop.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.layers:  # one all-gather per block, freed after use
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)


def gradient_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce on all but the last micro-step of an accumulation."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()
    if hasattr(model, "no_sync") and not sync:  # DDP
        return model.no_sync()
    return contextlib.nullcontext()


def build_optimizer(model: nn.Module, optim: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (linear and embedding weights), none on norms. Fused (one
    kernel per parameter) where torch has it: on CPU too, where the per-tensor loop costs a small
    model ~10 % of its step."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, fused=device.type in ("cpu", "cuda")
    )


def lr_at(step: int, optim: OptimConfig, max_steps: int) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at `decay_steps`.
    A pure function of the step: resuming needs no scheduler object."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    decay_steps = optim.decay_steps or max_steps
    progress = min(1.0, (step - optim.warmup_steps) / max(1, decay_steps - optim.warmup_steps))
    floor = optim.lr * optim.min_lr_ratio
    return floor + (optim.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, by substring of the CUDA device name;
# the first match wins, so specific variants come before their family.
PEAK_BF16_FLOPS = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
]


def peak_flops(device: torch.device) -> float | None:
    """The device's bf16 peak, or None (CPU, unknown GPU): MFU is then not reported."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


class MetricsLog:
    """Rank 0 appends one JSON object per line to metrics.jsonl and mirrors scalars to TensorBoard.

    A run that starts at `step` (0, or the step of the checkpoint it resumed from) keeps only the
    first `rows` lines of an existing metrics.jsonl, those written before that checkpoint (its
    trainer state records the count, `metric_rows`), and TensorBoard drops the events after `step`."""

    def __init__(self, directory: str, runtime: Runtime, tensorboard: bool, step: int = 0, rows: int = 0):
        self.active = runtime.is_main
        self.path = os.path.join(directory, "metrics.jsonl")
        self.writer = None
        self.rows = rows  # lines in metrics.jsonl
        if self.active:
            os.makedirs(directory, exist_ok=True)
            self.rows = self._truncate(rows)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(os.path.join(directory, "tensorboard"), purge_step=step + 1 if step else 0)

    def _truncate(self, rows: int) -> int:
        """Keep the first `rows` lines (fewer if the file has fewer); returns how many are left."""
        if not os.path.exists(self.path):
            return 0
        with open(self.path, encoding="utf-8") as handle:
            kept = [line for line, _ in zip(handle, range(rows))]
        partial = self.path + ".tmp"
        with open(partial, "w", encoding="utf-8") as handle:
            handle.writelines(kept)
        os.replace(partial, self.path)
        return len(kept)

    def write(self, step: int, **metrics: Any) -> None:
        if not self.active:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            # time (Unix seconds) dates each row, e.g. for time to a validation loss (bench.vs_nanogpt)
            handle.write(json.dumps({"step": step, **metrics, "time": time.time()}) + "\n")
        self.rows += 1
        if self.writer:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)

    def evaluation(self, step: int, metrics: dict[str, Any]) -> None:
        """Write an evaluation's metrics, and print them as one line (above the progress bar)."""
        self.write(step, **metrics)
        shown = "  ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, float))
        if self.active and shown:
            tqdm.write(f"step {step}: {shown}", file=sys.stderr)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
