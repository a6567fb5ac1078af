import dataclasses

import pytest

from stages.base import ConfigError
from tokenizer.config import load_config, parse_config, parse_set, read_yaml, set_dotted


def problems(raw) -> str:
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    return str(error.value)


def test_shipped_config_and_defaults(in_repo_root):
    config = load_config("configs/shards.yaml")
    assert config.tokenizer.vocab_size == 8192 and config.tokenizer.sample.weights == {"en": 0.6, "zh": 0.4}
    assert parse_config(None) == parse_config({"tokenizer": None, "shards": {}})  # empty sections: the defaults
    assert dataclasses.replace(config, seed=1).seed == 1  # still dataclasses


def test_numbers_written_as_strings_are_converted():
    # vocab_size: "8192" used to fail with a TypeError traceback.
    config = parse_config({"tokenizer": {"vocab_size": "8192"}, "shards": {"max_epochs": "2"}})
    assert config.tokenizer.vocab_size == 8192 and config.shards.max_epochs == 2.0


def test_every_problem_at_once_with_its_key():
    message = problems(
        {
            "tokenizer": {
                "vocab_size": "lots",
                "model": "sentencepiece",
                "sample": {"wieghts": {"en": 1}, "max_chars": 0},
            },
            "shards": {"weights": {"web": -1}, "shard_tokens": 1 << 31},
            "num_cpus": 0,
        }
    )
    assert message.startswith("7 problems:")
    for line in (
        "tokenizer.vocab_size: Input should be a valid integer",
        "tokenizer.model: Input should be 'bpe', 'unigram' or 'wordpiece'",
        "tokenizer.sample.wieghts: unknown key; valid keys: by, max_chars, max_repeats, weights",
        "tokenizer.sample.max_chars: Input should be greater than 0",
        "shards.weights.web: Input should be greater than or equal to 0",
        "shards.shard_tokens: Input should be less than or equal to 1073741824",
        "num_cpus: Input should be greater than 0",
    ):
        assert line in message


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"tokenizer": {"special_tokens": {"bos": "<s>"}}}, "tokenizer: special_tokens: `eos` is required"),
        ({"tokenizer": {"vocab_size": 263}}, "tokenizer: vocab_size: at least 264 for bpe"),
        ({"tokenizer": {"chat_tokens": {"end": "<|eos|>"}}}, "special and chat tokens must be distinct"),
        ({"shards": {"weights": {}}}, "shards.weights: give at least one name a weight > 0"),
        ({"tokenizer": {"heldout_fraction": 1}}, "tokenizer.heldout_fraction: Input should be less than 1"),
        ({"shards": {"tokenizer": "extended"}}, "shards.tokenizer: extended needs tokenizer.extension.add > 0"),
    ],
)
def test_checks_across_keys(raw, message):
    assert message in problems(raw)


def test_yaml_files_and_overrides(tmp_path):
    path = tmp_path / "shards.yaml"
    path.write_text("tokenizer:\n  dir: x\nshards:\n")
    raw = read_yaml(str(path), {"tokenizer.sample.by": "source", "shards.max_epochs": 2})
    assert raw == {"tokenizer": {"dir": "x", "sample": {"by": "source"}}, "shards": {"max_epochs": 2}}
    with pytest.raises(ConfigError, match=r"tokenizer.dir: not a mapping, so tokenizer.dir.x cannot be set"):
        set_dotted(raw, "tokenizer.dir.x", 1)
    path.write_text("tokenizer: [unclosed\n")
    with pytest.raises(ConfigError, match="shards.yaml is not valid YAML"):
        read_yaml(str(path))
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="shards.yaml holds a list; expected a mapping of settings"):
        read_yaml(str(path))


def test_set_values_are_yaml():
    assert parse_set(["a.b=0.5", "c=[en, zh]", "d=null", "e=3e-3", "f=x=y"]) == {
        "a.b": 0.5,
        "c": ["en", "zh"],
        "d": None,
        "e": "3e-3",
        "f": "x=y",
    }
    assert parse_config({"shards": {"max_epochs": "3e-3"}}).shards.max_epochs == 0.003  # as a number where one belongs
    with pytest.raises(ConfigError, match="--set: expected KEY=VALUE, got 'shards.max_epochs'"):
        parse_set(["shards.max_epochs"])


def test_shards_reports_config_errors_with_status_2(tmp_path, capsys):
    from pipelines.shards import main

    assert main(["--config", "none.yaml", "--out", str(tmp_path), "--set", "tokenizer.vocab_size=lots"]) == 2
    assert capsys.readouterr().err.startswith("shards: config error: cannot read none.yaml")
    path = tmp_path / "shards.yaml"
    path.write_text("tokenizer: {vocab_size: lots}\n")
    assert main(["--config", str(path), "--out", str(tmp_path)]) == 2
    assert "shards: config error: tokenizer.vocab_size: Input should be a valid integer" in capsys.readouterr().err
