import copy
import os

import pytest
import torch

from train.lora import LoraConfig, LoraLinear, adapter_state, apply_lora, load_adapter, merge_lora, save_adapter
from train.model import ModelConfig, Transformer

CONFIG = ModelConfig(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)


def base() -> Transformer:
    torch.manual_seed(0)
    return Transformer(CONFIG).eval()


ADAPTER = LoraConfig(enabled=True, rank=4, alpha=8, dropout=0.0)


def adapted(config: LoraConfig = ADAPTER) -> Transformer:
    model = apply_lora(base(), config)
    for name in adapter_state(model):  # as after some training: B no longer zero
        if name.endswith("lora_B"):
            dict(model.named_parameters())[name].data.normal_(0, 0.05)
    return model.eval()


TOKENS = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(1))


def test_at_init_the_adapted_model_computes_exactly_the_base_model():
    plain = base()
    model = apply_lora(copy.deepcopy(plain), LoraConfig(enabled=True, dropout=0.1)).eval()
    assert sum(isinstance(m, LoraLinear) for m in model.modules()) == 7 * CONFIG.n_layers
    assert torch.equal(model(TOKENS)[0], plain(TOKENS)[0])


def test_only_adapter_parameters_get_gradients():
    model = apply_lora(base(), LoraConfig(enabled=True, rank=2, targets=["q_proj", "v_proj"])).train()
    _, loss = model(TOKENS, TOKENS)
    loss.backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None}
    assert trained == {name for name in dict(model.named_parameters()) if ".lora_" in name}
    assert len(trained) == 2 * 2 * CONFIG.n_layers
    assert all(p.requires_grad == (".lora_" in name) for name, p in model.named_parameters())
    # B starts at zero, so only B moves on the first step (A's gradient goes through B).
    assert all(float(p.grad.abs().sum()) > 0 for name, p in model.named_parameters() if name.endswith("lora_B"))


def test_merged_weights_compute_what_the_adapters_computed():
    model = adapted()
    before = model(TOKENS)[0]
    merged = merge_lora(model)
    assert not any(isinstance(m, LoraLinear) for m in merged.modules())
    assert set(merged.state_dict()) == set(base().state_dict())  # a plain Transformer again: saves and exports as one
    assert torch.allclose(merged(TOKENS)[0], before, atol=1e-5)
    assert not torch.allclose(before, base()(TOKENS)[0], atol=1e-3)  # and the adapters did change the output


def test_saved_adapter_applied_to_a_fresh_base_gives_the_same_model(tmp_path):
    model = adapted()
    save_adapter(model, LoraConfig(enabled=True, rank=4, alpha=8, dropout=0.0), str(tmp_path / "adapter"), "base")
    restored = load_adapter(base(), str(tmp_path / "adapter")).eval()
    assert torch.equal(restored(TOKENS)[0], model(TOKENS)[0])
    assert sorted(os.listdir(tmp_path / "adapter")) == ["adapter_config.json", "adapter_model.safetensors"]


def test_unknown_target_module_is_named():
    with pytest.raises(ValueError, match=r"lora.targets: \['query'\]"):
        apply_lora(base(), LoraConfig(enabled=True, targets=["q_proj", "query"]))
