"""Configuration of a pretraining run (`configs/train/*.yaml`).

YAML in, frozen dataclasses out; unknown keys and bad values fail at load time with the
key named. The `model` section holds `train.model.ModelConfig` fields; its `vocab_size`
defaults to the data's (the shard manifest's, or 256 for byte-level text).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from tokenizer.config import build_dataclass, parse_set, read_yaml
from train.model import ModelConfig


@dataclass(frozen=True)
class DataConfig:
    shards: str | None = "out/shards"  # token shards written by `make corpus` (pipelines.shards)
    text: str | None = None  # or one UTF-8 text file, trained byte-level (vocab 256); overrides `shards`
    text_val_fraction: float = 0.1  # text: the last fraction is validation (as nanoGPT splits)
    seq_len: int = 256
    batch_size: int = 8  # sequences per rank per micro-step
    num_workers: int = 0  # DataLoader worker processes per rank


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4  # peak learning rate, after linear warm-up; cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    decay_steps: int | None = None  # end of the cosine (default: train.max_steps)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1  # on matrices (linear and embedding weights) only, not norms
    grad_clip: float = 1.0  # max global gradient norm; 0 = off


@dataclass(frozen=True)
class LoopConfig:
    max_steps: int = 1000  # optimizer steps
    grad_accum: int = 1  # micro-steps per optimizer step
    seed: int = 0
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    dtype: str = "auto"  # auto (bf16 autocast on cuda, fp32 on cpu) | bf16 (also on cpu: slow, for tests) | fp32
    compile: bool = False  # torch.compile the model
    parallel: str = "ddp"  # with several torchrun processes: ddp | fsdp (FSDP2 fully_shard per block)


@dataclass(frozen=True)
class EvalConfig:
    every: int = 100  # steps between validation passes (and one at the end); 0 = only at the end
    batches: int = 20  # validation batches per pass; 0 = the whole validation split


@dataclass(frozen=True)
class CheckpointConfig:
    dir: str = "out/model"  # final model, metrics, TensorBoard logs; checkpoints under dir/checkpoints
    every: int = 0  # steps between resumable checkpoints; 0 = only at the end
    keep: int = 2  # newest checkpoints kept


@dataclass(frozen=True)
class LogConfig:
    every: int = 10  # steps between metric lines (loss, lr, grad norm, tokens/s, MFU)
    tensorboard: bool = True
    progress: bool = True  # tqdm bar


@dataclass(frozen=True)
class SampleConfig:
    prompt: str = ""  # printed after training with its continuation; "" = start from BOS/EOS
    tokens: int = 64  # 0 = no sample
    temperature: float = 0.8
    top_k: int = 50


@dataclass(frozen=True)
class TrainConfig:
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    sample: SampleConfig = SampleConfig()
    export_hf: bool = True  # also write <checkpoint.dir>/hf in Hugging Face Llama format (shards data only)

    def model_config(self) -> ModelConfig:
        values = dict(self.model)
        values.setdefault("vocab_size", data_vocab_size(self.data))
        values.setdefault("max_seq_len", self.data.seq_len)
        try:
            return build_dataclass(ModelConfig, values, "model")
        except TypeError as error:  # a value of the wrong type reaching ModelConfig's arithmetic
            raise ValueError(f"model: {error}") from error


def data_vocab_size(data: DataConfig) -> int:
    if data.text:
        return 256
    manifest = os.path.join(data.shards, "manifest.json")
    if not os.path.exists(manifest):
        raise ValueError(f"data.shards: {manifest} not found; run `make corpus` first, or set data.text")
    with open(manifest, encoding="utf-8") as handle:
        return int(json.load(handle)["vocab_size"])


def _positive(section: str, **values: Any) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{section}.{key}: must be a positive integer, got {value!r}")


def validate(config: TrainConfig) -> TrainConfig:
    data = config.data
    if not data.text and not data.shards:
        raise ValueError("data: set `shards` (a token-shard folder) or `text` (a UTF-8 file)")
    if data.text and not os.path.exists(data.text):
        raise ValueError(f"data.text: {data.text} not found")
    _positive("data", seq_len=data.seq_len, batch_size=data.batch_size)
    if not 0 < data.text_val_fraction < 1:
        raise ValueError(f"data.text_val_fraction: must be in (0, 1), got {data.text_val_fraction}")
    validate_run(config.optim, config.train, config.eval, config.checkpoint, config.log)
    model = config.model_config()  # model errors now, before any data is read
    if data.seq_len > model.max_seq_len:
        raise ValueError(f"data.seq_len ({data.seq_len}) exceeds model.max_seq_len ({model.max_seq_len})")
    return config


def validate_run(optim: OptimConfig, loop: LoopConfig, evaluation: EvalConfig, checkpoint: CheckpointConfig,
                 log: LogConfig) -> None:
    """The checks of the sections every training entry point shares (pretraining, fine-tuning)."""
    _positive("train", max_steps=loop.max_steps, grad_accum=loop.grad_accum)
    if not (isinstance(optim.lr, (int, float)) and optim.lr > 0):
        raise ValueError(f"optim.lr: must be a number > 0, got {optim.lr!r}")
    if not 0 <= optim.min_lr_ratio <= 1:
        raise ValueError(f"optim.min_lr_ratio: must be in [0, 1], got {optim.min_lr_ratio}")
    if len(optim.betas) != 2 or not all(0 <= b < 1 for b in optim.betas):
        raise ValueError(f"optim.betas: expected two numbers in [0, 1), got {optim.betas!r}")
    if optim.warmup_steps < 0 or optim.weight_decay < 0 or optim.grad_clip < 0:
        raise ValueError("optim: warmup_steps, weight_decay and grad_clip must be >= 0")
    if loop.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"train.device: {loop.device!r} is not auto, cpu or cuda")
    if loop.dtype not in ("auto", "bf16", "fp32"):
        raise ValueError(f"train.dtype: {loop.dtype!r} is not auto, bf16 or fp32")
    if loop.parallel not in ("ddp", "fsdp"):
        raise ValueError(f"train.parallel: {loop.parallel!r} is not ddp or fsdp")
    if evaluation.every < 0 or evaluation.batches < 0 or checkpoint.every < 0:
        raise ValueError("eval.every, eval.batches and checkpoint.every must be >= 0")
    _positive("log", every=log.every)
    _positive("checkpoint", keep=checkpoint.keep)


def load_config(path: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config and apply `overrides` ({"train.max_steps": 10, ...})."""
    return validate(build_dataclass(TrainConfig, read_yaml(path, overrides), "config"))


def parse_run_arguments(argv: list[str] | None, prog: str, description: str, example: str,
                        load: Callable[[str, dict[str, Any]], Any]) -> tuple[Any, bool]:
    """The training entry points' command line: --config, --set KEY=VALUE..., --resume.
    Returns (the loaded config, resume); a bad config exits with status 2 naming the key."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help=f"YAML config, e.g. {example}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.max_steps=20 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in <checkpoint.dir>/checkpoints, if any")
    args = parser.parse_args(argv)
    try:
        return load(args.config, parse_set(args.set)), args.resume
    except ValueError as error:
        parser.error(str(error))
