"""Configuration of a pretraining run (`configs/train/*.yaml`).

YAML in, frozen dataclasses out; wrong types, values out of range and unknown keys fail at
load time, all at once, each naming its key. The `model` section holds `train.model.ModelConfig`
fields; its `vocab_size` defaults to the data's (the shard manifest's, or 256 for byte-level text).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from stages.base import ConfigError, Fraction, Section, section, validated
from tokenizer.config import parse_set, read_yaml
from train.model import ModelConfig


@section
class DataConfig(Section):
    shards: str | None = "out/shards"  # token shards written by `make corpus` (pipelines.shards)
    text: str | None = None  # or one UTF-8 text file, trained byte-level (vocab 256); overrides `shards`
    text_val_fraction: float = Field(0.1, gt=0, lt=1)  # text: the last fraction is validation (as nanoGPT splits)
    seq_len: PositiveInt = 256
    batch_size: PositiveInt = 8  # sequences per rank per micro-step
    num_workers: NonNegativeInt = 0  # DataLoader worker processes per rank

    @model_validator(mode="after")
    def _some_data(self) -> DataConfig:
        if not self.text and not self.shards:
            raise ValueError("set `shards` (a token-shard folder) or `text` (a UTF-8 file)")
        return self


@section
class OptimConfig(Section):
    lr: PositiveFloat = 3e-4  # peak learning rate, after linear warm-up; cosine decay to lr * min_lr_ratio
    min_lr_ratio: Fraction = 0.1
    warmup_steps: NonNegativeInt = 100
    decay_steps: PositiveInt | None = None  # end of the cosine (default: train.max_steps)
    betas: list[Annotated[float, Field(ge=0, lt=1)]] = Field(
        default_factory=lambda: [0.9, 0.95], min_length=2, max_length=2
    )
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.1  # on matrices (linear and embedding weights) only, not norms
    grad_clip: NonNegativeFloat = 1.0  # max global gradient norm; 0 = off


@section
class LoopConfig(Section):
    max_steps: PositiveInt = 1000  # optimizer steps
    grad_accum: PositiveInt = 1  # micro-steps per optimizer step
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda if available
    # auto: bf16 autocast on cuda, fp32 on cpu; bf16 on a CPU with AMX or AVX512-BF16 multiplies 2-5x
    # faster than fp32 (configs/train/shakespeare_char.yaml), on other CPUs slower
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = False  # torch.compile the model
    parallel: Literal["ddp", "fsdp"] = "ddp"  # with several torchrun processes (fsdp: FSDP2 fully_shard per block)


@section
class EvalConfig(Section):
    every: NonNegativeInt = 100  # steps between validation passes (and one at the end); 0 = only at the end
    batches: NonNegativeInt = 20  # validation batches per pass; 0 = the whole validation split


@section
class CheckpointConfig(Section):
    dir: str = "out/model"  # final model, metrics, TensorBoard logs; checkpoints under dir/checkpoints
    every: NonNegativeInt = 0  # steps between resumable checkpoints; 0 = only at the end
    keep: PositiveInt = 2  # newest checkpoints kept
    # --resume refuses a learning-rate schedule (lr, warm-up, decay end = optim.decay_steps or
    # train.max_steps) other than the checkpoint's; true resumes under the new one (the lr jumps)
    allow_schedule_change: bool = False


@section
class LogConfig(Section):
    every: PositiveInt = 10  # steps between metric lines (loss, lr, grad norm, tokens/s, MFU)
    tensorboard: bool = True
    progress: bool = True  # tqdm bar


@section
class SampleConfig(Section):
    prompt: str = ""  # printed after training with its continuation; "" = start from BOS/EOS
    tokens: NonNegativeInt = 64  # 0 = no sample
    temperature: NonNegativeFloat = 0.8  # 0 = greedy
    top_k: PositiveInt | None = 50  # None = all tokens


@section
class TrainConfig(Section):
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields, checked by model_config()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    sample: SampleConfig = SampleConfig()
    export_hf: bool = True  # also write <checkpoint.dir>/hf in Hugging Face Llama format (shards data only)
    # Continue pretraining from these weights (a model folder such as out/model, or a checkpoint
    # step_N) instead of random ones; the model keys must match it except vocab_size, which may
    # grow (an extended tokenizer): the new embedding and output rows start at the mean of the old.
    init_from: str | None = None

    def model_config(self) -> ModelConfig:
        values = dict(self.model)
        if "vocab_size" not in values:  # a config that sets it needs no data yet (e.g. bench.mfu)
            values["vocab_size"] = data_vocab_size(self.data)
        values.setdefault("max_seq_len", self.data.seq_len)
        return validated(_ModelSection, {"model": values}).model


@section
class _ModelSection(Section):
    """The `model` mapping checked as a ModelConfig: types, unknown keys, its own checks."""

    model: ModelConfig


def data_vocab_size(data: DataConfig) -> int:
    if data.text:
        return 256
    manifest = os.path.join(data.shards, "manifest.json")
    if not os.path.exists(manifest):
        raise ConfigError([("data.shards", f"{manifest} not found; run `make corpus` first, or set data.text")])
    with open(manifest, encoding="utf-8") as handle:
        return int(json.load(handle)["vocab_size"])


def load_config(path: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config and apply `overrides` ({"train.max_steps": 10, ...})."""
    config = validated(TrainConfig, read_yaml(path, overrides))
    problems = (
        [("data.text", f"{config.data.text} not found")]
        if config.data.text and not os.path.exists(config.data.text)
        else []
    )
    if config.init_from and not os.path.exists(os.path.join(config.init_from, "model_config.json")):
        problems.append(("init_from", f"{config.init_from} holds no model_config.json (a saved model or checkpoint)"))
    try:
        model = config.model_config()  # model errors now, before any data is read
        if config.data.seq_len > model.max_seq_len:
            problems.append(("data.seq_len", f"{config.data.seq_len} exceeds model.max_seq_len ({model.max_seq_len})"))
    except ConfigError as error:
        problems += error.problems
    if problems:
        raise ConfigError(problems)
    return config


def parse_run_arguments(
    argv: list[str] | None, prog: str, description: str, example: str, load: Callable[[str, dict[str, Any]], Any]
) -> tuple[Any, bool]:
    """The training entry points' command line: --config, --set KEY=VALUE..., --resume.
    Returns (the loaded config, resume); a bad config exits with status 2 naming each problem."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help=f"YAML config, e.g. {example}")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.max_steps=20 (repeatable)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in <checkpoint.dir>/checkpoints, if any",
    )
    args = parser.parse_args(argv)
    try:
        return load(args.config, parse_set(args.set)), args.resume
    except ValueError as error:
        parser.exit(2, f"{prog}: config error: {error}\n")
