"""`python -m tokenizer.extend`: add N tokens learned from a new corpus to an existing
byte-level BPE tokenizer (e.g. adapting an English base model to Chinese).

BPE training is continued from the base: the new corpus is cut into words by the base's own
pre-tokenizer, each word starts as the base's tokens of it, and the most frequent adjacent
pair of tokens is merged, again and again, until N new tokens are found. So each new token
saves the most tokens on the new corpus among those left, and it is reachable: its two parts
are base tokens or earlier new ones. With `script` (a Unicode script such as Han), the words
are taken from the runs of that script's characters only: the code, URLs and English mixed
into Chinese web pages would otherwise take many of the new ids. The merges are
appended after the base merges (lowest priority) with ids after the largest existing id, so
every existing token keeps its id and text the base already handled tokenizes as before.
Held-out documents of the corpus are kept out and used to report characters per token and
tokens per word per language, before and after. `tokenizer.train` runs the same step when
`tokenizer.extension.add` is set in the config.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import sys
from collections import Counter, defaultdict

import regex
from tokenizers import Tokenizer

from pipelines.workdir import save_tokenizer_atomic
from tokenizer.corpus import iter_documents
from tokenizer.models import TOKENIZER_FILES, tokenizer_path
from tokenizer.report import measure, write_report
from tokenizer.sampling import heldout_mask

MIN_COUNT = 2  # a pair seen once would spend a vocabulary row to save one token


def base_words(base: Tokenizer, texts: list[str], script: str | None = None) -> Counter:
    """How often each word (pre-tokenizer chunk) occurs, as the tuple of the base's tokens of it;
    with `script`, the words of the runs of that script's characters only."""
    try:
        runs = regex.compile(rf"\p{{{script}}}+") if script else None
    except regex.error:
        raise ValueError(f"script {script!r}: not a Unicode script name (e.g. Han, Cyrillic, Hangul)") from None
    chunks: Counter = Counter()
    for text in texts:
        if base.normalizer:
            text = base.normalizer.normalize_str(text)
        for part in runs.findall(text) if runs else [text]:
            chunks.update(chunk for chunk, _ in base.pre_tokenizer.pre_tokenize_str(part))
    return Counter(
        {tuple(token.value for token in base.model.tokenize(chunk)): count for chunk, count in chunks.items()}
    )


def continue_bpe(words: Counter, known: set[str], add: int) -> list[tuple[str, str]]:
    """Up to `add` merges over `words` (token tuples and their counts), the most frequent pair first
    (ties: the smaller pair), each making a token not in `known`.
    The `tokenizers` trainers only start from bytes, hence this loop: the pair counts of the words
    a merge touches are updated, and a heap whose outdated entries are skipped finds the next pair."""
    pieces = [list(word) for word in words]
    counts = list(words.values())
    pair_count: Counter = Counter()
    holders: dict[tuple[str, str], set[int]] = defaultdict(set)  # words that hold (or once held) a pair
    for index, word in enumerate(pieces):
        for pair in zip(word, word[1:]):
            pair_count[pair] += counts[index]
            holders[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_count.items()]
    heapq.heapify(heap)
    skipped: set[tuple[str, str]] = set()  # merged already, or making a token known already
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < add:
        negative, pair = heapq.heappop(heap)
        if pair in skipped or -negative != pair_count[pair]:
            continue  # an outdated entry
        if -negative < MIN_COUNT:
            break  # the most frequent pair left is too rare
        skipped.add(pair)
        token = pair[0] + pair[1]
        if token in known:  # reachable another way already
            continue
        known.add(token)
        merges.append(pair)
        changed = set()
        for index in holders.pop(pair):
            word, count = pieces[index], counts[index]
            merged, position = [], 0
            while position < len(word):
                if tuple(word[position : position + 2]) == pair:
                    merged.append(token)
                    position += 2
                else:
                    merged.append(word[position])
                    position += 1
            for old in zip(word, word[1:]):
                pair_count[old] -= count
                changed.add(old)
            for new in zip(merged, merged[1:]):
                pair_count[new] += count
                holders[new].add(index)
                changed.add(new)
            pieces[index] = merged
        for changed_pair in changed - skipped:
            heapq.heappush(heap, (-pair_count[changed_pair], changed_pair))
    return merges


def extend(base: Tokenizer, texts: list[str], add: int, script: str | None = None) -> tuple[Tokenizer, list[str]]:
    """The base with up to `add` new tokens learned from `texts` (with `script`, from the runs of
    that script's characters only), and those tokens."""
    data = json.loads(base.to_str())
    model = data["model"]
    if model["type"] != "BPE":
        raise ValueError(f"only BPE tokenizers can be extended, this one is {model['type']}")
    vocab: dict[str, int] = model["vocab"]
    added_ids = [t["id"] for t in data.get("added_tokens", [])]
    next_id = max(list(vocab.values()) + added_ids) + 1
    merges = continue_bpe(base_words(base, texts, script), set(vocab), add)
    new_tokens = [left + right for left, right in merges]
    string_merges = bool(model["merges"]) and isinstance(model["merges"][0], str)
    for offset, ((left, right), token) in enumerate(zip(merges, new_tokens)):
        vocab[token] = next_id + offset
        model["merges"].append(f"{left} {right}" if string_merges else [left, right])
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False)), new_tokens


def readable(tokenizer: Tokenizer, tokens: list[str]) -> list[str]:
    """Decoded text of `tokens`, skipping partial UTF-8 sequences (a Chinese character is 3 bytes)."""
    texts = (tokenizer.decode([tokenizer.token_to_id(t)]) for t in tokens)
    return [t.replace("\n", "\\n") for t in texts if "\ufffd" not in t]


def read_split(
    paths: str | list[str], langs: list[str] | None, heldout_fraction: float, report_max_chars: int
) -> tuple[list[str], dict[str, list[str]]]:
    """Training texts (held-out documents and other languages left out) and held-out texts per language."""
    training: list[str] = []
    heldout: dict[str, list[str]] = defaultdict(list)
    heldout_chars: dict[str, int] = defaultdict(int)
    for batch in iter_documents(paths, columns=("id", "text", "lang")):
        held = heldout_mask(batch["id"].to_pylist(), heldout_fraction)
        for is_held, text, lang in zip(held, batch["text"].to_pylist(), batch["lang"].to_pylist()):
            lang = lang or "unknown"
            if is_held:
                if heldout_chars[lang] < report_max_chars:
                    heldout[lang].append(text)
                    heldout_chars[lang] += len(text)
            elif langs is None or lang in langs:
                training.append(text)
    return training, heldout


def extend_files(
    base_file: str,
    corpus: str | list[str],
    add: int,
    out_dir: str,
    langs: list[str] | None = None,
    heldout_fraction: float = 0.05,
    report_max_chars: int = 2_000_000,
    script: str | None = None,
) -> dict[str, dict]:
    """Extend the tokenizer at `base_file` with `add` tokens learned from `corpus` (held-out
    documents left out; only tokens of `script`, if given); write it, the base's special-token
    files and report.{json,md} (per language, before/after) into `out_dir`. Returns the figures."""
    base = Tokenizer.from_file(base_file)
    training, heldout = read_split(corpus, langs, heldout_fraction, report_max_chars)
    if not training:
        raise ValueError(f"no training documents in {corpus!r}" + (f" for languages {langs}" if langs else ""))
    extended, added = extend(base, training, add, script)
    os.makedirs(out_dir, exist_ok=True)
    save_tokenizer_atomic(extended, os.path.join(out_dir, "tokenizer.json"))
    for name in TOKENIZER_FILES[1:]:  # special tokens are unchanged: copy the base's files
        source = os.path.join(os.path.dirname(base_file), name)
        if os.path.exists(source):
            shutil.copyfile(source, os.path.join(out_dir, name))
    results = {"base": measure(base, heldout), "extended": measure(extended, heldout)}
    corpus_name = corpus if isinstance(corpus, str) else " ".join(corpus)
    notes = [
        f"Base `{base_file}` ({base.get_vocab_size()} tokens) + {len(added)} tokens learned from "
        f"{sum(map(len, training))} characters of {corpus_name}"
        + (f" ({', '.join(langs)})" if langs else "")
        + (f", tokens of the {script} script only" if script else "")
        + f"; vocabulary now {extended.get_vocab_size()}, "
        "every base id unchanged. Measured on held-out documents "
        f"(id hash < {heldout_fraction}), never seen in training.",
        "",
        "Examples of added tokens (those that decode to whole characters): "
        + ", ".join(f"`{text}`" for text in readable(extended, added)[:30]),
    ]
    write_report(
        out_dir,
        "Vocabulary extension report",
        results,
        notes,
        {"base": base_file, "added": len(added), "added_tokens": added},
    )
    return results


def comparison(results: dict[str, dict]) -> str:
    """One line per language: chars/token and tokens/word, base -> extended."""
    before, after = results["base"], results["extended"]
    return "\n".join(
        f"{lang}\tchars/token {before[lang]['chars_per_token']} -> {after[lang]['chars_per_token']}\t"
        f"tokens/word {before[lang]['tokens_per_word']} -> {after[lang]['tokens_per_word']}"
        for lang in sorted(before)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tokenizer.extend",
        description="Add N tokens learned from a new corpus to a byte-level BPE tokenizer.json, keeping every "
        "existing id; writes the extended tokenizer and report.{json,md} (before/after per language).",
        epilog="Example: python -m tokenizer.extend --base out/tokenizer --corpus out/docs --langs zh --script Han "
        "--add 2000 --out out/tokenizer/extended",
    )
    parser.add_argument("--base", required=True, help="tokenizer.json, or the folder holding it")
    parser.add_argument("--corpus", required=True, nargs="+", help="Parquet documents or .txt files (folders, globs)")
    parser.add_argument("--add", required=True, type=int, help="number of tokens to add")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--langs", nargs="+", help="learn only from documents in these languages (`lang` column)")
    parser.add_argument(
        "--script",
        help="add only tokens made of this Unicode script's characters, e.g. Han "
        "(Chinese), Cyrillic, Hangul (default: any token)",
    )
    parser.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.05,
        help="documents (by hash of id) kept out for the report (default: %(default)s)",
    )
    parser.add_argument(
        "--report-max-chars",
        type=int,
        default=2_000_000,
        help="held-out characters measured per language (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.add <= 0:
        parser.error("--add must be > 0")
    try:
        results = extend_files(
            tokenizer_path(args.base),
            args.corpus,
            args.add,
            args.out,
            args.langs,
            args.heldout_fraction,
            args.report_max_chars,
            args.script,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"tokenizer.extend: {error}", file=sys.stderr)
        return 2
    print(comparison(results))
    print(f"extended tokenizer: {args.out}/tokenizer.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
