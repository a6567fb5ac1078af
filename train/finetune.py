"""Fine-tune a saved model on instruction data (SFT) or preference pairs (DPO), fully or with LoRA.

    python -m train.finetune --config configs/finetune/sft.yaml [--set train.max_steps=20] [--resume]
    python -m train.finetune --config configs/finetune/dpo.yaml
    torchrun --nproc_per_node N -m train.finetune --config configs/finetune/sft.yaml   # DDP

Reads `base` (model.safetensors + model_config.json, as `make train` writes) and the
tokenizer with its chat template (`tokenizer`, default `<base>/hf`). Writes to
`checkpoint.dir`: model.safetensors + model_config.json (LoRA merged: the next stage's
`base`), adapter/ (LoRA only, PEFT format), checkpoints/step_N (resumable), metrics.jsonl, tensorboard/,
hf/ (Hugging Face export with the tokenizer files). Then prints the model's answer to
`sample.prompt`, rendered with the chat template.

- SFT loss: mean cross-entropy over response tokens (each assistant turn and its closing
  `<|end|>`); prompt tokens are masked (train/chat.py). Averaged over all target tokens of
  an optimizer step, so packing and gradient accumulation do not change it.
- DPO loss (Rafailov et al., 2023): -log sigmoid(beta * ((log pi(y_w) - log ref(y_w)) -
  (log pi(y_l) - log ref(y_l)))), with sequence log-probabilities summed over the response.
  The reference is the starting model; its log-probabilities are computed once, before
  the first step (and again on resume: the base is frozen on disk, so they are the same).
  Logged: rewards beta * (log pi - log ref) of chosen and rejected, their margin, and the
  accuracy (share of pairs with chosen reward > rejected reward).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import field
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from tqdm import tqdm

from stages.base import ConfigError, Section, section, validated
from tokenizer.config import read_yaml
from train.chat import (
    ChatTokenizer,
    Example,
    load_conversations,
    load_preferences,
    make_batch,
    sequence_logprobs,
    truncate,
)
from train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_model,
    lr_schedule,
    model_state,
    remove_partial_checkpoints,
    save_checkpoint,
    save_weights,
)
from train.config import (
    CheckpointConfig,
    EvalConfig,
    LogConfig,
    LoopConfig,
    OptimConfig,
    SampleConfig,
    parse_run_arguments,
)
from train.data import epoch_order
from train.export import export_hf
from train.lora import LoraConfig, apply_lora, merge_lora, save_adapter
from train.model import Transformer
from train.runtime import MetricsLog, Runtime, build_optimizer, gradient_sync, init_runtime, lr_at, parallelize

SUMMARY = ("loss", "chosen_reward", "rejected_reward", "margin", "accuracy")  # first -> last in the summary line


@section
class FinetuneDataConfig(Section):
    files: list[str] = field(default_factory=list)  # JSON / JSONL records (formats: train/chat.py)
    limit: PositiveInt | None = None  # the first N records of each file; None = all
    # tokens per sequence (longer ones are cut) and per packed row; None = model.max_seq_len
    seq_len: PositiveInt | None = None
    batch_size: PositiveInt = 8  # sequences (sft) or pairs (dpo) per micro-step
    packing: bool = True  # several sequences per row (block-diagonal attention); false = one per row, padded
    val_fraction: float = Field(0.05, ge=0, lt=1)  # records held out (seeded) for the validation metrics


@section
class DpoConfig(Section):
    beta: PositiveFloat = 0.1  # strength of the pull towards the reference model


@section
class FinetuneConfig(Section):
    method: Literal["sft", "dpo"] = "sft"
    base: str = "out/model"  # the model to start from: model.safetensors + model_config.json
    tokenizer: str | None = None  # tokenizer.json + tokenizer_config.json (chat_template); None = <base>/hf
    data: FinetuneDataConfig = FinetuneDataConfig()
    lora: LoraConfig = LoraConfig()
    dpo: DpoConfig = DpoConfig()
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig(dir="out/finetune")
    log: LogConfig = LogConfig()
    sample: SampleConfig = SampleConfig(prompt="Give three tips for staying healthy.", tokens=64)  # the answer printed
    export_hf: bool = True  # also write <checkpoint.dir>/hf in Hugging Face Llama format, LoRA merged

    @property
    def tokenizer_dir(self) -> str:
        return self.tokenizer or os.path.join(self.base, "hf")

    @field_validator("lora")
    @classmethod
    def _lora_ranges(cls, lora: LoraConfig) -> LoraConfig:
        if lora.rank < 1 or lora.alpha <= 0 or not 0 <= lora.dropout < 1:
            raise ValueError(
                f"needs rank >= 1, alpha > 0 and dropout in [0, 1); got {lora.rank}, {lora.alpha}, {lora.dropout}"
            )
        return lora


def load_config(path: str, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Read a YAML config and apply `overrides`; then check that the files it names exist."""
    config = validated(FinetuneConfig, read_yaml(path, overrides))
    needed = [
        *((f"data.files[{i}]", file) for i, file in enumerate(config.data.files)),
        ("base", os.path.join(config.base, "model_config.json")),
        ("tokenizer", os.path.join(config.tokenizer_dir, "tokenizer_config.json")),
    ]
    problems = [(key, f"{file} not found") for key, file in needed if not os.path.exists(file)]
    if not config.data.files:
        problems.append(("data.files", "list at least one JSON / JSONL file"))
    if os.path.abspath(config.checkpoint.dir) == os.path.abspath(config.base):
        problems.append(("checkpoint.dir", f"{config.checkpoint.dir} is the base model's folder; write elsewhere"))
    if problems:
        raise ConfigError(problems)
    return config


# ---------------------------------------------------------------------------------------- objectives


class SFT:
    """Items are Examples; the loss is averaged over their target tokens."""

    stats = ("loss", "tokens")  # what a call returns, summed over items

    def __init__(self, examples: list[Example], config: FinetuneConfig, row_len: int, pad_id: int):
        self.examples, self.row_len, self.pack, self.pad_id = examples, row_len, config.data.packing, pad_id

    def weight(self, items: list[int]) -> int:
        return sum(sum(self.examples[i].targets[1:]) for i in items)

    def __call__(self, model: torch.nn.Module, items: list[int], runtime: Runtime) -> tuple[torch.Tensor, dict]:
        examples = [self.examples[i] for i in items]
        batch = make_batch(examples, self.row_len, self.pack, self.pad_id).to(runtime.device)
        with runtime.autocast():
            logits, _ = model(batch.tokens, positions=batch.positions, mask=batch.mask)
        loss = -sequence_logprobs(logits, batch, len(examples)).sum()
        return loss, {"loss": loss.item(), "tokens": sum(len(e.ids) - 1 for e in examples)}


class DPO:
    """Items are pair indices; chosen and rejected of a pair go through the model in one batch."""

    stats = ("loss", "chosen_reward", "rejected_reward", "margin", "accuracy", "tokens")

    def __init__(self, pairs: list[tuple[Example, Example]], config: FinetuneConfig, row_len: int, pad_id: int):
        self.pairs, self.beta = pairs, config.dpo.beta
        self.row_len, self.pack, self.pad_id = row_len, config.data.packing, pad_id
        self.reference: torch.Tensor | None = None  # (pairs, 2) log-probs of chosen, rejected

    def weight(self, items: list[int]) -> int:
        return len(items)

    def logprobs(self, model: torch.nn.Module, items: list[int], runtime: Runtime) -> torch.Tensor:
        """(len(items), 2) summed response log-probs of chosen and rejected."""
        sequences = [self.pairs[i][0] for i in items] + [self.pairs[i][1] for i in items]
        batch = make_batch(sequences, self.row_len, self.pack, self.pad_id).to(runtime.device)
        with runtime.autocast():
            logits, _ = model(batch.tokens, positions=batch.positions, mask=batch.mask)
        return sequence_logprobs(logits, batch, len(sequences)).view(2, -1).T

    @torch.no_grad()
    def compute_reference(self, model: torch.nn.Module, batch_size: int, runtime: Runtime) -> None:
        model.eval()
        indices = list(range(len(self.pairs)))
        self.reference = torch.cat(
            [self.logprobs(model, indices[i : i + batch_size], runtime) for i in range(0, len(indices), batch_size)]
        )
        model.train()

    def __call__(self, model: torch.nn.Module, items: list[int], runtime: Runtime) -> tuple[torch.Tensor, dict]:
        policy = self.logprobs(model, items, runtime)
        rewards = self.beta * (policy - self.reference[items].to(policy.device))
        margin = rewards[:, 0] - rewards[:, 1]
        loss = -F.logsigmoid(margin).sum()
        return loss, {
            "loss": loss.item(),
            "chosen_reward": rewards[:, 0].sum().item(),
            "rejected_reward": rewards[:, 1].sum().item(),
            "margin": margin.sum().item(),
            "accuracy": (margin > 0).sum().item(),
            "tokens": sum(len(self.pairs[i][k].ids) - 1 for i in items for k in (0, 1)),
        }


# ---------------------------------------------------------------------------------------- data


def split(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, validation) record indices."""
    order = np.random.default_rng([seed, 2**32 - 1]).permutation(count).tolist()  # a stream no epoch_order uses
    held = round(count * fraction)
    return sorted(order[held:]), sorted(order[:held])


def build_objective(
    config: FinetuneConfig, chat: ChatTokenizer, row_len: int
) -> tuple[SFT | DPO, list[int], list[int], int]:
    """The objective over all usable records, train and validation items, and the number dropped."""
    cut = row_len + 1  # a sequence of n tokens gives n - 1 inputs
    if config.method == "sft":
        records = [messages for path in config.data.files for messages in load_conversations(path, config.data.limit)]
        encoded = [truncate(Example(*chat.encode(messages)), cut) for messages in records]
        kept = [example for example in encoded if example]
        objective, dropped = SFT(kept, config, row_len, chat.pad_id), len(encoded) - len(kept)
    else:
        pairs = []
        for path in config.data.files:
            for prompt, chosen, rejected in load_preferences(path, config.data.limit):
                # Only the final answer is a target: earlier assistant turns are part of the prompt.
                pair = tuple(
                    truncate(
                        Example(*chat.encode(prompt + [{"role": "assistant", "content": answer}], last_turn_only=True)),
                        cut,
                    )
                    for answer in (chosen, rejected)
                )
                pairs.append(pair if all(pair) else None)
        kept = [pair for pair in pairs if pair]
        objective, dropped = DPO(kept, config, row_len, chat.pad_id), len(pairs) - len(kept)
    if not kept:
        raise ValueError(f"no record fits data.seq_len={row_len} with a response token left")
    train_items, val_items = split(len(kept), config.data.val_fraction, config.train.seed)
    return objective, train_items, val_items, dropped


class ItemStream:
    """Train items in a seeded order, epoch after epoch; the state is one count, for exact resume."""

    def __init__(self, items: list[int], seed: int):
        self.items, self.seed, self.consumed = items, seed, 0
        self._epoch, self._order = -1, []

    def take(self, count: int) -> list[int]:
        taken = []
        for position in range(self.consumed, self.consumed + count):
            epoch, index = divmod(position, len(self.items))
            if epoch != self._epoch:
                self._epoch, self._order = epoch, epoch_order(len(self.items), self.seed, epoch, True)
            taken.append(self.items[self._order[index]])
        self.consumed += count
        return taken


# ---------------------------------------------------------------------------------------- loop


def evaluate(
    model: torch.nn.Module, objective: SFT | DPO, items: list[int], config: FinetuneConfig, runtime: Runtime
) -> dict[str, float]:
    """Mean validation metrics over the held-out items (the first `eval.batches` batches; 0 = all),
    each process taking its share. `model` is the unwrapped model: no collective in its forward."""
    batch_size = config.data.batch_size * runtime.world_size
    items = items[: config.eval.batches * batch_size] if config.eval.batches else items
    model.eval()
    sums: Counter = Counter()
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            if share := items[start : start + batch_size][runtime.rank :: runtime.world_size]:
                sums.update(objective(model, share, runtime)[1])
    model.train()
    totals = reduce_stats(sums, objective, runtime)
    weight = objective.weight(items)
    return {f"val_{key}": value / weight for key, value in totals.items() if key != "tokens"}


def reduce_stats(sums: Counter, objective: SFT | DPO, runtime: Runtime) -> dict[str, float]:
    """Sums over all processes."""
    return dict(zip(objective.stats, runtime.all_reduce_sum([float(sums[key]) for key in objective.stats])))


def generate_answer(model: Transformer, chat: ChatTokenizer, config: FinetuneConfig, runtime: Runtime) -> str:
    """The model's reply to `sample.prompt` as one user turn, rendered as in training."""
    sample = config.sample
    prompt = chat.prompt_ids([{"role": "user", "content": sample.prompt}])
    model.eval()
    generator = torch.Generator(runtime.device).manual_seed(config.train.seed)
    with runtime.autocast():
        out = model.generate(
            torch.tensor([prompt], device=runtime.device),
            sample.tokens,
            temperature=sample.temperature,
            top_k=sample.top_k,
            eos_id=chat.stop_id,
            generator=generator,
        )
    model.train()
    return chat.decode(out[0, len(prompt) :].tolist())


def finetune(config: FinetuneConfig, resume: bool = False) -> dict[str, float]:
    runtime = init_runtime(config.train)
    if runtime.world_size > 1 and config.train.parallel != "ddp":
        raise ValueError(
            "train.parallel: fine-tuning under torchrun uses ddp (LoRA merging and the export "
            "read whole weights); fsdp is for pretraining"
        )
    torch.manual_seed(config.train.seed)
    chat = ChatTokenizer(config.tokenizer_dir)
    raw_model = load_model(config.base, runtime.device)
    model_config = raw_model.config
    row_len = config.data.seq_len or model_config.max_seq_len
    if row_len > model_config.max_seq_len:
        raise ValueError(f"data.seq_len ({row_len}) exceeds the base model's max_seq_len ({model_config.max_seq_len})")
    objective, train_items, val_items, dropped = build_objective(config, chat, row_len)
    if config.lora.enabled:
        apply_lora(raw_model, config.lora)
    trainable = [p for p in raw_model.parameters() if p.requires_grad]
    if isinstance(objective, DPO):  # the reference is the model as loaded (LoRA's B = 0: the same function)
        objective.compute_reference(raw_model, config.data.batch_size, runtime)
    model = parallelize(raw_model, runtime, config.train)
    optimizer = build_optimizer(model, config.optim, runtime.device)
    stream = ItemStream(train_items, config.train.seed)
    out_dir, checkpoints = config.checkpoint.dir, os.path.join(config.checkpoint.dir, "checkpoints")
    schedule = lr_schedule(config.optim, config.train.max_steps)
    step, metric_rows, saved_step = 0, 0, None
    if runtime.is_main:
        remove_partial_checkpoints(checkpoints)  # a save that was killed before it completed
    if resume and (path := latest_checkpoint(checkpoints)):
        state = load_checkpoint(
            path, model, model_config, optimizer, runtime.rank, schedule, config.checkpoint.allow_schedule_change
        )
        step, stream.consumed, metric_rows = state["step"], state["consumed"], state["metric_rows"]
        saved_step = step
        if runtime.is_main:
            print(f"resumed from {path} at step {step}", file=sys.stderr)
    log = MetricsLog(out_dir, runtime, config.log.tensorboard, step, metric_rows)

    def checkpoint() -> None:
        save_checkpoint(
            checkpoints,
            model,
            model_config,
            optimizer,
            {"step": step, "consumed": stream.consumed, "schedule": schedule, "metric_rows": log.rows},
            runtime.rank,
            config.checkpoint.keep,
        )

    loop, batch_size = config.train, config.data.batch_size
    say = print if runtime.is_main else lambda *args, **kwargs: None
    say(
        f"{config.method}: {len(train_items)} train / {len(val_items)} validation "
        f"{'pairs' if config.method == 'dpo' else 'examples'} ({dropped} dropped: no response token within "
        f"{row_len + 1} tokens); {sum(p.numel() for p in trainable) / 1e6:.3f}M of "
        f"{raw_model.num_params() / 1e6:.2f}M parameters train{' (LoRA)' if config.lora.enabled else ''}; "
        f"{batch_size * runtime.world_size * loop.grad_accum} per step in {runtime.world_size} process(es)",
        file=sys.stderr,
    )

    progress = tqdm(
        total=loop.max_steps,
        initial=step,
        disable=not (runtime.is_main and config.log.progress),
        desc=config.method,
        unit="step",
        dynamic_ncols=True,
    )
    first: dict[str, float] = {}  # the first and the last logged training metrics, for the summary
    last: dict[str, float] = {}
    window: Counter = Counter()
    window_start = time.perf_counter()
    while step < loop.max_steps:
        lr = lr_at(step, config.optim, loop.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Every process draws the same global micro-batches and takes its share of each; the loss is
        # normalised by the global weight, and DDP averages gradients: times world_size gives the sum.
        micro_items = [stream.take(batch_size * runtime.world_size) for _ in range(loop.grad_accum)]
        total = sum(objective.weight(items) for items in micro_items)
        sums: Counter = Counter()
        for micro, items in enumerate(micro_items):
            with gradient_sync(model, micro == loop.grad_accum - 1):
                loss, stats = objective(model, items[runtime.rank :: runtime.world_size], runtime)
                (loss * runtime.world_size / total).backward()
            sums.update(stats)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.optim.grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        progress.update()
        window.update(sums)
        window["weight"] += total
        if step % config.log.every == 0 or step == loop.max_steps:
            weight = window.pop("weight")
            totals = reduce_stats(window, objective, runtime)
            tokens = totals.pop("tokens")
            metrics = {key: value / weight for key, value in totals.items()}
            elapsed = time.perf_counter() - window_start
            metrics.update(lr=lr, grad_norm=float(grad_norm), tokens_per_s=tokens / elapsed)
            first, last = first or metrics, metrics
            log.write(step, **metrics)
            progress.set_postfix(loss=f"{metrics['loss']:.4f}")
            window, window_start = Counter(), time.perf_counter()
        paused = time.perf_counter()  # evaluation and checkpoints do not count towards tokens/s
        if val_items and config.eval.every and step % config.eval.every == 0 and step < loop.max_steps:
            log.evaluation(step, evaluate(raw_model, objective, val_items, config, runtime))
        if config.checkpoint.every and step % config.checkpoint.every == 0 and step < loop.max_steps:
            checkpoint()
        window_start += time.perf_counter() - paused
    progress.close()
    if step != saved_step:  # the final state is safe before the final evaluation
        checkpoint()
    final = evaluate(raw_model, objective, val_items, config, runtime) if val_items else {}
    log.evaluation(step, final)
    if runtime.is_main:  # under DDP every process holds the same whole weights
        if config.lora.enabled:
            save_adapter(raw_model, config.lora, os.path.join(out_dir, "adapter"), os.path.join(config.base, "hf"))
            merge_lora(raw_model)
        state = model_state(raw_model, model_config)
        save_weights(state, model_config, out_dir)
        if config.export_hf:
            export_hf(state, model_config, os.path.join(out_dir, "hf"), config.tokenizer_dir, stop_ids=[chat.stop_id])
        if config.sample.tokens:
            answer = generate_answer(raw_model, chat, config, runtime)
            print(f"--- {config.sample.prompt} ---\n{answer}\n--------------", file=sys.stderr)
    log.close()
    if dist.is_initialized():
        dist.destroy_process_group()
    return {**{f"first_{key}": value for key, value in first.items()}, **last, **final}


def main(argv: list[str] | None = None) -> int:
    config, resume = parse_run_arguments(
        argv,
        "python -m train.finetune",
        "Fine-tune a saved model with SFT (response-only loss) or DPO, fully or with LoRA.",
        "configs/finetune/sft.yaml",
        load_config,
    )
    result = finetune(config, resume=resume)
    if int(os.environ.get("RANK", "0")):
        return 0
    # e.g. "dpo: loss 0.6931 -> 0.5210 margin 0.0000 -> 0.4466 accuracy 0.0000 -> 0.8750 val_loss 0.6402 ..."
    summary = [f"{key} {result['first_' + key]:.4f} -> {result[key]:.4f}" for key in SUMMARY if key in result]
    summary += [f"{key} {value:.4f}" for key, value in result.items() if key.startswith("val_")]
    print(f"{config.method}: {' '.join(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
