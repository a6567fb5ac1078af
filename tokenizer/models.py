"""Tokenizer construction and the files that `transformers` loads.

Every model works on bytes (GPT-2's byte-to-character mapping after a
LLaMA-3-style regex split), so any text, Chinese and emoji included,
round-trips and no unknown token is ever needed: BPE (default), Unigram
and WordPiece differ only in how they build pieces from those bytes.
"""

from __future__ import annotations

import hashlib
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from pipelines.workdir import save_tokenizer_atomic, write_local_atomic
from tokenizer.config import TokenizerConfig

# LLaMA-3's pre-tokenizer: contractions, letter runs with one leading non-letter, digit
# groups, punctuation runs, newlines, spaces. `{DIGITS}` is `\p{N}{1,3}` there.
PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|{DIGITS}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# WordPiece marks word-internal pieces with a prefix. "##" is made of byte symbols, so a
# text "##" would be indistinguishable from the marker; fullwidth number signs are not
# byte symbols (those are all below U+0144).
WORDPIECE_PREFIX = "＃＃"
WORDPIECE_UNK = "<|unk|>"  # required by the WordPiece model, never emitted (every byte is a piece)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def pre_tokenizer(split_digits: bool) -> pre_tokenizers.PreTokenizer:
    pattern = PATTERN.replace("{DIGITS}", r"\p{N}" if split_digits else r"\p{N}{1,3}")
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def new_tokenizer(config: TokenizerConfig, show_progress: bool = True) -> tuple[Tokenizer, trainers.Trainer]:
    """An untrained tokenizer and its trainer, as `config` describes."""
    specials = config.all_special_tokens
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if config.model == "bpe":
        tokenizer = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=config.vocab_size,
            min_frequency=config.min_frequency,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=show_progress,
        )
        tokenizer.decoder = decoders.ByteLevel()
    elif config.model == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=config.vocab_size,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=show_progress,
        )
        tokenizer.decoder = decoders.ByteLevel()
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token=WORDPIECE_UNK, continuing_subword_prefix=WORDPIECE_PREFIX))
        # Room for the word-internal form of every byte, added after training.
        trainer = trainers.WordPieceTrainer(
            vocab_size=config.vocab_size - len(alphabet),
            min_frequency=config.min_frequency,
            special_tokens=specials + [WORDPIECE_UNK],
            initial_alphabet=alphabet,
            continuing_subword_prefix=WORDPIECE_PREFIX,
            show_progress=show_progress,
        )
        tokenizer.decoder = decoders.Sequence([decoders.Replace(WORDPIECE_PREFIX, ""), decoders.ByteLevel()])
    tokenizer.pre_tokenizer = pre_tokenizer(config.split_digits)
    return tokenizer, trainer


def complete_wordpiece(tokenizer: Tokenizer) -> None:
    """Give WordPiece the word-internal form of every byte and no word-length limit: the
    trainer only adds the forms it saw, and WordPiece turns a whole word into the unknown
    token when one piece is missing or the word is long (a Chinese clause is one word)."""
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    next_id = max(vocab.values()) + 1
    for symbol in pre_tokenizers.ByteLevel.alphabet():
        if WORDPIECE_PREFIX + symbol not in vocab:
            vocab[WORDPIECE_PREFIX + symbol] = next_id
            next_id += 1
    tokenizer.model = models.WordPiece(
        vocab, unk_token=WORDPIECE_UNK, continuing_subword_prefix=WORDPIECE_PREFIX, max_input_chars_per_word=1 << 30
    )


def chat_template(config: TokenizerConfig) -> str:
    """Jinja template rendering messages as <|role|>content<|end|> (transformers' apply_chat_template)."""
    roles = {role: token for role, token in config.chat_tokens.items() if role != "end"}
    end = config.chat_tokens.get("end", "")
    parts = ["{{ bos_token }}" if "bos" in config.special_tokens else "", "{% for message in messages %}"]
    for position, (role, token) in enumerate(roles.items()):
        parts.append(("{% if" if position == 0 else "{% elif") + f" message['role'] == '{role}' %}}{token}")
    parts.append("{% endif %}{{ message['content'] }}" + end + "{% endfor %}")
    if "assistant" in roles:
        parts.append("{% if add_generation_prompt %}" + roles["assistant"] + "{% endif %}")
    return "".join(parts)


def save(tokenizer: Tokenizer, out_dir: str, config: TokenizerConfig) -> None:
    """Write tokenizer.json plus the two files `transformers` reads its special tokens from."""
    os.makedirs(out_dir, exist_ok=True)
    save_tokenizer_atomic(tokenizer, os.path.join(out_dir, "tokenizer.json"))
    special = {
        f"{name}_token": token for name, token in config.special_tokens.items() if name in ("bos", "eos", "pad", "unk")
    }
    extra = [t for t in config.all_special_tokens if t not in special.values()]
    special_map = {**special, "additional_special_tokens": extra}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "model_max_length": config.model_max_length,
        "clean_up_tokenization_spaces": False,  # it would rewrite " ." to "." and break round trips
        "chat_template": chat_template(config),
    }
    for name, content in (("tokenizer_config.json", tokenizer_config), ("special_tokens_map.json", special_map)):
        write_local_atomic(os.path.join(out_dir, name), json.dumps(content, indent=2, ensure_ascii=False))


def tokenizer_path(path: str) -> str:
    """`path` itself or the tokenizer.json inside it."""
    return os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
