"""Our trainer vs nanoGPT's train.py on its CPU shakespeare_char recipe: `python -m bench.vs_nanogpt`.

Runs, one after the other on the same machine, each in a fresh process:

1. nanoGPT, the unmodified reference copy (../shared/ref/nanoGPT, MIT; copied to bench/work/nanogpt,
   where its own data/shakespeare_char/prepare.py encodes ../shared/data/lm/input.txt, untimed), with
   the CPU settings of its README: NANOGPT_FLAGS below.
2. Ours: `python -m train.pretrain --config configs/train/shakespeare_char.yaml` (the same model
   size, context, batch, steps, learning-rate schedule and 90/10 split; byte-level, and the text is
   ASCII, so a token is a character in both and the losses compare).

tokens/s = training tokens (steps x 12 x 64) / the process's wall time from launch to exit, so
start-up, evaluation, checkpoints and (ours) the closing sample all count, as a user waits for
them. Validation loss: nanoGPT's is its own final estimate (20 random batches of the validation
split); ours is the final weights' mean loss over the whole validation split, computed here after
the timed run (our run's own final estimate, on 20 fixed random batches, is printed as well).
Time to quality: the wall time from our launch until one of our periodic evaluations first reports
a val_loss at or below nanoGPT's final one (evaluations every eval.every steps bound its
resolution). The pair is run `--pairs` times, in ABBA order (nanoGPT first in odd pairs, ours
first in even ones, so that drift in the machine's speed favours neither); tokens/s and the ratio
are medians (per pair, the ratio of two back-to-back runs). Ends with

    ours_val X ours_tokens_per_s Y nanogpt_val Z nanogpt_tokens_per_s W ratio R
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

from train.checkpoint import load_model
from train.config import load_config
from train.data import TokenArray, TokenLoader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "bench", "work")
CONFIG = "configs/train/shakespeare_char.yaml"
NANOGPT_FLAGS = [
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    "--block_size=64",
    "--batch_size=12",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--max_iters=2000",
    "--lr_decay_iters=2000",
    "--dropout=0.0",
]
RATIO_GOAL = 1.2


def timed(command: list[str], cwd: str, log_path: str) -> tuple[float, float, str]:
    """Run `command` to completion; (launch time as time.time(), wall seconds, stdout). Stops on failure."""
    print(f"$ {' '.join(command)}  (in {os.path.relpath(cwd, REPO) or '.'})", file=sys.stderr, flush=True)
    launched, started = time.time(), time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"bench.vs_nanogpt: exit {done.returncode} from {' '.join(command)}; its stderr: {log_path}")
    return launched, seconds, done.stdout


def prepare_nanogpt(reference: str, text: str) -> str:
    """A working copy of the reference with its shakespeare_char data prepared; returns its folder."""
    folder = os.path.join(WORK, "nanogpt")
    data = os.path.join(folder, "data", "shakespeare_char")
    if not os.path.exists(os.path.join(data, "val.bin")):
        shutil.copytree(reference, folder, dirs_exist_ok=True)
        shutil.copyfile(text, os.path.join(data, "input.txt"))  # prepare.py downloads it only when missing
        subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, stdout=subprocess.DEVNULL)
    return folder


def parse_nanogpt(stdout: str) -> tuple[float, int]:
    """(final val loss, training iterations) from train.py's output ('step N: train loss X, val loss Y'
    at each evaluation, 'iter N: loss X, ...' after each iteration with --log_interval=1)."""
    evals = re.findall(r"^step \d+: train loss [\d.]+, val loss ([\d.]+)", stdout, re.MULTILINE)
    iterations = len(re.findall(r"^iter \d+:", stdout, re.MULTILINE))
    if not evals or not iterations:
        raise ValueError("no 'step N: ... val loss' or 'iter N:' lines in nanoGPT's output")
    return float(evals[-1]), iterations


def run_nanogpt(folder: str) -> dict[str, float]:
    out_dir = os.path.join(folder, "out-bench")
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [sys.executable, "train.py", "config/train_shakespeare_char.py", *NANOGPT_FLAGS, f"--out_dir={out_dir}"]
    _, seconds, stdout = timed(command, folder, os.path.join(WORK, "nanogpt-stderr.log"))
    val, iterations = parse_nanogpt(stdout)
    return {"val": val, "steps": iterations, "seconds": seconds, "tokens_per_s": iterations * 12 * 64 / seconds}


def whole_split_val_loss(model_dir: str, text: str, val_fraction: float, seq_len: int, batch_size: int) -> float:
    """Mean loss of the saved model over every window of the validation split (the last fraction of the text)."""
    raw = np.fromfile(text, dtype=np.uint8)
    val = TokenArray(raw[int(len(raw) * (1 - val_fraction)) :])
    model = load_model(model_dir).eval()
    total = count = 0.0
    with torch.no_grad():
        for inputs, targets in TokenLoader(val, seq_len, batch_size, shuffle=False, loop=False):
            _, loss = model(inputs, targets)
            total, count = total + loss.item() * targets.numel(), count + targets.numel()
    return total / count


def run_ours(config_path: str) -> dict[str, float | list]:
    config = load_config(config_path)
    run_dir = os.path.join(WORK, "vs_nanogpt-ours")
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "train.pretrain",
        "--config",
        config_path,
        "--set",
        "log.progress=false",
        "--set",
        f"checkpoint.dir={run_dir}",
    ]
    launched, seconds, stdout = timed(command, REPO, os.path.join(WORK, "vs_nanogpt-ours-stderr.log"))
    estimate = float(stdout.split()[-3])  # last line: val_loss X tokens_per_s Y
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        evals = [
            (row["step"], row["val_loss"], row["time"] - launched)
            for row in map(json.loads, handle)
            if "val_loss" in row
        ]
    data = config.data
    steps = config.train.max_steps
    return {
        "val": whole_split_val_loss(run_dir, data.text, data.text_val_fraction, data.seq_len, data.batch_size),
        "estimate": estimate,
        "steps": steps,
        "seconds": seconds,
        "evals": evals,
        "tokens_per_s": steps * config.train.grad_accum * data.batch_size * data.seq_len / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nanogpt",
        default=os.path.join("..", "shared", "ref", "nanoGPT"),
        help="the unmodified nanoGPT copy (default ../shared/ref/nanoGPT)",
    )
    parser.add_argument(
        "--text",
        default=os.path.join("..", "shared", "data", "lm", "input.txt"),
        help="tinyshakespeare (default ../shared/data/lm/input.txt)",
    )
    parser.add_argument("--config", default=CONFIG, help=f"our config (default {CONFIG})")
    parser.add_argument(
        "--pairs",
        type=int,
        default=4,
        help="pairs of runs, nanoGPT first in odd pairs and ours first in even ones; the ratio is the median of the "
        "pairs' ratios, as a shared machine's speed drifts by tens of percent within minutes (default 4)",
    )
    args = parser.parse_args(argv)
    os.makedirs(WORK, exist_ok=True)
    print(f"command: python -m bench.vs_nanogpt {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads")
    folder = prepare_nanogpt(os.path.join(REPO, args.nanogpt), os.path.join(REPO, args.text))
    pairs = []
    for pair in range(1, args.pairs + 1):
        # nanoGPT first in odd pairs, ours first in even ones: a machine that speeds up or slows down
        # over the run then favours neither side (ABBA order)
        order = ("nanoGPT", "ours") if pair % 2 else ("ours", "nanoGPT")
        runs, loads = {}, {}
        for name in order:
            runs[name] = run_nanogpt(folder) if name == "nanoGPT" else run_ours(args.config)
            loads[name] = os.getloadavg()[0]
        theirs, ours = runs["nanoGPT"], runs["ours"]
        ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
        pairs.append((theirs, ours, ratio))
        print(
            f"pair {pair} ({order[0]} first): nanoGPT {theirs['steps']} steps in {theirs['seconds']:.1f} s (load "
            f"average {loads['nanoGPT']:.2f} at its end), ours {ours['steps']} steps in {ours['seconds']:.1f} s (load "
            f"average {loads['ours']:.2f}): ratio {ratio:.2f}"
        )
    theirs, ours, _ = pairs[0]  # losses and evaluations are the same in every pair (fixed seeds, CPU)
    print(
        f"nanoGPT: final val loss {theirs['val']:.4f} (its estimate on 20 random validation batches)\n"
        f"ours:    final val loss {ours['val']:.4f} over the whole validation split ({ours['estimate']:.4f} on the "
        "run's 20 fixed batches)"
    )
    print(
        "ours, evaluations in pair 1 (step, val loss, seconds since launch): "
        + ", ".join(f"{step} {loss:.4f} {at:.1f}" for step, loss, at in ours["evals"])
    )
    reached = next(((step, at) for step, loss, at in ours["evals"] if loss <= theirs["val"]), None)
    if reached:
        print(
            f"time_to_nanogpt_val_s {reached[1]:.1f} (step {reached[0]}; nanoGPT's whole run: {theirs['seconds']:.1f} s)"
        )
    else:
        print(f"time_to_nanogpt_val_s n/a (no evaluation of ours reached {theirs['val']:.4f})")
    ratio = float(np.median([r for _, _, r in pairs]))
    ours_tokens_per_s = float(np.median([o["tokens_per_s"] for _, o, _ in pairs]))
    their_tokens_per_s = float(np.median([t["tokens_per_s"] for t, _, _ in pairs]))
    met = ratio >= RATIO_GOAL and ours["val"] <= theirs["val"]
    print(f"goal: median ratio >= {RATIO_GOAL} and ours_val <= nanogpt_val: {'met' if met else 'NOT met'}")
    print(
        f"ours_val {ours['val']:.4f} ours_tokens_per_s {ours_tokens_per_s:.0f} nanogpt_val {theirs['val']:.4f} "
        f"nanogpt_tokens_per_s {their_tokens_per_s:.0f} ratio {ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
