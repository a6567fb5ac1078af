import pyarrow as pa
import pytest

from stages import build_stage
from stages.base import Filter, PerLanguage, make_params
from stages.gopher_quality import GopherQualityParams
from tests.helpers import batch, reasons


class LengthFilter(Filter):
    name = "length"
    writes = {"n_chars": pa.int32(), "text": pa.string()}

    def score(self, table):
        texts = table["text"].to_pylist()
        return {"n_chars": [len(t) for t in texts], "text": [t.upper() for t in texts]}

    def decide(self, table, signals):
        return ["too_short" if n < 5 else None for n in signals["n_chars"]]


def test_filter_scores_only_alive_rows_and_keeps_earlier_drops():
    table = batch(["hello world", "hi", "dropped earlier"], dropped={2: ("langid", "low_language_score")})
    out = LengthFilter().process(table)
    assert reasons(out) == [(None, None), ("length", "too_short"), ("langid", "low_language_score")]
    # Signals for rows the stage never saw are null; rewritten columns keep their old value.
    assert out["n_chars"].to_pylist() == [11, 2, None]
    assert out["text"].to_pylist() == ["HELLO WORLD", "HI", "dropped earlier"]


def test_filter_on_batch_with_every_row_dropped_keeps_schema():
    table = batch(["x"], dropped={0: ("ingest", "bad_json")})
    out = LengthFilter().process(table)
    assert out.schema.field("n_chars").type == pa.int32()
    assert reasons(out) == [("ingest", "bad_json")]


def test_per_language_overrides_and_typo_errors():
    params = PerLanguage(GopherQualityParams(), {"zh": {"min_avg_word_length": 1.0}})
    assert params["zh"].min_avg_word_length == 1.0
    assert params["en"].min_avg_word_length == 3.0
    with pytest.raises(ValueError, match="min_avg_word_lenght"):
        PerLanguage(GopherQualityParams(), {"zh": {"min_avg_word_lenght": 1.0}})
    with pytest.raises(ValueError, match="valid keys"):
        make_params(GopherQualityParams, {"nope": 1}, "gopher_quality")


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown stage 'gopher'.*gopher_quality"):
        build_stage("gopher")
