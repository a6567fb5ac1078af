"""Checkpoints: weights as safetensors, everything else as tensors and plain values.

A checkpoint folder holds `model.safetensors`, `model_config.json`, `trainer.pt` (step,
optimizer, data-loader state, learning-rate schedule, run metadata) and `rng-rank{r}.pt` per
process. Loading uses safetensors and `torch.load(weights_only=True)`, so a checkpoint never
executes code. Full (unsharded) state dicts through `torch.distributed.checkpoint.state_dict`
work the same for a plain module, DDP and FSDP2 (a single process saves the same dicts without it).

Crash safety: a checkpoint is written as `.tmp-step_N`, its files flushed to disk, then renamed
to `step_N`; a `step_N` folder is therefore complete, and a process killed while writing leaves
only a `.tmp-` folder, which `latest_checkpoint` ignores and the next save or resume removes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import sys
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from train.config import OptimConfig
from train.model import ModelConfig, Transformer

STEP_DIR = re.compile(r"step_(\d+)")
PARTIAL_PREFIX = ".tmp-"  # a checkpoint being written; renamed to step_N when complete
FAILPOINT_ENV = "LMFORGE_FAILPOINT"


def model_state(model: nn.Module, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Full state dict (gathered from all ranks under FSDP); a tied `lm_head.weight` is left out
    (safetensors stores no shared tensors; loading ties it again)."""
    if dist.is_initialized():
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:  # one process, a plain module: what get_model_state_dict gives, without importing it (below)
        state = {key: value.cpu() for key, value in model.state_dict().items()}
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return {key: value.contiguous() for key, value in state.items()}


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Full optimizer state, keyed by parameter name (not by position), as
    `torch.distributed.checkpoint.state_dict.get_optimizer_state_dict` gives it for DDP and FSDP
    alike. One process renames `optimizer.state_dict()` here instead: importing
    torch.distributed.checkpoint takes ~1.5 s, a run's start-up on a small model."""
    if dist.is_initialized():
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    names = {param: name for name, param in model.named_parameters()}
    name_of = [names[param] for group in optimizer.param_groups for param in group["params"]]
    state = optimizer.state_dict()
    return {
        "state": {
            name_of[index]: {key: value.cpu() if torch.is_tensor(value) else value for key, value in values.items()}
            for index, values in state["state"].items()
        },
        "param_groups": [
            {**group, "params": [name_of[index] for index in group["params"]]} for group in state["param_groups"]
        ],
    }


def save_weights(state: dict[str, torch.Tensor], config: ModelConfig, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    save_file(state, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "model_config.json"), "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(config), handle, indent=2)
    for name in ("model.safetensors", "model_config.json"):
        _fsync(os.path.join(directory, name))


def read_model_config(directory: str) -> ModelConfig:
    with open(os.path.join(directory, "model_config.json"), encoding="utf-8") as handle:
        return ModelConfig(**json.load(handle))


def read_weights(directory: str, config: ModelConfig) -> dict[str, torch.Tensor]:
    state = load_file(os.path.join(directory, "model.safetensors"))
    if config.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    return state


# May differ between a saved model and a run continuing from it: no weight depends on them
# (RoPE tables are computed) or, for vocab_size, the weights are extended.
INIT_FREE_FIELDS = ("vocab_size", "max_seq_len", "dropout", "activation_checkpointing")


def extend_vocabulary(state: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """`state` with `embed_tokens` and `lm_head` grown to `vocab_size` rows: every old row kept as
    it is, each new row the mean of the old rows (as Chinese-LLaMA initialises added tokens), so a
    new token starts as an average token instead of noise that the output layer would predict at random."""
    extended = dict(state)
    for key in ("embed_tokens.weight", "lm_head.weight"):
        if key in state:
            old = state[key]
            if old.shape[0] > vocab_size:
                raise ValueError(f"{key} has {old.shape[0]} rows, more than the vocabulary of {vocab_size}")
            mean = old.float().mean(dim=0, keepdim=True).to(old.dtype)
            extended[key] = torch.cat([old, mean.expand(vocab_size - old.shape[0], -1)])
    return extended


def check_tokenizer_extends(model_dir: str, tokenizer_dir: str | None) -> None:
    """When the saved model has its tokenizer (`hf/`, as pretraining exports it), the run's must give
    every one of its tokens the same id: new ids may only be added (tokenizer.extend does so)."""
    old_file = os.path.join(model_dir, "hf", "tokenizer.json")
    if not tokenizer_dir or not os.path.exists(old_file):
        return
    from tokenizers import Tokenizer

    new = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json")).get_vocab()
    moved = [
        (token, index) for token, index in Tokenizer.from_file(old_file).get_vocab().items() if new.get(token) != index
    ]
    if moved:
        token, index = moved[0]
        raise ValueError(
            f"the data's tokenizer ({tokenizer_dir}) is not an extension of {old_file}: {len(moved)} "
            f"of its tokens have another id or none (e.g. {token!r}: {index} -> {new.get(token)}); "
            "extend the model's tokenizer (python -m tokenizer.extend) instead of training a new one"
        )


def read_initial_weights(
    directory: str, config: ModelConfig, tokenizer_dir: str | None = None
) -> dict[str, torch.Tensor]:
    """The saved model at `directory` (a model folder or a checkpoint) as the starting weights of a run
    of `config`: the same shape except a vocabulary that may grow (`extend_vocabulary`)."""
    saved = read_model_config(directory)
    differ = [
        f"{field.name} {getattr(saved, field.name)} vs {getattr(config, field.name)}"
        for field in dataclasses.fields(ModelConfig)
        if field.name not in INIT_FREE_FIELDS and getattr(saved, field.name) != getattr(config, field.name)
    ]
    if differ:
        raise ValueError(
            f"init_from {directory}: the model differs from this run's ({', '.join(differ)}); "
            "set the run's model keys to the saved model's"
        )
    if saved.vocab_size > config.vocab_size:
        raise ValueError(
            f"init_from {directory}: its vocabulary ({saved.vocab_size}) is larger than the data's "
            f"({config.vocab_size}); train on shards written with its tokenizer or an extension of it"
        )
    check_tokenizer_extends(directory, tokenizer_dir)
    return extend_vocabulary(read_weights(directory, saved), config.vocab_size)


def load_model(directory: str, device: torch.device | str = "cpu") -> Transformer:
    """A saved model (final folder or checkpoint) ready for inference or fine-tuning."""
    config = read_model_config(directory)
    model = Transformer(config)
    model.load_state_dict(read_weights(directory, config))
    return model.to(device)


def failpoint(name: str, step: int) -> None:
    """Crash-test hook: with LMFORGE_FAILPOINT=`name:step` in the environment the process stops
    itself (SIGSTOP) here, so a test can SIGKILL it at exactly this moment. Free otherwise."""
    if os.environ.get(FAILPOINT_ENV) == f"{name}:{step}":
        print(f"failpoint {name}:{step} reached; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)


def lr_schedule(optim: OptimConfig, max_steps: int) -> dict[str, float | int]:
    """What `runtime.lr_at` depends on, recorded in each checkpoint: resuming under another
    schedule would jump the learning rate (e.g. train.max_steps moves the end of the cosine)."""
    return {
        "lr": optim.lr,
        "min_lr_ratio": optim.min_lr_ratio,
        "warmup_steps": optim.warmup_steps,
        "decay_steps": optim.decay_steps or max_steps,
    }


def check_schedule(path: str, saved: dict[str, float | int], current: dict[str, float | int], allow: bool) -> None:
    """Refuse to resume under a learning-rate schedule other than the checkpoint's, unless `allow`."""
    changed = {key: (saved[key], current[key]) for key in current if saved[key] != current[key]}
    if not changed or allow:
        return
    described = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
    keep = " --set optim.decay_steps=" + str(saved["decay_steps"]) if set(changed) == {"decay_steps"} else ""
    raise ValueError(
        f"cannot resume from {path}: its learning-rate schedule differs from this run's ({described}; "
        "decay_steps defaults to train.max_steps), so the learning rate would jump. To train longer on the "
        f"old schedule (at its final learning rate after its end), add{keep or ' the old optim/train values'}; "
        "to resume under the new schedule on purpose, add --set checkpoint.allow_schedule_change=true"
    )


def _fsync(path: str) -> None:
    """Flush a written file (or a folder's entries) to disk: a rename must not outlive its contents."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _save_synced(value: Any, path: str) -> None:
    torch.save(value, path)
    _fsync(path)


def checkpoint_dirs(directory: str) -> list[str]:
    """The complete checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    steps = sorted((int(match[1]), name) for name in os.listdir(directory) if (match := STEP_DIR.fullmatch(name)))
    return [os.path.join(directory, name) for _, name in steps]


def remove_partial_checkpoints(directory: str) -> None:
    """Delete `.tmp-step_N` folders: checkpoints whose writer was killed before it finished."""
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith(PARTIAL_PREFIX):
                shutil.rmtree(os.path.join(directory, name))


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def save_checkpoint(
    directory: str,
    model: nn.Module,
    config: ModelConfig,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    rank: int,
    keep: int,
) -> str:
    """Write `directory/step_NNNNNNN` (all ranks must call: FSDP gathers), keep the newest `keep`.
    The folder appears complete or not at all (module docstring)."""
    step = trainer_state["step"]
    name = f"step_{step:07d}"
    path, partial = os.path.join(directory, name), os.path.join(directory, PARTIAL_PREFIX + name)
    state = model_state(model, config)
    optim_state = optimizer_state(model, optimizer)
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    if rank == 0:
        remove_partial_checkpoints(directory)
        save_weights(state, config, partial)
        failpoint("checkpoint_write", step)
        _save_synced(
            {**trainer_state, "world_size": world_size, "optimizer": optim_state}, os.path.join(partial, "trainer.pt")
        )
    _barrier()  # the folder exists before other ranks write into it
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    _save_synced(rng, os.path.join(partial, f"rng-rank{rank}.pt"))
    _barrier()
    if rank == 0:
        if os.path.exists(path):  # the same step saved again: replace it
            shutil.rmtree(path)
        os.rename(partial, path)
        _fsync(directory)
        for old in checkpoint_dirs(directory)[:-keep]:
            shutil.rmtree(old)
    return path


def latest_checkpoint(directory: str) -> str | None:
    """The newest complete checkpoint (`.tmp-` folders of an interrupted save are not)."""
    found = checkpoint_dirs(directory)
    return found[-1] if found else None


def load_checkpoint(
    path: str,
    model: nn.Module,
    config: ModelConfig,
    optimizer: torch.optim.Optimizer,
    rank: int,
    schedule: dict[str, float | int],
    allow_schedule_change: bool = False,
) -> dict[str, Any]:
    """Restore weights, optimizer and this rank's RNG; returns the trainer state (step, loader, ...).
    `schedule` (`lr_schedule`) must be the checkpoint's unless `allow_schedule_change`."""
    saved = read_model_config(path)
    if saved != config:
        raise ValueError(
            f"cannot resume from {path}: its model config differs from this run's "
            f"({dataclasses.asdict(saved)} vs {dataclasses.asdict(config)})"
        )
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    trainer_state = torch.load(os.path.join(path, "trainer.pt"), weights_only=True)
    check_schedule(path, trainer_state["schedule"], schedule, allow_schedule_change)
    set_model_state_dict(model, read_weights(path, config), options=StateDictOptions(full_state_dict=True))
    set_optimizer_state_dict(
        model, optimizer, trainer_state.pop("optimizer"), options=StateDictOptions(full_state_dict=True)
    )
    rng_path = os.path.join(path, f"rng-rank{rank}.pt")
    saved_processes = trainer_state.get("world_size")
    if os.path.exists(rng_path):
        rng = torch.load(rng_path, weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    elif saved_processes is not None and rank >= saved_processes:
        # More processes than saved (the data loader continues the same global order): this
        # rank had no RNG state; it keeps the one train.seed gave it.
        print(
            f"rank {rank}: {path} was saved by {saved_processes} process(es) and holds no RNG state for "
            "this rank; it continues from train.seed (dropout differs from an uninterrupted run)",
            file=sys.stderr,
        )
    else:
        raise FileNotFoundError(
            f"cannot resume from {path}: {os.path.basename(rng_path)} is missing "
            f"(saved by {saved_processes or 'an unknown number of'} process(es)); "
            "the checkpoint is incomplete, delete it to resume from the one before"
        )
    return trainer_state
