import json
import os

import pytest
from tokenizers import Tokenizer

from tests.tokenizer.corpus_helpers import small_config, write_docs
from tokenizer.train import main as train_main
from tokenizer.train import train

HARD_TEXT = (
    "Plain English, digits 1234567 and\ttabs.\r\n中文测试：你好，世界！ 繁體字 日本語のテキスト "
    "emoji 😀👍🏽 family 👩‍👩‍👧 flag 🇫🇷 combining é (e\u0301) zero-width\u200bspace \x00 null"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tok"))
    write_docs(os.path.join(root, "docs"))
    config = small_config(root, **{"tokenizer.sample.max_repeats": 10})  # enough for zh to reach its share
    results = train(config, show_progress=False)
    return config, results


def test_loads_in_transformers_and_round_trips_chinese_and_emoji(trained):
    transformers = pytest.importorskip("transformers")
    config, _ = trained
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(config.tokenizer.dir)
    assert type(transformers.AutoTokenizer.from_pretrained(config.tokenizer.dir)) is type(tokenizer)
    ids = tokenizer.encode(HARD_TEXT, add_special_tokens=False)
    assert tokenizer.decode(ids) == HARD_TEXT
    assert tokenizer.unk_token is None  # byte-level: nothing is unknown
    assert tokenizer.bos_token == "<|bos|>" and tokenizer.eos_token == "<|eos|>" and tokenizer.pad_token == "<|pad|>"
    for token in ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"):
        assert tokenizer.convert_tokens_to_ids(token) is not None and token in tokenizer.all_special_tokens
        assert tokenizer.tokenize(f"a{token}b").count(token) == 1  # never split
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好 🙂"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|bos|><|user|>你好 🙂<|end|><|assistant|>"


def test_vocabulary_size_digits_and_special_ids(trained):
    config, _ = trained
    tokenizer = Tokenizer.from_file(os.path.join(config.tokenizer.dir, "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 1024
    assert [tokenizer.token_to_id(t) for t in config.tokenizer.all_special_tokens] == list(range(7))
    assert len(tokenizer.encode("90210", add_special_tokens=False).ids) == 5  # digits split one by one


def test_report_per_language_on_heldout_text(trained):
    config, results = trained
    with open(os.path.join(config.tokenizer.dir, "report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["results"] == results
    figures = results["tokenizer"]
    assert {"en", "zh"} <= set(figures)
    assert figures["en"]["chars_per_token"] > 2 and figures["zh"]["chars_per_token"] > 0.5
    assert all(f["tokens_per_word"] > 0 for f in figures.values())
    sample = report["sample"]
    assert sample["en"]["requested_share"] == pytest.approx(0.6)
    assert abs(sample["en"]["achieved_share"] - 0.6) < 0.01  # balanced as configured
    assert os.path.exists(os.path.join(config.tokenizer.dir, "report.md"))


@pytest.mark.parametrize("model", ["unigram", "wordpiece"])
def test_other_models_round_trip(tmp_path, model):
    write_docs(str(tmp_path / "docs"))
    config = small_config(
        str(tmp_path), **{"tokenizer.model": model, "tokenizer.vocab_size": 600, "tokenizer.sample.max_chars": 30_000}
    )
    train(config, show_progress=False)
    tokenizer = Tokenizer.from_file(os.path.join(config.tokenizer.dir, "tokenizer.json"))
    assert tokenizer.get_vocab_size() <= 600
    encoding = tokenizer.encode(HARD_TEXT, add_special_tokens=False)
    assert tokenizer.decode(encoding.ids) == HARD_TEXT and "<|unk|>" not in encoding.tokens


def test_cli_reports_config_errors(in_repo_root, capsys):
    assert train_main(["--config", "configs/shards.yaml", "--set", "tokenizer.model=spm"]) == 2
    assert "tokenizer.model" in capsys.readouterr().err
