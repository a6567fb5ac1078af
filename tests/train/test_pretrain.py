import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from tokenizers import Tokenizer

from tests.train.train_helpers import (
    sample_texts,
    torchrun_two_processes,
    write_run_config,
    write_text,
    write_tokenized_shards,
)
from train import pretrain
from train.checkpoint import load_model
from train.config import load_config
from train.runtime import lr_at

TINY_MODEL = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2}


def write_config(tmp_path, name: str = "run", **sections) -> str:
    """A byte-level config on a small text file: 2-layer model, one log line and metric per step."""
    text = str(tmp_path / "input.txt")
    if not os.path.exists(text):
        write_text(text)
    config = {
        "model": TINY_MODEL,
        "data": {"text": text, "seq_len": 32, "batch_size": 4},
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "train": {"max_steps": 8, "seed": 3},
        "eval": {"every": 0, "batches": 2},
        "checkpoint": {"dir": str(tmp_path / name), "every": 4},
        "log": {"every": 1, "tensorboard": False, "progress": False},
        "sample": {"tokens": 0},
    }
    return write_run_config(str(tmp_path / f"{name}.yaml"), config, sections)


def losses(run_dir: str) -> dict[int, float]:
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


def test_loss_goes_down_when_overfitting_a_small_text(tmp_path, capsys):
    config = write_config(
        tmp_path, train={"max_steps": 60}, checkpoint={"every": 0}, sample={"tokens": 20, "prompt": "Der "}
    )
    assert pretrain.main(["--config", config]) == 0
    out, err = capsys.readouterr()
    seen = losses(str(tmp_path / "run"))
    assert seen[60] < seen[1] - 2.0  # from ~ln(256) = 5.5 towards the text's entropy
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "val_loss" and last[2] == "tokens_per_s" and float(last[1]) < 4.0
    assert "--- sample ---\nDer " in err
    for name in ("model.safetensors", "model_config.json", "metrics.jsonl"):
        assert os.path.exists(tmp_path / "run" / name)


def test_resume_continues_with_exactly_the_uninterrupted_losses(tmp_path):
    config = write_config(tmp_path, model={**TINY_MODEL, "dropout": 0.1})  # dropout: the RNG state matters
    pretrain.main(["--config", config])
    run_dir = str(tmp_path / "run")
    uninterrupted = losses(run_dir)
    shutil.rmtree(os.path.join(run_dir, "checkpoints", "step_0000008"))  # as if stopped after step 4
    os.remove(os.path.join(run_dir, "metrics.jsonl"))
    pretrain.main(["--config", config, "--resume"])
    resumed = losses(run_dir)
    assert sorted(resumed) == [5, 6, 7, 8]
    assert [resumed[s] for s in range(5, 9)] == [uninterrupted[s] for s in range(5, 9)]


def test_checkpoints_keep_the_newest_and_load_without_pickle(tmp_path):
    config = write_config(tmp_path, train={"max_steps": 6}, checkpoint={"every": 1, "keep": 2})
    pretrain.main(["--config", config])
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(os.listdir(folder)) == ["step_0000005", "step_0000006"]
    state = torch.load(folder / "step_0000006" / "trainer.pt", weights_only=True)
    assert state["step"] == 6 and state["loader"]["consumed"] > 0 and "state" in state["optimizer"]
    final, checkpoint = load_model(str(tmp_path / "run")), load_model(str(folder / "step_0000006"))
    for (name, a), (_, b) in zip(final.state_dict().items(), checkpoint.state_dict().items()):
        assert torch.equal(a, b), name


def test_schedule_warms_up_then_decays_to_ten_percent(tmp_path):
    optim = load_config(write_config(tmp_path, optim={"lr": 1.0, "warmup_steps": 10})).optim
    assert lr_at(0, optim, 100) == pytest.approx(0.1) and lr_at(9, optim, 100) == pytest.approx(1.0)
    assert lr_at(55, optim, 100) == pytest.approx(0.55) and lr_at(100, optim, 100) == pytest.approx(0.1)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path, parallel):
    single = write_config(tmp_path, "single", train={"max_steps": 5}, data={"batch_size": 4}, checkpoint={"every": 0})
    pretrain.main(["--config", single])
    double = write_config(
        tmp_path,
        "double",
        train={"max_steps": 5, "parallel": parallel},
        data={"batch_size": 2},
        checkpoint={"every": 0},
    )
    result = torchrun_two_processes("train.pretrain", double)
    assert result.stdout.count("val_loss") == 1  # only rank 0 reports
    one, two = losses(str(tmp_path / "single")), losses(str(tmp_path / "double"))
    assert sorted(two) == [1, 2, 3, 4, 5]
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step
    a, b = load_model(str(tmp_path / "single")), load_model(str(tmp_path / "double"))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-4), name


def test_hf_export_loads_in_transformers_with_matching_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    shards = write_tokenized_shards(str(tmp_path / "data"))
    config = write_config(
        tmp_path,
        data={"text": None, "shards": shards, "seq_len": 32, "batch_size": 4},
        train={"max_steps": 3},
        model={**TINY_MODEL, "tie_embeddings": False},
    )
    pretrain.main(["--config", config])
    ours = load_model(str(tmp_path / "run"))
    hf_dir = str(tmp_path / "run" / "hf")
    theirs = transformers.LlamaForCausalLM.from_pretrained(hf_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    ids = torch.tensor([tokenizer("Guten Tag, 春眠不觉晓 🙂").input_ids])
    with torch.no_grad():
        assert torch.allclose(ours(ids)[0], theirs(ids).logits, atol=1e-5)
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == "Guten Tag, 春眠不觉晓 🙂"
    assert theirs.config.eos_token_id == tokenizer.eos_token_id


def test_metrics_report_bits_per_byte_from_the_validation_text(tmp_path):
    shards = write_tokenized_shards(str(tmp_path / "data"))
    config = write_config(tmp_path, data={"text": None, "shards": shards}, train={"max_steps": 2})
    pretrain.main(["--config", config])
    with open(tmp_path / "run" / "metrics.jsonl", encoding="utf-8") as handle:
        final = [json.loads(line) for line in handle if "val_loss" in line][-1]
    # The validation documents are the first 10 sample texts, each followed by one EOS token.
    tokenizer = Tokenizer.from_file(str(tmp_path / "data" / "tokenizer" / "tokenizer.json"))
    texts = sample_texts()[:10]
    bytes_per_token = sum(len(t.encode()) for t in texts) / sum(len(tokenizer.encode(t).ids) + 1 for t in texts)
    assert 1.0 < bytes_per_token < 4.0
    assert final["val_bpb"] == pytest.approx(final["val_loss"] / 0.6931471805599453 / bytes_per_token)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-1", "optim.lr"),
        ("model.n_heads=5", "model.dim"),
        ("train.parallel=tp", "train.parallel"),
        ("data.seq_len=0", "data.seq_len"),
        ("optim.betaz=[0.9,0.9]", "unknown key"),
        ("data.text=/nonexistent.txt", "data.text"),
    ],
)
def test_bad_config_values_get_a_clear_error(tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--config", write_config(tmp_path), "--set", override])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_shipped_configs_are_valid(tmp_path, in_repo_root):
    shards = write_tokenized_shards(str(tmp_path / "data"))
    for name in ("tiny", "125m", "350m", "1b"):
        config = load_config(f"configs/train/{name}.yaml", {"data.shards": shards})
        assert config.model_config().max_seq_len >= config.data.seq_len
    if os.path.exists("../shared/data/lm/input.txt"):
        assert load_config("configs/train/shakespeare_char.yaml").model_config().vocab_size == 256


@pytest.mark.slow
def test_bf16_autocast_and_compile_run_on_cpu_close_to_fp32(tmp_path):
    """The GPU settings (bf16 autocast, compiled blocks) exercised on CPU: same losses within bf16 noise."""
    one_layer = {**TINY_MODEL, "n_layers": 1}  # one block to compile
    fp32 = write_config(tmp_path, "fp32", model=one_layer, train={"max_steps": 4}, checkpoint={"every": 0})
    fast = write_config(
        tmp_path,
        "fast",
        model=one_layer,
        train={"max_steps": 4, "dtype": "bf16", "compile": True},
        checkpoint={"every": 0},
    )
    pretrain.main(["--config", fp32])
    pretrain.main(["--config", fast])
    reference, compiled = losses(str(tmp_path / "fp32")), losses(str(tmp_path / "fast"))
    for step in reference:
        assert compiled[step] == pytest.approx(reference[step], rel=0.02), step


def test_each_evaluation_prints_one_summary_line(tmp_path, capfd):
    pretrain.main(["--config", write_config(tmp_path, eval={"every": 4, "batches": 2})])
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == ["step 4", "step 8"]  # periodic, then final
    assert all("val_loss " in line for line in lines)


PAGE_FAULTS_PER_STEPS = """
import resource, sys, torch
from train.model import ModelConfig, Transformer
from train.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
model = Transformer(ModelConfig(vocab_size=256, dim=128, n_layers=2, n_heads=4, max_seq_len=64))
optimizer = torch.optim.AdamW(model.parameters())
tokens = torch.randint(0, 256, (12, 64))
def steps(n):
    for _ in range(n):
        _, loss = model(tokens, tokens)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
steps(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
steps(10)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_memory_stops_the_page_faults_of_cpu_training_steps():
    def page_faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", PAGE_FAULTS_PER_STEPS, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout.split()[-1])

    default, kept = page_faults("default"), page_faults("keep")
    assert kept * 3 < default, (kept, default)  # measured: ~300-600 against ~2,800-9,000
