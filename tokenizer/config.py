"""Configuration of the tokenizer and token-shard step (`configs/shards.yaml`), and the YAML
reading and `--set KEY=VALUE` overrides that every entry point shares.

YAML in, frozen dataclasses out. Wrong types, values out of range and unknown keys fail at
load time, all at once, each naming its key, before Ray starts or a tokenizer trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import field
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from stages.base import ConfigError, Section, section, validated

MODELS = ("bpe", "unigram", "wordpiece")
OTHER = "*"  # weight key standing for every group not named explicitly


def _some_weight(weights: dict[str, float]) -> dict[str, float]:
    if sum(weights.values()) <= 0:
        raise ValueError("give at least one name a weight > 0")
    return weights


Weights = Annotated[dict[str, NonNegativeFloat], AfterValidator(_some_weight)]  # name -> weight >= 0


@section
class SampleConfig(Section):
    """Which text the tokenizer learns from: characters per group (language or source)."""

    by: Literal["lang", "source"] = "lang"  # group documents by this column
    weights: Weights | None = None  # share of characters per group; None = as found
    max_chars: PositiveInt = 50_000_000  # training text budget
    max_repeats: PositiveInt = 4  # a group short of its share is repeated at most this many times


@section
class ExtensionConfig(Section):
    """Vocabulary extension after training (tokenizer.extend): new tokens appended, old ids kept,
    written to `<tokenizer.dir>/extended` with a before/after report. The shards use it when
    `shards.tokenizer` is `extended`."""

    add: NonNegativeInt = 0  # tokens to add; 0 = no extension
    langs: list[str] | None = None  # learn only from documents in these languages (`lang` column)
    # learn only from runs of this Unicode script's characters (e.g. Han): the new tokens are words
    # of the language, not the code, URLs and English mixed into its documents; None = all text
    script: str | None = None
    docs: str | list[str] | None = None  # the new corpus (default: `docs`)


@section
class TokenizerConfig(Section):
    dir: str = "out/tokenizer"
    model: Literal[MODELS] = "bpe"  # bpe (byte-level) | unigram | wordpiece
    vocab_size: PositiveInt = 32_000  # special tokens included
    min_frequency: NonNegativeInt = 2  # bpe/wordpiece: pairs seen fewer times are not merged
    split_digits: bool = True  # one token per digit; False = LLaMA-3's groups of up to three
    special_tokens: dict[str, str] = field(
        default_factory=lambda: {"bos": "<|bos|>", "eos": "<|eos|>", "pad": "<|pad|>"}
    )
    chat_tokens: dict[str, str] = field(
        default_factory=lambda: {
            "system": "<|system|>",
            "user": "<|user|>",
            "assistant": "<|assistant|>",
            "end": "<|end|>",
        }
    )
    model_max_length: PositiveInt = 2048
    sample: SampleConfig = SampleConfig()
    heldout_fraction: float = Field(0.05, ge=0, lt=1)  # documents kept out of training to measure the tokenizer
    report_max_chars: PositiveInt = 2_000_000  # held-out characters measured per language
    extension: ExtensionConfig = ExtensionConfig()

    @property
    def all_special_tokens(self) -> list[str]:
        return list(self.special_tokens.values()) + list(self.chat_tokens.values())

    @model_validator(mode="after")
    def _consistent(self) -> TokenizerConfig:
        if "eos" not in self.special_tokens:
            raise ValueError("special_tokens: `eos` is required (it ends every document in the shards)")
        if len(set(self.all_special_tokens)) != len(self.all_special_tokens):
            raise ValueError("special and chat tokens must be distinct")
        # Every byte is a token (twice for WordPiece: word-initial and word-internal forms).
        minimum = 256 * (2 if self.model == "wordpiece" else 1) + len(self.all_special_tokens) + 1
        if self.vocab_size < minimum:
            raise ValueError(f"vocab_size: at least {minimum} for {self.model} (byte symbols + special tokens)")
        if self.extension.add and self.model != "bpe":
            raise ValueError("extension: only a bpe tokenizer can be extended")
        return self


@section
class ShardsConfig(Section):
    dir: str = "out/shards"
    weights: Weights | None = None  # target share of training tokens per source; None = as found
    total_tokens: PositiveInt | None = None  # training tokens to write; None = the training tokens available
    max_epochs: PositiveFloat = 4.0  # no source is repeated more than this
    val_fraction: float = Field(0.01, ge=0, lt=1)  # documents held out for validation (by hash of the id)
    shard_tokens: int = Field(1 << 25, gt=0, le=1 << 30)  # tokens per shard file (Arrow list offsets are int32)
    # which tokenizer writes the shards: base = <tokenizer.dir>, extended = <tokenizer.dir>/extended
    # (needs tokenizer.extension.add > 0; continue pretraining with train's init_from)
    tokenizer: Literal["base", "extended"] = "base"
    batch_size: PositiveInt = 256  # documents per tokenization batch


@section
class Config(Section):
    docs: str = "out/docs"  # kept documents of the corpus pipeline (Parquet)
    seed: int = 0
    num_cpus: PositiveInt | None = None  # cores for a local Ray instance (default: all)
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()

    @property
    def digest(self) -> str:
        """Hash of the resolved config, recorded in the manifest."""
        data = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()

    @model_validator(mode="after")
    def _validation_unseen(self) -> Config:
        # Held-out documents are those whose id hashes below the fraction, so the validation
        # split is a subset of the tokenizer's held-out set: the tokenizer never saw it either.
        if self.shards.val_fraction > self.tokenizer.heldout_fraction:
            raise ValueError(
                "shards.val_fraction must not exceed tokenizer.heldout_fraction "
                "(the tokenizer must not learn from validation documents)"
            )
        if self.shards.tokenizer == "extended" and not self.tokenizer.extension.add:
            raise ValueError("shards.tokenizer: extended needs tokenizer.extension.add > 0")
        return self


def parse_config(raw: dict | None) -> Config:
    return validated(Config, raw or {})


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read `path` (None = all defaults) and apply `overrides`."""
    return parse_config(read_yaml(path, overrides))


def with_out_root(overrides: dict[str, Any], out: str | None) -> dict[str, Any]:
    """`--out ROOT`: read ROOT/docs, write ROOT/tokenizer and ROOT/shards."""
    if out:
        overrides = {
            "docs": f"{out}/docs",
            "tokenizer.dir": f"{out}/tokenizer",
            "shards.dir": f"{out}/shards",
            **overrides,
        }
    return overrides


# ------------------------------------------------------------ YAML files and --set, for every entry point


def read_yaml(path: str | None, overrides: dict[str, Any] | None = None) -> dict:
    """The mapping in the YAML file `path` (None = an empty one) with `overrides`
    ({"shards.max_epochs": 2, ...}) applied. A file that is missing, empty or not a
    YAML mapping is a ConfigError."""
    raw: Any = {}
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = yaml.safe_load(handle)
        except OSError as error:
            raise ConfigError([("", f"cannot read {path}: {error.strerror}")]) from None
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError([("", f"{path} is not valid YAML: {error}")]) from None
        if not isinstance(raw, dict):
            found = "nothing" if raw is None else f"a {type(raw).__name__}"
            raise ConfigError([("", f"{path} holds {found}; expected a mapping of settings")])
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return raw


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """Set `dotted` ("shards.max_epochs") in `raw` to `value`, adding the mappings on the way."""
    node = raw
    *parents, leaf = dotted.split(".")
    for depth, key in enumerate(parents):
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            raise ConfigError([(".".join(parents[: depth + 1]), f"not a mapping, so {dotted} cannot be set")])
    node[leaf] = value


def parse_set(values: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` arguments as {KEY: VALUE}, each value read as YAML (`0.5`, `[en, zh]`, `null`)."""
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not (key and sep):
            raise ConfigError([("--set", f"expected KEY=VALUE, got {item!r}")])
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError([(f"--set {key}", f"not a YAML value: {error}")]) from None
    return overrides
