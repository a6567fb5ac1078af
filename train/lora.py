"""LoRA (Hu et al., 2021) on the decoder's linear layers: y = W x + (alpha / r) * B A dropout(x).

Our own few dozen lines rather than `peft`: peft wraps Hugging Face model classes and
would need our Transformer converted to and from LlamaForCausalLM around every run, while
here the adapters sit directly in our modules, so checkpoints, resume and the pretraining
loop's pieces work unchanged. The saved adapter files are in PEFT's format all the same.
Merging is W + (alpha / r) B A, exactly what the adapted layer computes (without dropout),
and gives a plain Transformer to save and export.
B starts at zero, so the adapted model's output equals the base model's at initialisation.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file
from torch import nn

ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter_model.safetensors", "adapter_config.json"


@dataclass(frozen=True)
class LoraConfig:
    enabled: bool = False  # false = full fine-tuning (every weight trains)
    rank: int = 8
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.05  # on the adapter's input only
    targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )  # nn.Linear names in the blocks


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and peft) initialise A
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merged(self) -> nn.Linear:
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=False, device=self.base.weight.device)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.scaling * (self.lora_B @ self.lora_A))
        return linear


def _targets(model: nn.Module, names: list[str]) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every nn.Linear in the blocks whose attribute name is listed."""
    found = [
        (parent, name)
        for parent in model.layers.modules()
        for name, child in parent.named_children()
        if name in names and isinstance(child, nn.Linear)
    ]
    missing = set(names) - {name for _, name in found}
    if missing:
        raise ValueError(f"lora.targets: {sorted(missing)} name no nn.Linear in the transformer blocks")
    return found


def apply_lora(model: nn.Module, config: LoraConfig) -> nn.Module:
    """Freeze every weight and wrap the target layers in place; only the adapters train."""
    if not isinstance(config.rank, int) or config.rank <= 0:
        raise ValueError(f"lora.rank: must be a positive integer, got {config.rank!r}")
    model.requires_grad_(False)
    for parent, name in _targets(model, config.targets):
        setattr(parent, name, LoraLinear(getattr(parent, name), config.rank, config.alpha, config.dropout))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace each adapted layer by one nn.Linear with the merged weight (in place)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LoraLinear):
                setattr(parent, name, child.merged())
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().contiguous() for name, param in model.named_parameters() if ".lora_" in name}


# Adapter files in PEFT's format, so that `peft.PeftModel.from_pretrained(llama, adapter_dir)` (and
# servers that take PEFT adapters, such as vLLM) can apply them to the base's Hugging Face export:
# our module names are Llama's, under PeftModel -> LlamaForCausalLM -> LlamaModel.
PEFT_PREFIX, PEFT_SUFFIX = "base_model.model.model.", ".weight"


def save_adapter(model: nn.Module, config: LoraConfig, directory: str, base_hf: str) -> None:
    """The adapter alone, in PEFT's format: adapter_model.safetensors and adapter_config.json, which
    names `base_hf` (the base model's Hugging Face export) as the model it applies to."""
    os.makedirs(directory, exist_ok=True)
    weights = {f"{PEFT_PREFIX}{name}{PEFT_SUFFIX}": tensor for name, tensor in adapter_state(model).items()}
    save_file(weights, os.path.join(directory, ADAPTER_WEIGHTS))
    peft_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_hf,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": list(config.targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    with open(os.path.join(directory, ADAPTER_CONFIG), "w", encoding="utf-8") as handle:
        json.dump(peft_config, handle, indent=2)


def load_adapter(model: nn.Module, directory: str) -> nn.Module:
    """Apply a saved adapter (PEFT's LoRA format, as `save_adapter` writes) to a fresh copy of its base."""
    with open(os.path.join(directory, ADAPTER_CONFIG), encoding="utf-8") as handle:
        saved = json.load(handle)
    if saved.get("peft_type") != "LORA" or saved.get("use_rslora") or saved.get("use_dora"):
        raise ValueError(f"{directory}: not a plain LoRA adapter (peft_type {saved.get('peft_type')!r})")
    apply_lora(
        model,
        LoraConfig(
            enabled=True,
            rank=saved["r"],
            alpha=saved["lora_alpha"],
            dropout=saved.get("lora_dropout", 0.0),
            targets=list(saved["target_modules"]),
        ),
    )
    weights = load_file(os.path.join(directory, ADAPTER_WEIGHTS))
    state = {
        name[len(PEFT_PREFIX) : -len(PEFT_SUFFIX)]: tensor
        for name, tensor in weights.items()
        if name.startswith(PEFT_PREFIX) and name.endswith(PEFT_SUFFIX)
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if len(state) != len(weights) or unexpected or any(".lora_" in name for name in missing):
        raise ValueError(
            f"{directory}: adapter does not fit this model (unexpected {sorted(set(weights) - set(state)) or unexpected})"
        )
    return model
