import pytest

from pipelines.config import load_config, parse_config

SOURCES = {"web": {"paths": ["data/sample/web"]}}


def test_default_config_parses(in_repo_root):
    config = load_config("configs/corpus.yaml")
    assert set(config.sources) == {"web", "wiki", "zh", "multilingual"}
    assert config.sources["multilingual"].text_field == "content"
    assert [s.name for s in config.stages][0] == "langid"


def test_overrides_use_dotted_keys(in_repo_root):
    config = load_config("configs/corpus.yaml", {"output.dir": "/tmp/x", "execution.batch_size": 7})
    assert config.output.dir == "/tmp/x"
    assert config.execution.batch_size == 7
    assert config.digest != load_config("configs/corpus.yaml").digest


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"sources": {}}, "`sources` is empty"),
        ({"sources": {"web": {}}}, "sources.web: `paths` is required"),
        ({"sources": {"web": {"paths": "x", "fromat": "jsonl"}}}, r"unknown key\(s\) \['fromat'\]"),
        ({"sources": {"web": {"paths": "x", "format": "csv"}}}, "'csv' is not one of"),
        ({"sources": SOURCES, "stages": [{"name": "nope"}]}, "unknown stage 'nope'"),
        ({"sources": SOURCES, "stages": [{"name": "langid", "params": {"treshold": 1}}]}, "treshold"),
        ({"sources": SOURCES, "stages": ["langid"]}, r"stages\[0\]: expected a mapping"),
        ({"sources": SOURCES, "output": {"dri": "x"}}, r"output: unknown key"),
    ],
)
def test_bad_configs_name_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_config(raw)
