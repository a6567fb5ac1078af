"""Checkpoints: weights as safetensors, everything else as tensors and plain values.

A checkpoint folder holds `model.safetensors`, `model_config.json`, `trainer.pt` (step,
optimizer, data-loader state, run metadata) and `rng-rank{r}.pt` per process. Loading uses
safetensors and `torch.load(weights_only=True)`, so a checkpoint never executes code.
Full (unsharded) state dicts through `torch.distributed.checkpoint.state_dict` work the
same for a plain module, DDP and FSDP2.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from train.model import ModelConfig, Transformer

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def model_state(model: nn.Module, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Full state dict (gathered from all ranks under FSDP); a tied `lm_head.weight` is left out
    (safetensors stores no shared tensors; loading ties it again)."""
    state = get_model_state_dict(model, options=FULL)
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return {key: value.contiguous() for key, value in state.items()}


def save_weights(state: dict[str, torch.Tensor], config: ModelConfig, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    save_file(state, os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "model_config.json"), "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(config), handle, indent=2)


def read_model_config(directory: str) -> ModelConfig:
    with open(os.path.join(directory, "model_config.json"), encoding="utf-8") as handle:
        return ModelConfig(**json.load(handle))


def read_weights(directory: str, config: ModelConfig) -> dict[str, torch.Tensor]:
    state = load_file(os.path.join(directory, "model.safetensors"))
    if config.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    return state


def load_model(directory: str, device: torch.device | str = "cpu") -> Transformer:
    """A saved model (final folder or checkpoint) ready for inference or fine-tuning."""
    config = read_model_config(directory)
    model = Transformer(config)
    model.load_state_dict(read_weights(directory, config))
    return model.to(device)


def save_checkpoint(directory: str, model: nn.Module, config: ModelConfig, optimizer: torch.optim.Optimizer,
                    trainer_state: dict[str, Any], rank: int, keep: int) -> str:
    """Write `directory/step_NNNNNNN` (all ranks must call: FSDP gathers), keep the newest `keep`."""
    path = os.path.join(directory, f"step_{trainer_state['step']:07d}")
    state = model_state(model, config)
    optim_state = get_optimizer_state_dict(model, optimizer, options=FULL)
    if rank == 0:
        save_weights(state, config, path)
        torch.save({**trainer_state, "optimizer": optim_state}, os.path.join(path, "trainer.pt"))
    if dist.is_initialized():
        dist.barrier()  # the folder exists before other ranks write into it
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, os.path.join(path, f"rng-rank{rank}.pt"))
    if dist.is_initialized():
        dist.barrier()
    if rank == 0:
        for old in sorted(glob.glob(os.path.join(directory, "step_*")))[:-keep]:
            shutil.rmtree(old)
    return path


def latest_checkpoint(directory: str) -> str | None:
    found = sorted(path for path in glob.glob(os.path.join(directory, "step_*"))
                   if os.path.exists(os.path.join(path, "trainer.pt")))
    return found[-1] if found else None


def load_checkpoint(path: str, model: nn.Module, config: ModelConfig, optimizer: torch.optim.Optimizer,
                    rank: int) -> dict[str, Any]:
    """Restore weights, optimizer and this rank's RNG; returns the trainer state (step, loader, ...)."""
    saved = read_model_config(path)
    if saved != config:
        raise ValueError(f"cannot resume from {path}: its model config differs from this run's "
                         f"({dataclasses.asdict(saved)} vs {dataclasses.asdict(config)})")
    set_model_state_dict(model, read_weights(path, config), options=StateDictOptions(full_state_dict=True))
    trainer_state = torch.load(os.path.join(path, "trainer.pt"), weights_only=True)
    set_optimizer_state_dict(model, optimizer, trainer_state.pop("optimizer"),
                             options=StateDictOptions(full_state_dict=True))
    rng_path = os.path.join(path, f"rng-rank{rank}.pt")
    if os.path.exists(rng_path):  # absent when resuming with more processes than saved
        rng = torch.load(rng_path, weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return trainer_state
