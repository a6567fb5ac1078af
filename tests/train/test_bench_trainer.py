"""The trainer benchmarks' code paths on CPU: bench.mfu on a tiny config, bench.vs_nanogpt's parsing."""

import pytest

from bench import mfu, vs_nanogpt
from tests.train.train_helpers import write_run_config

TINY = {
    "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2},  # no vocab_size: --vocab-size applies
    "data": {"shards": "/nonexistent/shards", "seq_len": 32, "batch_size": 2},
    "train": {"grad_accum": 2, "dtype": "bf16"},
}


@pytest.mark.parametrize("compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_mfu_benchmark_runs_a_tiny_config_with_bf16_and_compile(tmp_path, capsys, compile):
    config = write_run_config(str(tmp_path / "tiny.yaml"), dict(TINY), {"train": {"compile": compile}})
    assert mfu.main(["--config", config, "--steps", "2", "--warmup", "1", "--vocab-size", "300"]) == 0
    out = capsys.readouterr().out
    assert f"bf16 autocast, compile {compile}" in out and "vocab 300;" in out
    fields = out.strip().splitlines()[-1].split()
    assert fields[0::2] == ["tokens_per_s", "mfu", "peak_memory_gib"]
    assert float(fields[1]) > 0 and fields[3] == "n/a" and float(fields[5]) > 0  # no MFU on CPU


NANOGPT_OUTPUT = """tokens per iteration will be: 768
step 0: train loss 4.2874, val loss 4.2823
iter 0: loss 4.2649, time 1234.56ms, mfu -100.00%
iter 1: loss 4.1610, time 40.12ms, mfu -100.00%
step 2: train loss 3.9000, val loss 3.9500
saving checkpoint to out-bench
iter 2: loss 3.8810, time 41.00ms, mfu 0.01%
"""


def test_nanogpt_output_gives_the_last_val_loss_and_the_iterations():
    assert vs_nanogpt.parse_nanogpt(NANOGPT_OUTPUT) == (3.95, 3)
    with pytest.raises(ValueError):
        vs_nanogpt.parse_nanogpt("Traceback (most recent call last):\n")
