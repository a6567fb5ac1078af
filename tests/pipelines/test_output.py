"""The sink's per-batch summary: counts, bytes and stage signals."""

import pyarrow as pa

from pipelines.output import summarise


def test_signals_are_summed_and_scores_binned_per_group():
    rows = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "source": ["web"] * 4,
            "text": ["x", "yy", "z", "w"],
            "drop_stage": [None, None, "quality_classifier", None],
            "drop_reason": [None, None, "low_quality_score", None],
            "pii_email_address": pa.array([1, None, 2, 3], pa.int32()),
            "quality_score": pa.array([0.05, None, 0.95, 1.0], pa.float32()),
        }
    )
    groups = {
        row["reason"]: row for row in summarise(rows, "kept", ("pii_email_address",), ("quality_score",)).to_pylist()
    }
    kept, removed = dict(groups[None]["signals"]), dict(groups["low_quality_score"]["signals"])
    assert groups[None]["documents"] == 3 and groups[None]["bytes"] == 4
    assert kept["pii_email_address"] == 4 and removed["pii_email_address"] == 2
    # 0.05 -> bin 0, 1.0 -> the last bin, the unscored document in none
    assert [kept[f"quality_score#{b}"] for b in range(10)] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert removed["quality_score#9"] == 1


def test_no_signals_without_signal_columns():
    rows = pa.table(
        {"id": ["a"], "source": ["web"], "text": ["x"], "drop_stage": [None], "drop_reason": [None]},
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("source", pa.string()),
                ("text", pa.string()),
                ("drop_stage", pa.string()),
                ("drop_reason", pa.string()),
            ]
        ),
    )
    assert summarise(rows, "kept", ("pii_email_address",), ("quality_score",))["signals"].to_pylist() == [[]]
