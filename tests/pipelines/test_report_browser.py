"""report.html as a reader's browser shows it: the sample run's report (with the other parts of a
run beside it) in headless Chromium with the network off (pipelines/report/browser.py)."""

import importlib.util
import os

import pytest

from pipelines.report import browser
from pipelines.report.page import write_html_report
from pipelines.report.sources import funnel
from tests.pipelines import report_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        browser.find_chromium() is None,
        reason="no chromium on the PATH: `apt-get install chromium` (.ci/run installs it)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="playwright missing: pip install -e '.[test]'"
    ),
]


def test_the_sample_runs_report_renders_in_headless_chromium(sample_run, tmp_path):
    _, stats = sample_run
    root = tmp_path / "out"
    report_data.write_run(str(root), stats=stats)
    screenshot = tmp_path / "report.png"
    check = browser.open_report(write_html_report(str(root)), screenshot=str(screenshot))
    assert check.console_errors == []
    assert check.failed_requests == []
    for heading in report_data.HEADINGS:
        assert heading in check.headings, heading
    labels = [chart["label"] for chart in check.charts]
    assert {
        "funnel",
        "removals",
        "sources",
        "languages",
        "histogram-quality_score",
        "dedup-clusters",
        "pii",
        "stage-times",
        "phase-times",
        "shard-shares",
        "tokenizer",
        "training-model",
        "training-finetune-sft",
        "training-finetune",
    } <= set(labels)
    for chart in check.charts:
        assert chart["visible"] and chart["width"] > 200 and chart["height"] > 50, chart
        assert chart["texts"] > 3, chart  # axes and labels were drawn
        assert chart["width"] <= browser.WIDTH, chart
    assert check.scroll_width <= browser.WIDTH  # no table or chart overflows the page at 1280 px
    assert screenshot.stat().st_size > 50_000
    # The funnel chart's labels are the run's numbers.
    with open(root / "report.html", encoding="utf-8") as handle:
        page = handle.read()
    funnel_svg = page[page.index('aria-label="funnel"') : page.index("</svg>", page.index('aria-label="funnel"'))]
    for step in funnel(stats):
        assert f"{step['documents']:,} (" in funnel_svg, step
    assert os.path.getsize(root / "report.html") < 3_000_000
