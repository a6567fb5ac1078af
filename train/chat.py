"""Fine-tuning data: instruction and preference records, rendered with the chat template.

Record formats, read from JSON (a list) or JSONL files, detected per record:

- Alpaca: `instruction`, `input` (optional), `output`, optional `system`
- chat: `messages: [{role, content}]` (roles system / user / assistant)
- ShareGPT: `conversations: [{from, value}]` (from human / gpt / system, or the role names)
- preference: `prompt` (a string or a message list) + `chosen` / `rejected` strings, or
  `conversations` + `chosen` / `rejected` messages (LLaMA-Factory's dpo_*_demo.json)

Rendering uses the `chat_template` string of the tokenizer's tokenizer_config.json (the one
exported with the model, so training, `generate_answer` and transformers' apply_chat_template
all render alike). Which tokens are targets is found by rendering growing prefixes of the
conversation: an assistant turn spans from the end of the render of the turns before it
plus the generation prompt (`<|assistant|>`) to the end of the render including it, so its
content and the closing `<|end|>` are targets and everything else is IGNORE_INDEX.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from train.model import IGNORE_INDEX

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


# ---------------------------------------------------------------------------------------- records


def read_records(path: str) -> Iterator[tuple[str, Any]]:
    """(location, record) pairs: `file:line N` for JSONL, `file record N` (0-based) for a JSON list."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
        for index, record in enumerate(records):
            yield f"{path} record {index}", record
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: invalid JSON ({error.msg})") from None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _message(item: Any, what: str) -> Message:
    if not isinstance(item, dict):
        raise ValueError(f"{what} must be an object, got {type(item).__name__}")
    role = item.get("role", item.get("from"))
    if role not in ROLES:
        raise ValueError(f"{what} has role {role!r}; expected one of {sorted(ROLES)}")
    return {"role": ROLES[role], "content": _text(item.get("content", item.get("value")), f"{what} content")}


def _messages(items: Any, what: str) -> list[Message]:
    if not isinstance(items, list) or not items:
        raise ValueError(f"{what} must be a non-empty list of messages")
    return [_message(item, f"{what}[{i}]") for i, item in enumerate(items)]


def conversation(record: Any) -> list[Message]:
    """An instruction record (Alpaca, chat or ShareGPT) as messages ending with the assistant's answer."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "instruction" in record:
        prompt = _text(record["instruction"], "instruction")
        extra = _text(record.get("input") or "", "input")
        messages = [{"role": "system", "content": _text(record["system"], "system")}] if record.get("system") else []
        # LLaMA-Factory's Alpaca rendering: the input follows the instruction on a new line.
        messages.append({"role": "user", "content": f"{prompt}\n{extra}" if extra else prompt})
        messages.append({"role": "assistant", "content": _text(record.get("output"), "output")})
    elif "messages" in record or "conversations" in record:
        key = "messages" if "messages" in record else "conversations"
        messages = _messages(record[key], key)
    else:
        raise ValueError(
            f"unknown record format (keys {sorted(record)}); expected instruction/output, messages or conversations"
        )
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's (the answer to learn)")
    return messages


def preference(record: Any) -> tuple[list[Message], str, str]:
    """A preference record as (prompt messages, chosen answer, rejected answer)."""
    if not isinstance(record, dict) or "chosen" not in record or "rejected" not in record:
        raise ValueError("expected an object with `chosen` and `rejected`")
    if "prompt" in record:
        prompt = record["prompt"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else _messages(prompt, "prompt")
    elif "conversations" in record or "messages" in record:
        key = "conversations" if "conversations" in record else "messages"
        messages = _messages(record[key], key)
    else:
        raise ValueError(f"no prompt: expected `prompt`, `conversations` or `messages` (keys {sorted(record)})")
    if messages[-1]["role"] == "assistant":
        raise ValueError("the prompt must not end with an assistant message")
    answers = []
    for key in ("chosen", "rejected"):
        value = record[key]
        if isinstance(value, dict):
            message = _message(value, key)
            if message["role"] != "assistant":
                raise ValueError(f"{key} must be an assistant message, got role {message['role']!r}")
            value = message["content"]
        answers.append(_text(value, key))
    return messages, answers[0], answers[1]


def load_conversations(path: str, limit: int | None = None) -> list[list[Message]]:
    """SFT records of one file (the first `limit`); a malformed one raises ValueError naming file and line."""
    return _load(path, conversation, limit)


def load_preferences(path: str, limit: int | None = None) -> list[tuple[list[Message], str, str]]:
    return _load(path, preference, limit)


def _load(path: str, parse, limit: int | None) -> list:
    parsed = []
    for location, record in read_records(path):
        if limit is not None and len(parsed) == limit:
            break
        try:
            parsed.append(parse(record))
        except ValueError as error:
            raise ValueError(f"{location}: {error}") from None
    return parsed


# ---------------------------------------------------------------------------------------- tokens


class ChatTokenizer:
    """The tokenizer and its chat template, as saved beside a model (tokenizer.json + tokenizer_config.json)."""

    def __init__(self, directory: str):
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        # Message content is text: a "<|end|>" typed by a user or scraped into a data set must not
        # become the special token (it would end the turn and shift the response mask).
        self.content_tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        self.content_tokenizer.encode_special_tokens = True
        with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
        if not config.get("chat_template"):
            raise ValueError(f"{directory}/tokenizer_config.json has no chat_template")
        # The environment transformers' apply_chat_template renders in, so both give the same text.
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self.template = environment.from_string(config["chat_template"])
        self.special = {
            key[: -len("_token")]: value
            for key, value in config.items()
            if key.endswith("_token") and isinstance(value, str)
        }
        end = self.render([{"role": "assistant", "content": ""}])[len(self.render([], True)) :]
        self.stop_id = self.tokenizer.token_to_id(end)  # what closes an assistant turn: generation stops there
        if self.stop_id is None:
            raise ValueError(f"the chat template closes a turn with {end!r}, which is not one token")
        pad = self.tokenizer.token_to_id(self.special["pad"]) if "pad" in self.special else None
        self.pad_id = self.stop_id if pad is None else pad  # padding is never a target: any id does

    def render(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        return self.template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            **{f"{name}_token": token for name, token in self.special.items()},
        )

    def encode(self, messages: list[Message], last_turn_only: bool = False) -> tuple[list[int], list[bool]]:
        """Token ids of the rendered conversation and, per token, whether it is a target (an assistant
        turn's content and closing token; only the last turn's with `last_turn_only`)."""
        text, ids, offsets = self._encode(messages)
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant" or (last_turn_only and index < len(messages) - 1):
                continue
            prompt, upto = self.render(messages[:index], True), self.render(messages[: index + 1])
            if not (text.startswith(upto) and upto.startswith(prompt)):
                raise ValueError(
                    "the chat template does not render a conversation as the render of its "
                    "first turns followed by the rest; response masking needs that"
                )
            spans.append((len(prompt), len(upto)))
        # Our template puts special tokens at both edges of a span, and the tokenizer splits
        # them off first; another template might let a token straddle an edge.
        if any(start < edge < end for start, end in offsets for span in spans for edge in span):
            raise ValueError("a token straddles the edge of an assistant turn; cannot mask the prompt exactly")
        targets = [any(start <= offset[0] < end for start, end in spans) for offset in offsets]
        return ids, targets

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """The ids generation continues from: the conversation plus the assistant's opening."""
        return self._encode(messages, add_generation_prompt=True)[1]

    def _encode(
        self, messages: list[Message], add_generation_prompt: bool = False
    ) -> tuple[str, list[int], list[tuple[int, int]]]:
        """The rendered conversation, its ids and their character offsets: the template's text with its special
        tokens, each message's content as plain text. The template is rendered with a placeholder per
        content to tell them apart; for templates with special tokens around the content (ours) the
        ids equal those of tokenizing the whole render, unless content spells a special token."""
        placeholders = [{**message, "content": f"\ue000{i}\ue001"} for i, message in enumerate(messages)]
        parts = re.split("\ue000(\\d+)\ue001", self.render(placeholders, add_generation_prompt))
        pieces = [messages[int(part)]["content"] if index % 2 else part for index, part in enumerate(parts)]
        text = self.render(messages, add_generation_prompt)
        if "".join(pieces) != text:
            raise ValueError("the chat template changes message content (e.g. trims it); it must insert it as is")
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        position = 0
        for index, piece in enumerate(pieces):
            encoding = (self.content_tokenizer if index % 2 else self.tokenizer).encode(piece, add_special_tokens=False)
            ids += encoding.ids
            offsets += [(position + start, position + end) for start, end in encoding.offsets]
            position += len(piece)
        return text, ids, offsets

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------------------------------- batches


@dataclass
class Example:
    """One training sequence: ids and, per id, whether it is a target."""

    ids: list[int]
    targets: list[bool]


def truncate(example: Example, max_len: int) -> Example | None:
    """The first `max_len` tokens, or None when no target is left among them."""
    cut = Example(example.ids[:max_len], example.targets[:max_len])
    return cut if any(cut.targets[1:]) else None


@dataclass
class Batch:
    """Sequences laid out in rows: packed several to a row, or one per row, padded at the end."""

    tokens: torch.Tensor  # (rows, time) input ids
    targets: torch.Tensor  # (rows, time) next-token ids, IGNORE_INDEX where not a target
    sample: torch.Tensor  # (rows, time) index of the sequence each position belongs to, -1 = padding
    positions: torch.Tensor | None  # RoPE positions, restarting at 0 for each packed sequence
    mask: torch.Tensor | None  # (rows, 1, time, time) block-diagonal causal attention; None = causal

    def to(self, device: torch.device) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.tokens), move(self.targets), move(self.sample), move(self.positions), move(self.mask))


def make_batch(sequences: list[Example], row_len: int, pack: bool, pad_id: int) -> Batch:
    """Lay out sequences (each at most row_len + 1 tokens: inputs and shifted targets).

    Packing places each sequence, longest first, in the first row with room (first-fit
    decreasing) and gives every position its own sequence's positions and attention block, so
    each sequence sees exactly what it would alone; the loss is the same as unpacked.
    """
    rows: list[list[int]] = []  # sequence indices per row
    room: list[int] = []
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].ids)) if pack else range(len(sequences))
    for index in order:
        length = len(sequences[index].ids) - 1
        if length > row_len:
            raise ValueError(f"a sequence of {length + 1} tokens does not fit rows of {row_len} (+1)")
        row = next((r for r, free in enumerate(room) if free >= length), None) if pack else None
        if row is None:
            rows.append([])
            room.append(row_len)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= length
    time = max(row_len - free for free in room)
    tokens = torch.full((len(rows), time), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), time), IGNORE_INDEX, dtype=torch.long)
    sample = torch.full((len(rows), time), -1, dtype=torch.long)
    positions = torch.zeros((len(rows), time), dtype=torch.long)
    for row, members in enumerate(rows):
        start = 0
        for index in members:
            sequence = sequences[index]
            ids = torch.tensor(sequence.ids)
            end = start + len(ids) - 1
            tokens[row, start:end] = ids[:-1]
            targets[row, start:end] = torch.where(torch.tensor(sequence.targets[1:]), ids[1:], IGNORE_INDEX)
            sample[row, start:end] = index
            positions[row, start:end] = torch.arange(end - start)
            start = end
    if not pack:
        return Batch(tokens, targets, sample, None, None)
    # Padding forms one more block of its own (ids -1): each of its rows still attends to
    # itself, so attention has no all-masked row (which would give NaN).
    causal = torch.ones(time, time, dtype=torch.bool).tril()
    mask = (sample[:, :, None] == sample[:, None, :]) & causal
    return Batch(tokens, targets, sample, positions, mask[:, None])


def sequence_logprobs(logits: torch.Tensor, batch: Batch, count: int) -> torch.Tensor:
    """Sum of target-token log-probabilities per sequence (count sequences in the batch)."""
    valid = batch.targets != IGNORE_INDEX
    logprobs = -F.cross_entropy(
        logits.float().flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view_as(batch.targets)
    return torch.zeros(count, device=logits.device).index_add(0, batch.sample[valid], logprobs[valid])
