"""report.html from an output folder holding every part (tests/pipelines/report_data.py), the
command recorder, and the corpus command's console helpers."""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

from bench.scale import PHASE_LINE, STEP_LINE
from pipelines.console import PhaseProgress
from pipelines.report import __main__ as report_cli
from pipelines.report import record
from pipelines.report.page import write_html_report
from pipelines.report.sources import funnel, read_outputs
from tests.helpers import ROOT
from tests.pipelines import report_data


class Page(HTMLParser):
    """The parts of a page the tests read: headings, tables (rows of cell texts), ids, svgs, links."""

    def __init__(self, text: str):
        super().__init__()
        self.headings, self.tables, self.ids, self.svgs, self.links = [], [], [], 0, []
        self._heading = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        self.links += [value for name, value in attrs.items() if name in ("src", "href", "xlink:href")]
        if tag == "svg":
            self.svgs += 1
        elif tag in ("h2", "h3"):
            self._heading = ""
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell += data

    def table(self, header: str) -> list[list[str]]:
        return next(table for table in self.tables if header in table[0])


def build(root) -> tuple[str, Page]:
    path = write_html_report(str(root))
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return text, Page(text)


def test_the_funnel_follows_the_stages_down_to_the_kept_documents_and_bytes():
    steps = funnel(report_data.STATS)
    assert [(s["step"], s["removed"], s["documents"]) for s in steps] == [
        ("input", 0, 115),
        ("ingest", 3, 112),
        ("langid", 12, 100),
        ("gopher_quality", 22, 78),  # 20 removed + 2 quarantined as stage_error:gopher_quality
        ("exact_dedup", 8, 70),
        ("pii", 0, 70),
    ]
    assert steps[-1]["documents"] == report_data.STATS["kept_documents"]
    assert [s["bytes"] for s in steps] == [251_000, 251_000, 221_000, 216_000, 200_000, 200_000]
    assert steps[-1]["bytes"] == report_data.STATS["bytes_out"]


def test_stats_without_bytes_per_stage_give_a_documents_only_funnel():
    stats = {k: v for k, v in report_data.STATS.items() if k not in ("removed_bytes", "quarantined_bytes")}
    assert {s["bytes"] for s in funnel(stats)[1:]} == {None}


def test_every_part_gets_its_section_charts_and_the_figures_of_its_files(tmp_path):
    report_data.write_run(tmp_path)
    text, page = build(tmp_path)
    for heading in (
        *report_data.HEADINGS,
        "Mixture",
        "Splits",
        "Pre-training (model)",
        "Fine-tuning: SFT (finetune/sft)",
        "Fine-tuning: DPO (finetune)",
        "Commands and wall times",
        "Versions",
    ):
        assert heading in page.headings, heading
    # funnel, removals, sources, languages, histogram, dedup clusters, PII, quarantine, stage times,
    # phase times, mixture, tokenizer, three training runs
    assert page.svgs == 15
    funnel_rows = page.table("documents left")[1:]
    assert [(row[0], int(row[2].replace(",", ""))) for row in funnel_rows] == [
        (s["step"], s["documents"]) for s in funnel(report_data.STATS)
    ]
    sources = {row[0]: row[1:4] for row in page.table("kept %")[1:]}
    assert sources == {"web": ["95", "55", "57.9 %"], "wiki": ["20", "15", "75.0 %"]}
    mixture = {row[0]: row[4:6] for row in page.table("achieved")[1:]}
    assert mixture == {"web": ["75.0 %", "1.99"], "wiki": ["25.0 %", "0.54"]}
    tokenizer = {(row[0].split()[0], row[1]): row[5] for row in page.table("characters/token")[1:]}
    assert tokenizer == {
        ("trained", "en"): "3.4505",
        ("trained", "zh"): "1.9133",
        ("extended", "en"): "3.4543",
        ("extended", "zh"): "1.9577",
    }
    assert "115 documents in, 70 kept (60.9 %), 40 removed, 5 quarantined" in text
    assert "Too short &lt;b&gt;not bold&lt;/b&gt;." in text  # document text is escaped, never markup
    assert "drop_reason: gopher_short_doc" in text
    assert "Out of date" not in text


def test_where_the_time_went_shows_each_stage_and_each_phase(tmp_path):
    report_data.write_run(tmp_path)
    text, page = build(tmp_path)
    assert {"Where the time went", "Per stage", "Per phase"} <= set(page.headings)
    assert 'aria-label="stage-times"' in text and 'aria-label="phase-times"' in text
    stages = page.table("MB per CPU-s")
    assert stages[0] == [
        "stage",
        "kind",
        "documents",
        "MB",
        "CPU s",
        "wall s",
        "documents/s",
        "MB per CPU-s",
        "% of CPU",
    ]
    assert stages[1:] == [
        ["ingest", "row", "115", "0.25", "1.20", "1.50", "76.7", "0.209", "12.0 %"],
        ["langid", "row", "112", "0.25", "3.00", "3.40", "32.9", "0.084", "30.0 %"],
        ["gopher_quality", "row", "100", "0.22", "0.80", "0.90", "111.1", "0.276", "8.0 %"],
        ["exact_dedup", "global", "78", "0.22", "–", "2.00", "39.0", "–", "–"],  # no CPU time for a global stage
        ["pii", "row", "70", "0.20", "5.00", "5.50", "12.7", "0.040", "50.0 %"],
    ]
    assert "Tune the stage with the most CPU-seconds first." in text
    assert [row[0] for row in page.table("per second")[1:]] == [t["phase"] for t in report_data.STATS["timing"]]


def test_stats_without_stage_timing_show_the_phases_only(tmp_path):
    """A stats.json written before stage timing was recorded."""
    stats = {k: v for k, v in report_data.STATS.items() if k != "stage_timing"}
    report_data.write_json(str(tmp_path / "stats.json"), stats)
    text, page = build(tmp_path)
    assert "Per phase" in page.headings and "Per stage" not in page.headings
    assert 'aria-label="stage-times"' not in text


def test_the_page_is_self_contained_with_unique_ids(tmp_path):
    report_data.write_run(tmp_path)
    text, page = build(tmp_path)
    assert all(link.startswith("#") for link in page.links), [link for link in page.links if not link.startswith("#")]
    assert not re.search(r"<script|<link|@import|url\((?!#)", text)
    assert len(page.ids) == len(set(page.ids))  # matplotlib numbers ids per figure: prefixed per chart


def test_commands_wall_times_and_versions_come_from_the_recorded_runs(tmp_path):
    report_data.write_run(tmp_path)
    _, page = build(tmp_path)
    commands = {row[0]: row[1:] for row in page.table("command")[1:]}
    assert commands["corpus"][:2] == ["python -m pipelines.corpus --config configs/corpus.yaml --out out", "91.4"]
    assert commands["corpus"][3] == "ok"
    assert commands["pretrain"][3] == "failed (exit 1)"
    assert commands["shards"][0].startswith("not recorded") and commands["shards"][1] == "28.6"
    assert commands["sft"][0].startswith("not recorded") and commands["sft"][1] == "–"  # its records carry no time
    assert page.table("package")[1:] == [["ray", "2.60.0"]]


def test_training_runs_keep_the_last_record_of_each_step(tmp_path):
    report_data.write_run(tmp_path)
    runs = {run.name: run for run in read_outputs(str(tmp_path)).trainings}
    assert [(r["step"], r["loss"]) for r in runs["pretrain"].train] == [(1, 5.5), (2, 5.0), (3, 4.4), (4, 3.9)]
    assert [r["step"] for r in runs["pretrain"].eval] == [2, 4]
    assert (runs["sft"].path, runs["dpo"].path) == ("finetune/sft", "finetune")
    assert runs["dpo"].eval == []  # its empty final evaluation ({"step": 3, "time": ...}) is no record
    assert runs["pretrain"].seconds == 4.0  # first record at time 1, last (the final evaluation) at time 5


def test_a_corpus_rerun_after_the_shards_marks_them_out_of_date(tmp_path):
    report_data.write_run(tmp_path)
    os.utime(tmp_path / "stats.json", (2_000_000, 2_000_000))
    text, _ = build(tmp_path)
    assert "Out of date: shards/manifest.json predates stats.json: it was built from an earlier corpus run" in text


def test_a_corpus_only_folder_says_what_is_not_there_yet(tmp_path):
    report_data.write_json(str(tmp_path / "stats.json"), report_data.STATS)
    text, page = build(tmp_path)
    assert "Shards" not in page.headings and "Training and fine-tuning" not in page.headings
    assert "Not in this report yet: shards (make corpus), the tokenizer (make corpus), training (make train)" in text


def test_report_command_rebuilds_the_page_and_refuses_a_missing_folder(tmp_path, capsys):
    assert report_cli.main(["--out", str(tmp_path / "missing")]) == 2
    report_data.write_run(tmp_path)
    assert report_cli.main(["--out", str(tmp_path)]) == 0
    assert os.path.getsize(tmp_path / "report.html") > 50_000
    assert f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out


def test_record_runs_the_command_and_appends_what_ran(tmp_path):
    code = record.main(["--out", str(tmp_path), "shards", "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert code == 3
    with open(tmp_path / "logs" / "runs.jsonl") as handle:
        (entry,) = [json.loads(line) for line in handle]
    assert entry["part"] == "shards" and entry["returncode"] == 3
    assert entry["command"].endswith("-c 'raise SystemExit(3)'")
    assert entry["versions"]["ray"] and entry["seconds"] >= 0


def test_a_phase_line_reads_as_the_benchmarks_parse_it(capsys):
    with PhaseProgress("phase 1 (exact_dedup)", total=10) as progress:
        progress.update(6, 3_000_000)
        progress.update(4, 1_000_000)
    with PhaseProgress("phase 1 (exact_dedup)", unit="marks found") as progress:
        progress.update(7)
    documents, marks = capsys.readouterr().out.splitlines()
    assert PHASE_LINE.search(documents).group(3) == "10" and re.search(r"documents/s, [\d.]+ MB/s\)$", documents)
    assert STEP_LINE.search(marks).group(3) == "7 marks found"


def test_quiet_ray_keeps_rays_output_off_the_console(tmp_path):
    """In a process of its own: it redirects the process's stderr."""
    script = (
        "import logging, os, sys\n"
        "from pipelines.console import quiet_ray\n"
        f"quiet_ray({str(tmp_path)!r})\n"
        "logging.getLogger('ray.data').warning('ray data status')\n"
        "logging.getLogger('ray').info('Started a local Ray instance.')\n"
        "logging.getLogger('ray').warning('ray warning')\n"
        "os.write(2, b'C++ core notice\\n')\n"
        "print('ours', file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "ours\n" and result.stdout == ""
    assert "ray data status" in (tmp_path / "ray-data.log").read_text()
    assert "ray warning" in (tmp_path / "ray.log").read_text()
    assert "C++ core notice" in (tmp_path / "stderr.log").read_text()
