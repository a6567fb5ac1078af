"""report.html: one self-contained page (inline SVG charts and styles, no script, nothing fetched)
with a section for each part of the run that the output folder holds."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from pipelines.report import charts
from pipelines.report.record import package_versions
from pipelines.report.sources import BOOKKEEPING, RunOutputs, TrainingRun, funnel, read_outputs
from pipelines.workdir import filesystem, join, write_atomic

REPORT = "report.html"
# What `make` runs for each part; the provenance table shows the recorded command instead when there is one.
MAKE_TARGETS = {
    "corpus": "make corpus",
    "shards": "make corpus",
    "pretrain": "make train",
    "sft": "make finetune",
    "dpo": "make finetune",
}
TRAINING_TITLES = {"pretrain": "Pre-training", "sft": "Fine-tuning: SFT", "dpo": "Fine-tuning: DPO"}


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    items: list[dict] = field(default_factory=list)

    def heading(self, title: str, question: str = "") -> None:
        self.items.append({"kind": "h3", "title": title, "id": f"{self.id}-{slug(title)}", "question": question})

    def chart(self, svg: str, caption: str = "") -> None:
        self.items.append({"kind": "chart", "svg": Markup(svg), "caption": caption})

    def table(self, headers: list[str], rows: list[list[Any]], summary: str | None = None) -> None:
        """A table; collapsed under `summary` when one is given."""
        self.items.append({"kind": "table", "headers": headers, "rows": rows, "summary": summary})

    def note(self, text: str) -> None:
        self.items.append({"kind": "note", "text": text})

    def code(self, text: str, summary: str) -> None:
        self.items.append({"kind": "code", "text": text, "summary": summary})


def slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def metric_text(value: float) -> str:
    """A metric as people read it: 12,345 tokens/s, 0.000123 learning rate, 3.912 loss."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def corpus_section(stats: dict) -> Section:
    section = Section("corpus", "Corpus", "Where the input documents went, stage by stage (stats.json).")
    steps = funnel(stats)
    section.heading("Funnel", "How many documents and how much text survive each stage?")
    section.chart(charts.funnel(steps), "Green: left after the step; orange: removed by it (quarantine at ingest).")
    section.table(
        ["step", "removed", "documents left", "% of input", "text left (MiB)"],
        [
            [
                s["step"],
                s["removed"],
                s["documents"],
                percent(s["documents"], stats["input_documents"]),
                "–" if s["bytes"] is None else f"{s['bytes'] / 2**20:.2f}",
            ]
            for s in steps
        ],
        "numbers",
    )
    section.heading("Removals by stage and reason", "Which rule removed what?")
    if stats["removed"]:
        section.chart(charts.removals(stats["removed"], stats["stages"]))
    else:
        section.note("No document was removed.")
    section.heading("Kept share per source", "Which sources does the cleaning hit hardest?")
    section.chart(charts.source_shares(stats["per_source"]))
    section.table(
        ["source", "input", "kept", "kept %", "removed", "quarantined", "kept MiB"],
        [
            [
                name,
                s["input_documents"],
                s["kept_documents"],
                percent(s["kept_documents"], s["input_documents"]),
                s["removed_documents"],
                s["quarantined_documents"],
                f"{s['kept_bytes'] / 2**20:.2f}",
            ]
            for name, s in stats["per_source"].items()
        ],
        "numbers",
    )
    section.heading("Languages", "Which languages does the kept corpus hold?")
    if stats["kept_languages"]:
        section.chart(charts.counts(stats["kept_languages"], "languages", "kept documents"))
    for column, by_source in stats["histograms"].items():
        scored = {source: parts for source, parts in by_source.items() if any(map(sum, parts.values()))}
        unscored = sorted(set(by_source) - set(scored))
        section.heading(f"Distribution of {column}", "How are the scores spread, and where did the threshold cut?")
        if scored:
            section.chart(
                charts.histograms(scored, column),
                "Documents per score bin of width 0.1, kept and removed."
                + (f" No document of {', '.join(unscored)} was scored." if unscored else ""),
            )
    distributions = dedup_distributions(stats)
    if distributions:
        section.heading("Duplicate clusters", "How large are the groups of duplicates each dedup stage found?")
        section.chart(
            charts.size_distributions(distributions),
            "Clusters (or shared sentence spans) per size: documents in the cluster, survivor included.",
        )
        section.table(
            ["stage", "figures"],
            [
                [stage, ", ".join(f"{k}: {v}" for k, v in stats[stage].items() if not isinstance(v, dict))]
                for stage in distributions
            ],
        )
    pii = {
        name.removeprefix("pii_").upper(): value
        for name, value in stats["signal_sums"].items()
        if name.startswith("pii_")
    }
    if pii:
        section.heading("PII replacements", "What personal data was scrubbed?")
        section.chart(charts.counts(pii, "pii", "values replaced by a placeholder", charts.SERIES[4]))
    section.heading("Quarantine", "Which input was malformed, or made a stage fail?")
    if stats["quarantined"]:
        section.chart(charts.counts(stats["quarantined"], "quarantine", "documents quarantined", charts.QUARANTINED))
    else:
        section.note("No document was quarantined.")
    section.heading("Removed examples", "What does each removal reason look like? (the first documents by id)")
    section.items.append({"kind": "examples", "groups": examples(stats)})
    return section


def dedup_distributions(stats: dict) -> dict[str, tuple[str, dict[str, int]]]:
    """{stage: (what is counted, {size: count})} for each stage whose stats hold a size distribution."""
    found = {}
    for stage in stats["stages"]:
        for key, value in (stats.get(stage) or {}).items():
            if isinstance(value, dict) and value and all(str(size).isdigit() for size in value):
                found[stage] = (key, value)
    return found


def examples(stats: dict) -> list[dict]:
    """The removed (then quarantined) documents' examples per reason, stages in pipeline order."""
    order = {stage: position for position, stage in enumerate(stats["stages"])}
    groups = []
    for key, documents in stats["examples"].items():
        stage, _, reason = key.partition("/")
        counts = stats["quarantined"] if stage == "quarantine" else stats["removed"].get(stage, {})
        groups.append({"stage": stage, "reason": reason, "count": counts.get(reason), "documents": documents})
    return sorted(groups, key=lambda group: (order.get(group["stage"], len(order)), -(group["count"] or 0)))


def time_section(stats: dict) -> Section:
    section = Section(
        "time",
        "Where the time went",
        "The time each stage and each phase of the corpus run took (stats.json: stage_timing, timing).",
    )
    stages = stats.get("stage_timing")
    if stages:
        section.heading("Per stage", "Which stage is worth tuning first, and which would gain from more CPUs?")
        section.chart(charts.stage_times(stages))
        section.note(
            "Tune the stage with the most CPU-seconds first. A row stage's seconds are summed over the workers "
            "that ran it (documents/s is one worker's rate): CPU close to wall time means it computes all the "
            "time and goes faster with more CPUs (execution.workers, --num-cpus), wall time well above CPU means "
            "it waits (on reading, or on other work sharing its cores). A global stage shows its phase's elapsed "
            "time on the whole cluster, and no CPU time: Ray's per-task figures miss its shuffles' work. The "
            "figures cover every attempt of a resumed run."
        )
        cpu_total = sum(s["cpu_seconds"] or 0 for s in stages)
        section.table(
            ["stage", "kind", "documents", "MB", "CPU s", "wall s", "documents/s", "MB per CPU-s", "% of CPU"],
            [
                [
                    s["stage"],
                    s["kind"],
                    s["documents"],
                    f"{s['mb']:.2f}",
                    optional(s["cpu_seconds"], "{:.2f}"),
                    optional(s["wall_seconds"], "{:.2f}"),
                    optional(s["docs_per_s"], "{:,.1f}"),
                    optional(s["mb_per_cpu_second"], "{:.3f}"),
                    "–" if s["cpu_seconds"] is None else percent(s["cpu_seconds"], cpu_total),
                ]
                for s in stages
            ],
            "numbers",
        )
    if stats.get("timing"):
        section.heading("Per phase", "How long did each phase take? (the last attempt's phases of a resumed run)")
        section.chart(charts.phase_times(stats["timing"]))
        section.table(
            ["phase", "step", "count", "seconds", "per second", "MB/s"],
            [
                [
                    t["phase"],
                    t["what"],
                    t["count"],
                    f"{t['seconds']:.1f}",
                    f"{t['count'] / t['seconds']:.1f}" if t["seconds"] else "–",
                    f"{t['bytes'] / 1e6 / t['seconds']:.2f}" if t["seconds"] and t["bytes"] else "–",
                ]
                for t in stats["timing"]
            ],
            "numbers",
        )
    return section


def optional(value: float | None, form: str) -> str:
    return "–" if value is None else form.format(value)


def shards_section(manifest: dict) -> Section:
    section = Section("shards", "Shards", "The token shards' mixture and splits (shards/manifest.json).")
    section.heading(
        "Mixture", "Did each source get the share of training tokens it was given, and how often is it repeated?"
    )
    section.chart(charts.shard_shares(manifest["sources"]))
    section.table(
        ["source", "documents", "tokens available", "requested", "achieved", "epochs", "documents used"],
        [
            [
                name,
                s["documents"],
                s["tokens_available"],
                f"{100 * s['requested_share']:.1f} %",
                f"{100 * s['achieved_share']:.1f} %",
                f"{s['epochs']:.2f}",
                s["documents_used"],
            ]
            for name, s in manifest["sources"].items()
        ],
        "numbers",
    )
    section.heading("Splits")
    section.table(
        ["split", "documents", "tokens", "files"],
        [
            [split, s["documents"], s["tokens"], sum(f["split"] == split for f in manifest["files"])]
            for split, s in manifest["splits"].items()
        ],
    )
    if manifest.get("unweighted_sources"):
        section.note(f"Left out (no weight): {', '.join(manifest['unweighted_sources'])}.")
    return section


def tokenizer_section(report: dict, extension: dict | None) -> Section:
    section = Section(
        "tokenizer",
        "Tokenizer",
        "How compactly the tokenizer encodes each language, on held-out documents (tokenizer/report.json).",
    )
    series = {
        f"trained ({report.get('model', 'bpe')}, {report.get('vocab_size', '?')} tokens)": report["results"][
            "tokenizer"
        ]
    }
    if extension:
        series[f"extended (+{extension['added']} tokens)"] = extension["results"]["extended"]
    section.heading(
        "Characters per token and tokens per word",
        "Which languages does it split finely, and what did the vocabulary extension change?",
    )
    section.chart(charts.tokenizer_efficiency(series))
    section.table(
        ["tokenizer", "language", "documents", "characters", "tokens", "characters/token", "tokens/word"],
        [
            [name, lang, r["documents"], r["characters"], r["tokens"], r["chars_per_token"], r["tokens_per_word"]]
            for name, results in series.items()
            for lang, r in results.items()
        ],
        "numbers",
    )
    return section


def training_section(runs: list[TrainingRun]) -> Section:
    section = Section("training", "Training and fine-tuning", "The logged metrics of each run (metrics.jsonl).")
    for run in runs:
        section.heading(f"{TRAINING_TITLES[run.name]} ({run.path})", "Did the loss go down, and how fast did it train?")
        section.chart(charts.training_curves(run.train, run.eval, f"training-{slug(run.path)}"))
        first, last = run.train[0] if run.train else {}, run.train[-1] if run.train else {}
        rows = [
            [key, metric_text(first[key]), metric_text(last[key])]
            for key in first
            if key in last and key not in BOOKKEEPING and isinstance(first[key], float)
        ]
        final = run.eval[-1] if run.eval else {}
        rows += [[key, "", metric_text(value)] for key, value in final.items() if key not in BOOKKEEPING]
        section.table(
            ["metric", f"first (step {first.get('step', '–')})", f"last (step {last.get('step', '–')})"], rows
        )
    return section


def provenance_section(outputs: RunOutputs) -> Section:
    section = Section(
        "provenance",
        "Provenance",
        "What produced each part: the command, how long it ran, with which versions and configuration.",
    )
    stats, manifest = outputs.stats or {}, outputs.manifest or {}
    seconds = {
        "corpus": stats.get("seconds"),
        "shards": manifest.get("seconds"),
        **{run.name: run.seconds for run in outputs.trainings},
    }
    parts = [part for part in ("corpus", "shards") if part in outputs.mtimes] + [r.name for r in outputs.trainings]
    rows = []
    for part in parts:
        record = outputs.commands.get(part)
        if record:
            status = "ok" if record["returncode"] == 0 else f"failed (exit {record['returncode']})"
            finished = record["finished"][:16].replace("T", " ")  # ISO time to the minute
            rows.append([part, record["command"], f"{record['seconds']:.1f}", finished, status])
        else:
            wall = seconds.get(part)
            rows.append(
                [
                    part,
                    f"not recorded (run through {MAKE_TARGETS[part]} to record it)",
                    "–" if wall is None else f"{wall:.1f}",
                    "",
                    "",
                ]
            )
    section.heading("Commands and wall times")
    section.table(["part", "command", "wall time (s)", "finished", "status"], rows)
    if stats:
        section.note(
            f"Corpus config digest {stats['config_digest']}, seed {stats['seed']}; "
            f"{stats['input_documents'] / stats['seconds']:.1f} documents/s over the whole run."
            if stats.get("seconds")
            else f"Corpus config digest {stats['config_digest']}."
        )
    recorded = [r for r in outputs.commands.values() if r.get("versions")]
    versions = recorded[-1]["versions"] if recorded else package_versions()
    section.heading(
        "Versions",
        "as recorded with the last command"
        if recorded
        else "of the environment that built this report (no command was recorded)",
    )
    section.table(["package", "version"], [[name, version] for name, version in versions.items()])
    if stats.get("config"):
        section.code(yaml.safe_dump(stats["config"], sort_keys=False, allow_unicode=True), "corpus configuration")
    if manifest.get("config"):
        section.code(
            yaml.safe_dump(manifest["config"], sort_keys=False, allow_unicode=True),
            "tokenizer and shards configuration",
        )
    return section


def summary(outputs: RunOutputs) -> list[str]:
    lines = []
    if outputs.stats:
        s = outputs.stats
        lines.append(
            f"{s['input_documents']:,} documents in, {s['kept_documents']:,} kept "
            f"({percent(s['kept_documents'], s['input_documents'])}), {s['removed_documents']:,} removed, "
            f"{s['quarantined_documents']:,} quarantined; {s['bytes_out'] / 2**20:.1f} of "
            f"{s['bytes_in'] / 2**20:.1f} MiB of text kept"
        )
    if outputs.manifest:
        m = outputs.manifest
        lines.append(
            f"{m['splits']['train']['tokens']:,} training tokens, {m['splits']['val']['tokens']:,} "
            f"validation tokens in {len(m['files'])} shard files"
        )
    for run in outputs.trainings:
        if run.train and "loss" in run.train[0] and "loss" in run.train[-1]:
            lines.append(
                f"{TRAINING_TITLES[run.name]}: {run.train[-1]['step']} steps, loss "
                f"{run.train[0]['loss']:.3f} → {run.train[-1]['loss']:.3f}"
                + (
                    f", validation loss {run.eval[-1]['val_loss']:.3f}"
                    if run.eval and "val_loss" in run.eval[-1]
                    else ""
                )
            )
    return lines


def render(outputs: RunOutputs) -> str:
    sections = []
    if outputs.stats:
        sections.append(corpus_section(outputs.stats))
        if outputs.stats.get("timing") or outputs.stats.get("stage_timing"):
            sections.append(time_section(outputs.stats))
    if outputs.manifest:
        sections.append(shards_section(outputs.manifest))
    if outputs.tokenizer:
        sections.append(tokenizer_section(outputs.tokenizer, outputs.extension))
    if outputs.trainings:
        sections.append(training_section(outputs.trainings))
    sections.append(provenance_section(outputs))
    missing = [
        f"{what} ({how})"
        for what, how, present in (
            ("the corpus", "make corpus", outputs.stats),
            ("shards", "make corpus", outputs.manifest),
            ("the tokenizer", "make corpus", outputs.tokenizer),
            ("training", "make train", outputs.trainings),
        )
        if not present
    ]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipelines.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2").render(
        sections=sections,
        summary=summary(outputs),
        stale=outputs.stale(),
        missing=missing,
        root=outputs.root,
        generated=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )


def write_html_report(root: str) -> str:
    """Build `<root>/report.html` from what `root` holds; returns its path."""
    page = render(read_outputs(root))
    fs, base = filesystem(root)
    write_atomic(fs, f"{base}/{REPORT}", page.encode("utf-8"))
    return join(root, REPORT)
