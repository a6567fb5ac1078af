"""Configuration of the tokenizer and token-shard step (`configs/shards.yaml`).

YAML in, frozen dataclasses out. Unknown keys and bad values fail at load
time with the offending key named, before Ray starts or a tokenizer trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

MODELS = ("bpe", "unigram", "wordpiece")
OTHER = "*"  # weight key standing for every group not named explicitly


@dataclass(frozen=True)
class SampleConfig:
    """Which text the tokenizer learns from: characters per group (language or source)."""

    by: str = "lang"  # group documents by this column: lang | source
    weights: dict[str, float] | None = None  # share of characters per group; None = as found
    max_chars: int = 50_000_000  # training text budget
    max_repeats: int = 4  # a group short of its share is repeated at most this many times


@dataclass(frozen=True)
class ExtensionConfig:
    """Vocabulary extension after training (tokenizer.extend): new tokens appended, old ids kept,
    written to `<tokenizer.dir>/extended` with a before/after report. Shards use the base tokenizer."""

    add: int = 0  # tokens to add; 0 = no extension
    langs: list[str] | None = None  # learn only from documents in these languages (`lang` column)
    docs: str | list[str] | None = None  # the new corpus (default: `docs`)


@dataclass(frozen=True)
class TokenizerConfig:
    dir: str = "out/tokenizer"
    model: str = "bpe"  # bpe (byte-level) | unigram | wordpiece
    vocab_size: int = 32_000  # special tokens included
    min_frequency: int = 2  # bpe/wordpiece: pairs seen fewer times are not merged
    split_digits: bool = True  # one token per digit; False = LLaMA-3's groups of up to three
    special_tokens: dict[str, str] = field(
        default_factory=lambda: {"bos": "<|bos|>", "eos": "<|eos|>", "pad": "<|pad|>"}
    )
    chat_tokens: dict[str, str] = field(
        default_factory=lambda: {
            "system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>", "end": "<|end|>"
        }
    )
    model_max_length: int = 2048
    sample: SampleConfig = SampleConfig()
    heldout_fraction: float = 0.05  # documents kept out of training to measure the tokenizer
    report_max_chars: int = 2_000_000  # held-out characters measured per language
    extension: ExtensionConfig = ExtensionConfig()

    @property
    def all_special_tokens(self) -> list[str]:
        return list(self.special_tokens.values()) + list(self.chat_tokens.values())


@dataclass(frozen=True)
class ShardsConfig:
    dir: str = "out/shards"
    weights: dict[str, float] | None = None  # target share of training tokens per source; None = as found
    total_tokens: int | None = None  # training tokens to write; None = the training tokens available
    max_epochs: float = 4.0  # no source is repeated more than this
    val_fraction: float = 0.01  # documents held out for validation (by hash of the id)
    shard_tokens: int = 1 << 25  # tokens per shard file (64 MiB as uint16)
    batch_size: int = 256  # documents per tokenization batch


@dataclass(frozen=True)
class Config:
    docs: str = "out/docs"  # kept documents of the corpus pipeline (Parquet)
    seed: int = 0
    num_cpus: int | None = None  # cores for a local Ray instance (default: all)
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()

    @property
    def digest(self) -> str:
        """Hash of the resolved config, recorded in the manifest."""
        data = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()


def build_dataclass(cls, values: Any, section: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, recursing into dataclass-typed fields."""
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ValueError(f"{section}: expected a mapping, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {sorted(unknown)}; valid: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default
        if dataclasses.is_dataclass(default):
            value = build_dataclass(type(default), value, f"{section}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def _check_weights(weights: dict | None, section: str) -> None:
    if weights is None:
        return
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{section}: expected a non-empty mapping of name -> weight")
    for name, weight in weights.items():
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"{section}.{name}: weight must be a number >= 0, got {weight!r}")
    if sum(weights.values()) <= 0:
        raise ValueError(f"{section}: weights sum to 0")


def validate(config: Config) -> Config:
    tok, shards = config.tokenizer, config.shards
    if tok.model not in MODELS:
        raise ValueError(f"tokenizer.model: {tok.model!r} is not one of {', '.join(MODELS)}")
    if tok.sample.by not in ("lang", "source"):
        raise ValueError(f"tokenizer.sample.by: {tok.sample.by!r} is not lang or source")
    if "eos" not in tok.special_tokens:
        raise ValueError("tokenizer.special_tokens: `eos` is required (it ends every document in the shards)")
    if len(set(tok.all_special_tokens)) != len(tok.all_special_tokens):
        raise ValueError("tokenizer: special and chat tokens must be distinct")
    # Every byte is a token (twice for WordPiece: word-initial and word-internal forms).
    minimum = 256 * (2 if tok.model == "wordpiece" else 1) + len(tok.all_special_tokens) + 1
    if tok.vocab_size < minimum:
        raise ValueError(f"tokenizer.vocab_size: at least {minimum} for {tok.model} (byte symbols + special tokens)")
    if tok.extension.add < 0:
        raise ValueError("tokenizer.extension.add: must be >= 0")
    if tok.extension.add and tok.model != "bpe":
        raise ValueError("tokenizer.extension: only a bpe tokenizer can be extended")
    _check_weights(tok.sample.weights, "tokenizer.sample.weights")
    _check_weights(shards.weights, "shards.weights")
    for key, value in (("tokenizer.heldout_fraction", tok.heldout_fraction),
                       ("shards.val_fraction", shards.val_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{key}: must be in [0, 1), got {value}")
    # Held-out documents are those whose id hashes below the fraction, so the validation
    # split is a subset of the tokenizer's held-out set: the tokenizer never saw it either.
    if shards.val_fraction > tok.heldout_fraction:
        raise ValueError("shards.val_fraction must not exceed tokenizer.heldout_fraction "
                         "(the tokenizer must not learn from validation documents)")
    if shards.max_epochs <= 0:
        raise ValueError("shards.max_epochs: must be > 0")
    if not 0 < shards.shard_tokens <= 1 << 30:  # Arrow list offsets are int32
        raise ValueError("shards.shard_tokens: must be in (0, 2**30]")
    if shards.batch_size <= 0:
        raise ValueError("shards.batch_size: must be > 0")
    return config


def parse_config(raw: dict | None) -> Config:
    return validate(build_dataclass(Config, raw or {}, "config"))


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def read_yaml(path: str | None, overrides: dict[str, Any] | None = None) -> dict:
    """The mapping in `path` (None = empty) with `overrides` ({"shards.max_epochs": 2, ...}) applied."""
    raw: dict = {}
    if path:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return raw


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read `path` (None = all defaults) and apply `overrides`."""
    return parse_config(read_yaml(path, overrides))


def parse_set(values: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` arguments (values parsed as YAML) as a dict."""
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = _number_or_as_is(yaml.safe_load(value))
    return overrides


def _number_or_as_is(value: Any) -> Any:
    """YAML 1.1 reads `3e-3` (no dot) as a string; a user typing --set optim.lr=3e-3 means a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def with_out_root(overrides: dict[str, Any], out: str | None) -> dict[str, Any]:
    """`--out ROOT`: read ROOT/docs, write ROOT/tokenizer and ROOT/shards."""
    if out:
        overrides = {"docs": f"{out}/docs", "tokenizer.dir": f"{out}/tokenizer",
                     "shards.dir": f"{out}/shards", **overrides}
    return overrides
