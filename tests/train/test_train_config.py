import pytest

from stages.base import ConfigError
from tests.train.train_helpers import write_run_config
from train import finetune, pretrain
from train.config import load_config


def write_config(tmp_path, **sections) -> str:
    text = tmp_path / "input.txt"
    text.write_text("some text " * 100)
    config = {"model": {"dim": 32, "n_layers": 1, "n_heads": 4}, "data": {"text": str(text), "seq_len": 32}}
    return write_run_config(str(tmp_path / "run.yaml"), config, sections)


def problems(load, *args) -> str:
    with pytest.raises(ConfigError) as error:
        load(*args)
    return str(error.value)


def test_values_are_converted_to_their_types(tmp_path):
    config = load_config(write_config(tmp_path), {"optim.lr": "3e-3", "train.max_steps": "20"})
    assert config.optim.lr == 0.003 and config.train.max_steps == 20
    assert config.model_config().vocab_size == 256 and config.model_config().max_seq_len == 32


def test_every_problem_at_once_with_its_key(tmp_path):
    message = problems(
        load_config,
        write_config(tmp_path, optim={"lr": 0, "betas": [0.9]}, log=None, train={"device": "tpu", "max_stepz": 1}),
        {"eval.every": -1},
    )
    assert message.startswith("5 problems:")
    for line in (
        "optim.lr: Input should be greater than 0",
        "optim.betas: List should have at least 2 items",
        "train.device: Input should be 'auto', 'cpu' or 'cuda'",
        "train.max_stepz: unknown key; valid keys: compile, device, dtype, grad_accum, max_steps, parallel, seed",
        "eval.every: Input should be greater than or equal to 0",
    ):
        assert line in message


def test_model_section_is_checked_as_a_model_config(tmp_path):
    message = problems(load_config, write_config(tmp_path, model={"dim": "wide", "heads": 4}))
    assert "model.dim: Input should be a valid integer" in message
    assert "model.heads: unknown key; valid keys: activation_checkpointing, dim, dropout" in message
    message = problems(load_config, write_config(tmp_path, model={"max_seq_len": 16}), {"data.text": "/no/such.txt"})
    assert (
        message == "2 problems:\n  data.text: /no/such.txt not found\n  data.seq_len: 32 exceeds model.max_seq_len (16)"
    )


def test_entry_points_report_config_errors_with_status_2(tmp_path, capsys):
    config = write_config(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--config", config, "--set", "optim.lr=fast"])
    assert exit_info.value.code == 2
    assert "python -m train.pretrain: config error: optim.lr: Input should be a valid number" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("data: {files: [\n")
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--config", str(tmp_path / "broken.yaml")])
    assert exit_info.value.code == 2
    assert (
        "python -m train.finetune: config error: " + str(tmp_path / "broken.yaml") + " is not valid YAML"
        in capsys.readouterr().err
    )


def test_finetune_config_names_each_problem(tmp_path):
    path = write_run_config(
        str(tmp_path / "sft.yaml"),
        {"method": "sft", "base": str(tmp_path / "base")},
        {"data": {"files": [str(tmp_path / "a.jsonl")], "batch_size": "8"}},
    )
    message = problems(finetune.load_config, path, {"checkpoint.dir": str(tmp_path / "base")})
    for line in (
        f"data.files[0]: {tmp_path}/a.jsonl not found",
        f"base: {tmp_path}/base/model_config.json not found",
        "tokenizer: ",
        f"checkpoint.dir: {tmp_path}/base is the base model's folder",
    ):
        assert line in message
    message = problems(finetune.load_config, path, {"lora.rank": 0, "lora.dropout": 1, "method": "ppo"})
    assert "lora: needs rank >= 1, alpha > 0 and dropout in [0, 1); got 0, 16.0, 1" in message
    assert "method: Input should be 'sft' or 'dpo'" in message
