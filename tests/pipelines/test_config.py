import os
import subprocess
import sys

import pytest

from pipelines.config import load_config, parse_config
from stages.base import ConfigError

SOURCES = {"web": {"paths": ["data/sample/web"]}, "wiki": {"paths": "data/sample/wiki"}}


def config_with(*stages, **sections):
    return parse_config({"sources": SOURCES, "stages": list(stages), **sections})


def problems(raw) -> str:
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    return str(error.value)


def test_default_config_parses(in_repo_root):
    config = load_config("configs/corpus.yaml")
    assert set(config.sources) == {"web", "wiki", "zh", "multilingual"}
    assert config.sources["multilingual"].text_field == "content"
    assert [s.name for s in config.stages][0] == "langid"


def test_overrides_use_dotted_keys(in_repo_root):
    config = load_config("configs/corpus.yaml", {"output.dir": "/tmp/x", "execution.batch_size": 7})
    assert config.output.dir == "/tmp/x"
    assert config.execution.batch_size == 7


def test_defaults_of_the_sections():
    config = config_with()
    assert config.sources["wiki"].paths == ["data/sample/wiki"]  # one string is one path
    assert (config.ingest.max_doc_bytes, config.ingest.max_batch_bytes) == (10_000_000, 64 << 20)
    execution = config.execution
    assert (execution.batch_size, execution.num_cpus, execution.workers) == (256, None, None)
    assert (execution.max_retries, execution.max_restarts, execution.max_task_retries) == (3, 3, 3)
    assert execution.object_store_memory is None
    assert config_with(execution=None, output=None).output.rejects_text  # empty sections: the defaults


def test_numbers_written_as_strings_are_converted():
    config = parse_config({"sources": {"web": {"paths": ["x"], "priority": "1"}}, "execution": {"batch_size": "512"}})
    assert config.sources["web"].priority == 1 and config.execution.batch_size == 512


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"sources": {}}, "sources: Dictionary should have at least 1 item"),
        ({"sources": {"web": {}}}, "sources.web.paths: required"),
        (
            {"sources": {"web": {"paths": "x", "fromat": "jsonl"}}},
            "sources.web.fromat: unknown key; valid keys: format, id_field, paths, priority, text_field, url_field",
        ),
        ({"sources": {"web": {"paths": "x", "format": "csv"}}}, "sources.web.format: Input should be 'auto', 'jsonl'"),
        (
            {"sources": {"web": {"paths": "x", "priority": "high"}}},
            "sources.web.priority: Input should be a valid integer",
        ),
        ({"sources": SOURCES, "stages": [{"name": "nope"}]}, r"stages[0].name: unknown stage 'nope'; available: "),
        ({"sources": SOURCES, "stages": ["langid"]}, "stages[0]: expected a mapping, got 'langid'"),
        (
            {"sources": SOURCES, "stages": [{"name": "exact_dedup", "params": {"x": 1}}]},
            "stages[0] (exact_dedup).params.x: unknown key; valid keys: normalize_digits",
        ),
        (
            {
                "sources": SOURCES,
                "stages": [{"name": "tests.fault_stages:KillOnce", "params": {"id": "a", "marker": "m", "x": 1}}],
            },
            "stages[0] (tests.fault_stages:KillOnce).params: got an unexpected keyword argument 'x'; valid keys: id, marker",
        ),
        ({"sources": SOURCES, "output": {"dri": "x"}}, "output.dri: unknown key; valid keys: dir, rejects_text"),
        ({"sources": SOURCES, "execution": {"max_restarts": -2}}, "execution.max_restarts: Input should be greater"),
        ({"sources": SOURCES, "ingest": {"max_doc_bytes": 0}}, "ingest.max_doc_bytes: Input should be greater than 0"),
        (
            {"sources": SOURCES, "sed": 1},
            "sed: unknown key; valid keys: execution, ingest, output, seed, sources, stages",
        ),
    ],
)
def test_bad_configs_name_the_problem(raw, message):
    assert message in problems(raw)


def test_languages_written_as_a_string_is_an_error():
    # `languages: en` once became ['e', 'n'] and removed every English document.
    message = problems({"sources": SOURCES, "stages": [{"name": "langid", "params": {"languages": "en"}}]})
    assert message == "stages[0] (langid).params.languages: expected a list, got the string 'en': write [en]"


def test_stage_parameters_are_typed():
    message = problems({"sources": SOURCES, "stages": [{"name": "langid", "params": {"threshold": "high"}}]})
    assert message == (
        "stages[0] (langid).params.threshold: Input should be a valid number, unable to parse string as a number"
    )
    message = problems({"sources": SOURCES, "stages": [{"name": "langid", "params": {"treshold": 1}}]})
    assert (
        "stages[0] (langid).params.treshold: unknown key; valid keys: languages, lingua_low_accuracy, max_chars, "
        "min_lang_mix, model, per_source, threshold" in message
    )
    assert config_with({"name": "langid", "params": {"threshold": "0.5"}}).stages[0].name == "langid"


def test_per_source_rules_are_checked_against_keys_and_sources():
    stage = {
        "name": "quality_classifier",
        "params": {"per_source": {"wiki": {"threshhold": 0.0}, "wbe": {"threshold": 1}}},
    }
    message = problems({"sources": SOURCES, "stages": [{"name": "exact_dedup"}, stage]})
    assert (
        "stages[1] (quality_classifier).params.per_source.wiki.threshhold: unknown key; "
        "valid keys: threshold, top_fraction"
    ) in message
    assert "stages[1] (quality_classifier).params.per_source.wbe: no such source; sources: web, wiki" in message
    message = problems(
        {"sources": SOURCES, "stages": [{"name": "langid", "params": {"per_source": {"wiki": {"threshold": "x"}}}}]}
    )
    assert "stages[0] (langid).params.per_source.wiki.threshold: Input should be a valid number" in message


def test_per_lang_rules_are_checked():
    stage = {
        "name": "gopher_quality",
        "params": {"per_lang": {"zh": {"min_avg_word_lenght": 1.0, "max_doc_words": -1}}},
    }
    message = problems({"sources": SOURCES, "stages": [stage]})
    assert "stages[0] (gopher_quality).params.per_lang.zh.min_avg_word_lenght: unknown key; valid keys: " in message
    assert (
        "stages[0] (gopher_quality).params.per_lang.zh.max_doc_words: Input should be greater than or equal to 0"
        in message
    )


def test_every_problem_is_reported_at_once():
    message = problems(
        {
            "sources": {"web": {"paths": "x", "format": "csv"}},
            "stages": [
                {"name": "langid", "params": {"languages": "en", "per_source": {"wiki": {}}}},
                {"name": "minhash_dedup", "params": {"bands": 50}},
            ],
            "execution": {"batch_size": 0},
        }
    )
    assert message.startswith("5 problems:\n  ")
    for path in (
        "sources.web.format",
        "execution.batch_size",
        "stages[0] (langid).params.languages",
        "stages[0] (langid).params.per_source.wiki: no such source; sources: web",
        "stages[1] (minhash_dedup).params: bands x rows = 250 exceeds num_perm 100",
    ):
        assert path in message


def test_unreadable_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  web: {paths: [x]\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(str(bad))
    bad.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="empty.yaml holds nothing; expected a mapping"):
        load_config(str(bad.rename(tmp_path / "empty.yaml")))
    with pytest.raises(ConfigError, match="cannot read .*missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"))


def test_corpus_reports_config_errors_with_status_2(tmp_path, capsys):
    from pipelines.corpus import main

    config = tmp_path / "corpus.yaml"
    config.write_text("sources: {web: {paths: x}}\nstages: [{name: langid, params: {threshold: high}}]\n")
    assert main(["--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert (
        "corpus: config error: stages[0] (langid).params.threshold: Input should be a valid number"
        in capsys.readouterr().err
    )
    assert not os.path.exists(tmp_path / "out")


DIGEST_CONFIG = {
    "seed": 3,
    "sources": {"web": {"paths": "data/sample/web", "priority": 2}},
    "stages": [{"name": "minhash_dedup", "params": {"bands": 10, "rows": 5}}],
}


def test_digest_identifies_what_the_run_writes():
    digest = parse_config(DIGEST_CONFIG).digest
    execution_only = {"dir": "elsewhere", "num_cpus": 2, "workers": 1, "max_retries": 0, "object_store_memory": 1 << 30}
    assert (
        parse_config(
            {
                **DIGEST_CONFIG,
                "output": {"dir": "elsewhere"},
                "execution": {k: v for k, v in execution_only.items() if k != "dir"},
            }
        ).digest
        == digest
    )
    stage = {"name": "minhash_dedup", "params": {"bands": 10, "rows": 6}}
    for changed in (
        {"stages": [stage]},
        {"seed": 4},
        {"execution": {"batch_size": 64}},
        {"output": {"rejects_text": False}},
        {"ingest": {"max_doc_bytes": 1000}},
        {"sources": {"web": {"paths": "data/sample/web", "priority": 1}}},
    ):
        assert parse_config({**DIGEST_CONFIG, **changed}).digest != digest, changed


def test_digest_is_the_same_in_another_process():
    code = f"from pipelines.config import parse_config; print(parse_config({DIGEST_CONFIG!r}).digest)"
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert other.stdout.strip() == parse_config(DIGEST_CONFIG).digest


def test_each_stage_is_built_once_on_the_driver(in_repo_root, monkeypatch):
    import pipelines.config
    from pipelines.corpus import plan_phases

    built = []
    build = pipelines.config.build_stage
    monkeypatch.setattr(pipelines.config, "build_stage", lambda *args: built.append(build(*args)) or built[-1])
    config = load_config("configs/corpus.yaml")
    phases = plan_phases(config)
    assert len(built) == len(config.stages) == len(config.built_stages)
    in_phases = [stage for phase in phases for stage in (phase.row_stages or [phase.stage]) if stage is not None]
    assert [id(stage) for stage in in_phases] == [id(stage) for stage in built]
    assert [stage.name for stage in in_phases] == [spec.name for spec in config.stages]
