"""Export to Hugging Face format: a folder `transformers.LlamaForCausalLM.from_pretrained` loads.

Our module names are Llama's, so the weights only gain the `model.` prefix (lm_head aside);
config.json maps our ModelConfig onto LlamaConfig; the tokenizer files are copied beside.

    python -m train.export out/model --tokenizer out/tokenizer --out out/model/hf
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence

import torch
from safetensors.torch import save_file

from tokenizer.models import TOKENIZER_FILES
from train.model import ModelConfig


def hf_config(config: ModelConfig, special_ids: dict[str, int]) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.dim,
        "intermediate_size": config.ffn_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.max_seq_len,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "torch_dtype": "float32",
        **{f"{name}_token_id": token_id for name, token_id in special_ids.items()},
    }


def special_token_ids(tokenizer_dir: str | None) -> dict[str, int]:
    """bos/eos/pad ids from the tokenizer's special-token map (empty without a tokenizer)."""
    if not tokenizer_dir:
        return {}
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    with open(os.path.join(tokenizer_dir, "special_tokens_map.json"), encoding="utf-8") as handle:
        names = json.load(handle)
    ids = {}
    for role in ("bos", "eos", "pad"):
        token = names.get(f"{role}_token")
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            ids[role] = tokenizer.token_to_id(token)
    return ids


def export_hf(
    state: dict[str, torch.Tensor],
    config: ModelConfig,
    out_dir: str,
    tokenizer_dir: str | None = None,
    stop_ids: Sequence[int] = (),
) -> str:
    """Write config.json, generation_config.json, model.safetensors and the tokenizer files.

    stop_ids: more tokens that end generation besides EOS (a chat model's end of turn)."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {
        (key if key.startswith("lm_head.") else f"model.{key}"): value.contiguous()
        for key, value in state.items()
        if not (config.tie_embeddings and key == "lm_head.weight")
    }
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    special_ids = special_token_ids(tokenizer_dir)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(hf_config(config, special_ids), handle, indent=2)
    generation = {f"{name}_token_id": token_id for name, token_id in special_ids.items()}
    if stop_ids:
        generation["eos_token_id"] = [*stop_ids, *([special_ids["eos"]] if "eos" in special_ids else [])]
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as handle:
        json.dump(generation, handle, indent=2)
    for name in TOKENIZER_FILES if tokenizer_dir else ():
        if os.path.exists(os.path.join(tokenizer_dir, name)):
            shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(out_dir, name))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    from train.checkpoint import read_model_config, read_weights

    parser = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a saved model or checkpoint folder (model.safetensors + model_config.json)")
    parser.add_argument("--tokenizer", help="folder with tokenizer.json (+ tokenizer_config.json) to copy")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    config = read_model_config(args.model)
    print(export_hf(read_weights(args.model, config), config, args.out, args.tokenizer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
