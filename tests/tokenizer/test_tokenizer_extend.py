import json
import os
from collections import Counter

import pytest
import regex
from tokenizers import Tokenizer

from tests.tokenizer.corpus_helpers import small_config, write_docs
from tokenizer.extend import continue_bpe, extend, main
from tokenizer.report import measure
from tokenizer.train import train

ZH = "《静夜思》作者：李白 床前明月光，疑是地上霜。举头望明月，低头思故乡。"


@pytest.fixture(scope="module")
def english_base(tmp_path_factory):
    """A tokenizer trained on English only (extended with Chinese as configured), and the
    mixed corpus to adapt it with."""
    root = str(tmp_path_factory.mktemp("extend"))
    docs = write_docs(os.path.join(root, "docs"))
    config = small_config(
        root,
        **{
            "tokenizer.sample.weights": {"en": 1.0},
            "tokenizer.extension": {"add": 100, "langs": ["zh"], "script": "Han"},
        },
    )
    results = train(config, show_progress=False)
    return os.path.join(config.tokenizer.dir, "tokenizer.json"), docs, results


def test_training_extends_as_configured(english_base):
    base_file, _, results = english_base
    extended_dir = os.path.join(os.path.dirname(base_file), "extended")
    base, extended = Tokenizer.from_file(base_file), Tokenizer.from_file(os.path.join(extended_dir, "tokenizer.json"))
    assert extended.get_vocab_size() == base.get_vocab_size() + 100
    assert all(extended.token_to_id(token) == index for token, index in base.get_vocab().items())
    with open(os.path.join(extended_dir, "report.json"), encoding="utf-8") as handle:
        assert json.load(handle)["results"] == results["extension"]
    before, after = results["extension"]["base"]["zh"], results["extension"]["extended"]["zh"]
    assert after["chars_per_token"] > before["chars_per_token"] and after["tokens_per_word"] < before["tokens_per_word"]


def test_extension_keeps_every_existing_id(english_base):
    base_file, _, _ = english_base
    base = Tokenizer.from_file(base_file)
    extended, added = extend(base, [ZH * 3, "明月光 明月 故乡 思故乡"] * 5, add=20)
    old, new = base.get_vocab(), extended.get_vocab()
    assert all(new[token] == index for token, index in old.items())
    assert len(added) == 20 and sorted(new[t] for t in added) == list(range(len(old), len(old) + 20))
    assert extended.decode(extended.encode(ZH).ids) == ZH
    assert len(extended.encode(ZH).ids) < len(base.encode(ZH).ids)


def test_cli_writes_extended_tokenizer_and_before_after_report(english_base, tmp_path):
    base_file, docs, _ = english_base
    out = str(tmp_path / "extended")
    assert (
        main(
            [
                "--base",
                os.path.dirname(base_file),
                "--corpus",
                docs,
                "--langs",
                "zh",
                "--add",
                "200",
                "--out",
                out,
                "--heldout-fraction",
                "0.1",
            ]
        )
        == 0
    )
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "report.md"):
        assert os.path.exists(os.path.join(out, name))
    with open(os.path.join(out, "report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["added"] == 200
    before, after = report["results"]["base"], report["results"]["extended"]
    assert after["zh"]["chars_per_token"] > 1.2 * before["zh"]["chars_per_token"]
    assert after["en"]["tokens"] <= before["en"]["tokens"]  # English is not made worse
    extended = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    base = Tokenizer.from_file(base_file)
    assert measure(extended, {"zh": [ZH]})["zh"]["tokens"] < measure(base, {"zh": [ZH]})["zh"]["tokens"]


def test_words_of_chinese_text_add_chinese_tokens(english_base):
    base_file, _, _ = english_base
    base = Tokenizer.from_file(base_file)
    mixed = [
        ZH + " see https://example.org/page?id=42 for the English notes",
        "明月光 明月 故乡 思故乡 sudo apt-get",
    ] * 5
    extended, added = extend(base, mixed, add=30, script="Han")
    texts = [extended.decode([extended.token_to_id(token)]) for token in added]
    whole = [text for text in texts if "\ufffd" not in text]  # others are parts of a character's bytes
    assert len(whole) >= 10 and all(regex.fullmatch(r"\p{Han}+", text) for text in whole), texts
    assert "明月" in whole


def test_continued_bpe_merges_the_most_frequent_pair_first():
    words = Counter({("a", "b", "c"): 5, ("a", "b"): 3, ("b", "c"): 1, ("x", "y"): 1})
    # (a, b) 8 times; then (ab, c) 5 times; (x, y) once: too rare to earn a token.
    assert continue_bpe(words, {"a", "b", "c", "x", "y"}, add=10) == [("a", "b"), ("ab", "c")]
    # "ab" known already (the base reaches it another way): (a, b) is left, (b, c) comes next
    assert continue_bpe(words, {"a", "b", "c", "x", "y", "ab"}, add=10) == [("b", "c"), ("a", "bc")]
    assert continue_bpe(words, {"a", "b", "c", "x", "y"}, add=1) == [("a", "b")]


def test_only_bpe_can_be_extended():
    from tokenizers import models

    with pytest.raises(ValueError, match="only BPE"):
        extend(Tokenizer(models.WordLevel({"a": 0}, unk_token="a")), ["a"], add=1)
