"""Crash-safe checkpoints and resume rules (train/checkpoint.py), and continuing pretraining
with an extended vocabulary."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from tokenizers import Tokenizer

from tests.train.test_pretrain import TINY_MODEL, write_config
from tests.train.train_helpers import ROOT, sample_texts, write_shards, write_tokenized_shards
from tokenizer.config import TokenizerConfig
from tokenizer.extend import extend
from tokenizer.models import new_tokenizer
from train import pretrain
from train.checkpoint import (
    FAILPOINT_ENV,
    extend_vocabulary,
    latest_checkpoint,
    load_model,
    model_state,
    optimizer_state,
    read_initial_weights,
)
from train.config import OptimConfig
from train.model import ModelConfig, Transformer
from train.runtime import build_optimizer

TIMING = ("tokens_per_s", "time")  # the only metrics that differ between identical runs


def rows(run_dir) -> list[dict]:
    """metrics.jsonl without the timing fields."""
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        return [{key: value for key, value in json.loads(line).items() if key not in TIMING} for line in handle]


def assert_same_weights(a_dir, b_dir) -> None:
    a, b = load_model(str(a_dir)).state_dict(), load_model(str(b_dir)).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def kill_at(config: str, point: str, log, resume: bool) -> None:
    """Run the trainer in a child process until it reaches failpoint `point`, then SIGKILL it there."""
    command = [sys.executable, "-m", "train.pretrain", "--config", config] + (["--resume"] if resume else [])
    child = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, FAILPOINT_ENV: point}, stdout=subprocess.DEVNULL, stderr=log
    )
    _, status = os.waitpid(child.pid, os.WUNTRACED)  # the child stops itself (SIGSTOP) at the failpoint
    if not os.WIFSTOPPED(status):
        child.returncode = os.waitstatus_to_exitcode(status)
        raise AssertionError(f"the trainer ended ({child.returncode}) before failpoint {point}")
    child.kill()
    assert child.wait() == -signal.SIGKILL


def test_killed_at_three_moments_and_resumed_equals_an_uninterrupted_run(tmp_path):
    sections = dict(
        model={**TINY_MODEL, "dropout": 0.1},  # dropout: the RNG states must resume too
        train={"max_steps": 12},
        eval={"every": 4, "batches": 2},
        checkpoint={"every": 4},
    )
    straight = write_config(tmp_path, "straight", **sections)
    assert pretrain.main(["--config", straight]) == 0
    config = write_config(tmp_path, "killed", **sections)
    run_dir, checkpoints = tmp_path / "killed", tmp_path / "killed" / "checkpoints"
    with open(tmp_path / "killed.log", "w") as log:
        kill_at(config, "step:6", log, resume=False)  # between two checkpoints
        assert latest_checkpoint(str(checkpoints)).endswith("step_0000004")
        kill_at(config, "checkpoint_write:8", log, resume=True)  # weights of step 8 written, the rest not
        assert (checkpoints / ".tmp-step_0000008" / "model.safetensors").exists()
        assert latest_checkpoint(str(checkpoints)).endswith("step_0000004")  # the partial one is not taken
        kill_at(config, "final:12", log, resume=True)  # final checkpoint written, final evaluation not yet
        assert not (checkpoints / ".tmp-step_0000008").exists()  # removed on resume
        assert latest_checkpoint(str(checkpoints)).endswith("step_0000012")
        assert not (run_dir / "model.safetensors").exists()
    assert pretrain.main(["--config", config, "--resume"]) == 0
    assert rows(run_dir) == rows(tmp_path / "straight")  # every loss and validation row, each once
    assert [row["step"] for row in rows(run_dir) if "loss" in row] == list(range(1, 13))
    assert_same_weights(run_dir, tmp_path / "straight")
    assert sorted(os.listdir(checkpoints)) == ["step_0000008", "step_0000012"]


def test_resume_truncates_metrics_and_tensorboard_to_the_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = write_config(tmp_path, log={"every": 1, "tensorboard": True, "progress": False})
    pretrain.main(["--config", config])
    run_dir = tmp_path / "run"
    uninterrupted = rows(run_dir)
    os.rename(run_dir / "checkpoints" / "step_0000008", tmp_path / "step_0000008")  # as if killed after step 6
    pretrain.main(["--config", config, "--resume"])
    assert rows(run_dir) == uninterrupted
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("loss")] == list(range(1, 9))
    assert [event.value for event in events.Scalars("loss")] == pytest.approx(
        [r["loss"] for r in uninterrupted if "loss" in r]
    )


def test_a_partial_checkpoint_is_ignored_and_removed(tmp_path):
    config = write_config(tmp_path)
    pretrain.main(["--config", config])
    checkpoints = tmp_path / "run" / "checkpoints"
    partial = checkpoints / ".tmp-step_0000012"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"")
    assert latest_checkpoint(str(checkpoints)).endswith("step_0000008")
    pretrain.main(["--config", config, "--resume"])
    assert not partial.exists()


def test_a_missing_rng_file_is_an_error(tmp_path):
    config = write_config(tmp_path)
    pretrain.main(["--config", config])
    os.remove(tmp_path / "run" / "checkpoints" / "step_0000008" / "rng-rank0.pt")
    with pytest.raises(FileNotFoundError, match="rng-rank0.pt is missing"):
        pretrain.main(["--config", config, "--resume"])


def test_resuming_under_another_schedule_is_refused_unless_asked(tmp_path):
    config = write_config(tmp_path)
    pretrain.main(["--config", config])
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=r"decay_steps 8 -> 12.*--set optim.decay_steps=8.*allow_schedule_change"):
        pretrain.main(["--config", config, "--set", "train.max_steps=12", "--resume"])
    # Training on past the old schedule's end, at its final learning rate:
    pretrain.main(["--config", config, "--set", "train.max_steps=10", "--set", "optim.decay_steps=8", "--resume"])
    longer = rows(run_dir)
    assert [row["step"] for row in longer if "loss" in row] == list(range(1, 11))
    assert longer[-2]["lr"] == pytest.approx(3e-4)  # lr * min_lr_ratio
    pretrain.main(
        [
            "--config",
            config,
            "--set",
            "train.max_steps=12",
            "--set",
            "checkpoint.allow_schedule_change=true",
            "--resume",
        ]
    )
    assert [row["step"] for row in rows(run_dir) if "loss" in row] == list(range(1, 13))


def test_a_validation_split_smaller_than_a_batch(tmp_path, capsys):
    # 30 validation bytes: 3 windows of 9 + 1 tokens, fewer than one batch of 4
    text = tmp_path / "small.txt"
    text.write_bytes(b"abcdefghij" * 297 + b"x" * 30)
    config = write_config(
        tmp_path, data={"text": str(text), "text_val_fraction": 0.01, "seq_len": 9}, train={"max_steps": 2}
    )
    pretrain.main(["--config", config])
    assert "validation: 3 windows, fewer than one batch of 4 x 1; evaluating in batches of 3" in capsys.readouterr().err
    assert rows(tmp_path / "run")[-1]["val_loss"] > 0
    with pytest.raises(ValueError, match="validation split holds 0 window"):  # before any training step
        pretrain.main(["--config", config, "--set", "data.seq_len=32"])


@pytest.mark.parametrize("tied", [True, False])
def test_one_process_saves_the_state_dicts_torch_distributed_checkpoint_gives(tied):
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, max_seq_len=8, tie_embeddings=tied)
    model = Transformer(config)
    optimizer = build_optimizer(model, OptimConfig(), torch.device("cpu"))
    tokens = torch.randint(0, 50, (2, 8))
    model(tokens[:, :-1], tokens[:, 1:])[1].backward()
    optimizer.step()
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    expected_model = get_model_state_dict(model, options=full)
    if tied:
        expected_model.pop("lm_head.weight")
    assert_equal_nested(model_state(model, config), expected_model)
    assert_equal_nested(optimizer_state(model, optimizer), get_optimizer_state_dict(model, optimizer, options=full))


def assert_equal_nested(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_equal_nested(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal_nested(x, y)
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


# ------------------------------------------------------------------------- extended vocabulary


def test_new_rows_are_the_mean_and_old_rows_are_kept_bit_for_bit():
    torch.manual_seed(0)
    embed, head = torch.randn(10, 4), torch.randn(10, 4)
    grown = extend_vocabulary({"embed_tokens.weight": embed, "lm_head.weight": head, "norm.weight": torch.ones(4)}, 13)
    for key, old in (("embed_tokens.weight", embed), ("lm_head.weight", head)):
        assert grown[key].shape == (13, 4)
        assert torch.equal(grown[key][:10], old)
        assert torch.equal(grown[key][10:], old.mean(dim=0).expand(3, 4))
    assert torch.equal(grown["norm.weight"], torch.ones(4))


@pytest.mark.parametrize("tied", [True, False])
def test_continued_pretraining_with_an_extended_tokenizer(tmp_path, tied):
    shards = write_tokenized_shards(str(tmp_path / "base"))
    model = {**TINY_MODEL, "tie_embeddings": tied}
    base = write_config(
        tmp_path, "base_run", model=model, data={"text": None, "shards": shards}, train={"max_steps": 4}
    )
    pretrain.main(["--config", base])
    base_tokenizer = Tokenizer.from_file(str(tmp_path / "base" / "tokenizer" / "tokenizer.json"))
    zh = ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "明月几时有？把酒问青天。"] * 20
    extended, added = extend(base_tokenizer, zh, add=16)
    assert len(added) == 16
    new_shards = write_shards(str(tmp_path / "extended"), extended, zh)
    config = write_config(
        tmp_path,
        "continued",
        model=model,
        data={"text": None, "shards": new_shards},
        train={"max_steps": 2},
        init_from=str(tmp_path / "base_run"),
    )
    old = load_model(str(tmp_path / "base_run")).state_dict()
    initial = read_initial_weights(
        str(tmp_path / "base_run"),
        pretrain.load_config(config).model_config(),
        os.path.dirname(new_shards) + "/tokenizer",
    )
    vocab = extended.get_vocab_size()
    for key in ("embed_tokens.weight", "lm_head.weight"):
        assert initial[key].shape[0] == vocab
        assert torch.equal(initial[key][: len(old[key])], old[key])  # bit for bit
        assert torch.equal(initial[key][len(old[key]) :], old[key].mean(0).expand(16, -1))
    for key in old:
        if key not in ("embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(initial[key], old[key]), key
    pretrain.main(["--config", config])
    assert load_model(str(tmp_path / "continued")).config.vocab_size == vocab
    # A tokenizer trained anew (here on reversed texts: other merges, other ids) is refused.
    texts = [text[::-1] for text in sample_texts()]
    retrained, trainer = new_tokenizer(TokenizerConfig(vocab_size=600), show_progress=False)
    retrained.train_from_iterator(texts, trainer)
    other = write_shards(str(tmp_path / "other"), retrained, texts)
    wrong = write_config(
        tmp_path,
        "wrong",
        model=model,
        data={"text": None, "shards": other},
        train={"max_steps": 2},
        init_from=str(tmp_path / "base_run"),
    )
    with pytest.raises(ValueError, match="not an extension"):
        pretrain.main(["--config", wrong])
