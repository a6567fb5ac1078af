import json
import os
import shutil

import pytest
import torch
import yaml

from tests.train.train_helpers import ROOT, torchrun_two_processes, write_run_config
from train import finetune
from train.chat import ChatTokenizer
from train.checkpoint import load_model, model_state
from train.export import export_hf
from train.lora import load_adapter

SLICES = os.path.join(ROOT, "data", "finetune")
LORA = {"enabled": True, "rank": 4, "alpha": 8, "dropout": 0.0}


def write_config(tmp_path, base: str, name: str = "run", **sections) -> str:
    """SFT on 24 records of each Alpaca slice, LoRA, a metric line per step, no answer printed."""
    config = {
        "method": "sft",
        "base": base,
        "data": {
            "files": [f"{SLICES}/alpaca_en.json", f"{SLICES}/alpaca_zh.json"],
            "limit": 24,
            "seq_len": 96,
            "batch_size": 4,
            "val_fraction": 0.1,
        },
        "lora": LORA,
        "optim": {"lr": 1e-2, "warmup_steps": 2, "weight_decay": 0.0},
        "train": {"max_steps": 8, "seed": 3},
        "eval": {"every": 0},
        "checkpoint": {"dir": str(tmp_path / name), "every": 4},
        "log": {"every": 1, "tensorboard": False, "progress": False},
        "sample": {"tokens": 0},
    }
    return write_run_config(str(tmp_path / f"{name}.yaml"), config, sections)


def metrics(run_dir: str) -> dict[int, dict]:
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {row["step"]: row for row in rows if "loss" in row}


def validation(run_dir: str) -> list[float]:
    """Every logged validation loss, in order."""
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        return [row["val_loss"] for row in map(json.loads, handle) if "val_loss" in row]


def test_full_sft_learns_and_writes_model_export_and_answer(tmp_path, base_model, capsys):
    # Full fine-tuning: the random base's tiny embeddings bound its logits, which LoRA on the
    # linear layers cannot lift much (a pretrained base has no such limit).
    config = write_config(
        tmp_path,
        base_model,
        train={"max_steps": 30},
        checkpoint={"every": 0},
        lora={"enabled": False},
        optim={"lr": 1e-2},
        sample={"prompt": "Hi", "tokens": 8, "temperature": 0},
    )
    assert finetune.main(["--config", config]) == 0
    out, err = capsys.readouterr()
    seen = metrics(str(tmp_path / "run"))
    assert seen[30]["loss"] < seen[1]["loss"] - 1.0
    assert out.startswith("sft: loss ") and "val_loss" in out
    assert "--- Hi ---\n" in err and "39 train / 4 validation examples (5 dropped" in err
    for name in (
        "model.safetensors",
        "model_config.json",
        "hf/config.json",
        "hf/tokenizer_config.json",
        "checkpoints/step_0000030/trainer.pt",
    ):
        assert os.path.exists(tmp_path / "run" / name), name
    assert not os.path.exists(tmp_path / "run" / "adapter")


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_resume_continues_with_exactly_the_uninterrupted_losses(tmp_path, base_model, method):
    data = {"files": [f"{SLICES}/dpo_zh.json"], "limit": 16} if method == "dpo" else {}
    config = write_config(tmp_path, base_model, method=method, data=data, lora={**LORA, "dropout": 0.1})
    finetune.main(["--config", config])
    run_dir = str(tmp_path / "run")
    uninterrupted = metrics(run_dir)
    shutil.rmtree(os.path.join(run_dir, "checkpoints", "step_0000008"))  # as if stopped after step 4
    os.remove(os.path.join(run_dir, "metrics.jsonl"))
    finetune.main(["--config", config, "--resume"])
    resumed = metrics(run_dir)
    assert sorted(resumed) == [5, 6, 7, 8]
    assert [resumed[s]["loss"] for s in range(5, 9)] == [uninterrupted[s]["loss"] for s in range(5, 9)]


def test_dpo_loss_falls_and_the_reward_margin_rises_on_a_fixed_set(tmp_path, base_model):
    config = write_config(
        tmp_path,
        base_model,
        method="dpo",
        data={"files": [f"{SLICES}/dpo_en.json"], "limit": 8, "val_fraction": 0, "batch_size": 8},
        dpo={"beta": 0.5},
        train={"max_steps": 12},
        checkpoint={"every": 0},
    )
    finetune.main(["--config", config])
    seen = metrics(str(tmp_path / "run"))
    # Step 1 runs the reference model itself: log(2) loss, zero rewards.
    assert seen[1]["loss"] == pytest.approx(0.6931, abs=1e-3) and seen[1]["margin"] == pytest.approx(0, abs=1e-4)
    assert seen[12]["loss"] < 0.5 and seen[12]["margin"] > 0.5 and seen[12]["accuracy"] == 1.0
    assert seen[12]["chosen_reward"] > seen[12]["rejected_reward"]


def test_packing_does_not_change_the_sft_losses(tmp_path, base_model):
    packed = write_config(tmp_path, base_model, "packed", train={"max_steps": 3}, checkpoint={"every": 0})
    padded = write_config(
        tmp_path, base_model, "padded", train={"max_steps": 3}, checkpoint={"every": 0}, data={"packing": False}
    )
    finetune.main(["--config", packed])
    finetune.main(["--config", padded])
    one, two = metrics(str(tmp_path / "packed")), metrics(str(tmp_path / "padded"))
    for step in (1, 2, 3):
        assert one[step]["loss"] == pytest.approx(two[step]["loss"], rel=1e-4)


def test_exported_model_loads_in_transformers_with_the_adapted_models_logits(tmp_path, base_model):
    transformers = pytest.importorskip("transformers")
    config = write_config(tmp_path, base_model, train={"max_steps": 6}, checkpoint={"every": 0})
    finetune.main(["--config", config])
    run_dir = str(tmp_path / "run")
    assert sorted(os.listdir(os.path.join(run_dir, "adapter"))) == ["adapter_config.json", "adapter_model.safetensors"]
    unmerged = load_adapter(load_model(base_model), os.path.join(run_dir, "adapter")).eval()
    hf_dir = os.path.join(run_dir, "hf")
    theirs = transformers.LlamaForCausalLM.from_pretrained(hf_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    messages = [{"role": "user", "content": "Name a colour. 说一个颜色。"}]
    ids = torch.tensor([tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]])
    assert ids[0].tolist() == ChatTokenizer(hf_dir).prompt_ids(messages)
    with torch.no_grad():
        assert torch.allclose(unmerged(ids)[0], theirs(ids).logits, atol=1e-5)
        assert not torch.allclose(load_model(base_model)(ids)[0], theirs(ids).logits, atol=1e-4)
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in theirs.generation_config.eos_token_id  # HF generate stops at the end of the turn


def test_adapter_applies_with_peft_to_the_base_models_hf_export(tmp_path, base_model, tokenizer_dir):
    transformers, peft = pytest.importorskip("transformers"), pytest.importorskip("peft")
    base_hf = os.path.join(base_model, "hf")
    base = load_model(base_model)
    export_hf(model_state(base, base.config), base.config, base_hf, tokenizer_dir)
    config = write_config(tmp_path, base_model, train={"max_steps": 4}, checkpoint={"every": 0})
    finetune.main(["--config", config])
    adapter_dir = str(tmp_path / "run" / "adapter")
    with open(os.path.join(adapter_dir, "adapter_config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["base_model_name_or_path"] == base_hf
    theirs = peft.PeftModel.from_pretrained(transformers.LlamaForCausalLM.from_pretrained(base_hf), adapter_dir).eval()
    ours = load_adapter(load_model(base_model), adapter_dir).eval()
    ids = torch.tensor([ChatTokenizer(base_hf).prompt_ids([{"role": "user", "content": "Hi! 你好"}])])
    with torch.no_grad():
        assert torch.allclose(ours(ids)[0], theirs(ids).logits, atol=1e-5)
        merged = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "run" / "hf")).eval()
        assert torch.allclose(merged(ids).logits, theirs(ids).logits, atol=1e-5)


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_two_ddp_processes_equal_one_process_with_the_same_global_batch(tmp_path, base_model, method):
    data = {"files": [f"{SLICES}/dpo_zh.json"], "limit": 24} if method == "dpo" else {}
    common = {
        "method": method,
        "checkpoint": {"every": 0},
        "lora": {**LORA, "dropout": 0.0},
        "eval": {"every": 3},
        "train": {"max_steps": 5, "seed": 3, "grad_accum": 2},
    }
    single = write_config(tmp_path, base_model, "single", data={**data, "batch_size": 4}, **common)
    finetune.main(["--config", single])
    double = write_config(
        tmp_path,
        base_model,
        "double",
        data={**data, "batch_size": 2},
        **{**common, "train": {**common["train"], "parallel": "ddp"}},
    )
    result = torchrun_two_processes("train.finetune", double)
    assert result.stdout.count(f"{method}: loss") == 1 and "in 2 process(es)" in result.stderr  # rank 0 reports
    one, two = metrics(str(tmp_path / "single")), metrics(str(tmp_path / "double"))
    assert sorted(two) == sorted(one) == [1, 2, 3, 4, 5]
    for step in one:
        for key in ("loss", "margin") if method == "dpo" else ("loss",):
            assert two[step][key] == pytest.approx(one[step][key], rel=1e-4, abs=1e-6), (step, key)
    assert len(validation(str(tmp_path / "single"))) == 2  # at step 3 and at the end
    assert validation(str(tmp_path / "double")) == pytest.approx(validation(str(tmp_path / "single")), rel=1e-4)
    a, b = load_model(str(tmp_path / "single")), load_model(str(tmp_path / "double"))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-5), name


@pytest.mark.parametrize(
    "override, message",
    [
        ("method=ppo", "method"),
        ("data.files=[]", "data.files"),
        ("data.files=[/nonexistent.json]", "/nonexistent.json not found"),
        ("data.seq_len=4096", "exceeds the base model's max_seq_len"),
        ("dpo.beta=0", "dpo.beta"),
        ("lora.targets=[wq]", "lora.targets"),
        ("optim.lr=-1", "optim.lr"),
    ],
)
def test_bad_config_values_get_a_clear_error(tmp_path, base_model, override, message):
    config = write_config(tmp_path, base_model)
    with pytest.raises(ValueError) as error:
        key, value = override.split("=")
        finetune.finetune(finetune.load_config(config, {key: yaml.safe_load(value)}))
    assert message in str(error.value)


def test_shipped_configs_are_valid(base_model, in_repo_root):
    for name in ("sft", "dpo"):
        config = finetune.load_config(f"configs/finetune/{name}.yaml", {"base": base_model})
        assert config.method == name and config.checkpoint.dir.startswith("out/finetune")
