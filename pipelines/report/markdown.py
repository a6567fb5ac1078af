"""report.md: what a user reads after a corpus run (stats.json has the same figures)."""

from __future__ import annotations

import yaml


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def write_report(stats: dict, config) -> str:
    n_in = stats["input_documents"]
    lines = [
        "# Corpus report",
        "",
        f"- documents: {n_in} in, **{stats['kept_documents']} kept** ({_pct(stats['kept_documents'], n_in)}), "
        f"{stats['removed_documents']} removed, {stats['quarantined_documents']} quarantined",
        f"- text: {stats['bytes_in'] / 2**20:.2f} MiB in, {stats['bytes_out'] / 2**20:.2f} MiB kept "
        f"({_pct(stats['bytes_out'], stats['bytes_in'])})",
        f"- stages: {' -> '.join(['ingest', *stats['stages'], 'output'])}",
        f"- wall time: {stats['seconds']} s ({stats['docs_per_s']} docs/s); config digest `{stats['config_digest']}`",
        "",
        "## Per source",
        "",
        "| source | input | kept | kept % | removed | quarantined | kept MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for source, s in stats["per_source"].items():
        lines.append(
            f"| {source} | {s['input_documents']} | {s['kept_documents']} | "
            f"{_pct(s['kept_documents'], s['input_documents'])} | {s['removed_documents']} | "
            f"{s['quarantined_documents']} | {s['kept_bytes'] / 2**20:.2f} |"
        )
    lines += ["", "## Removed, by stage and reason", "", "| stage | reason | documents |", "| --- | --- | ---: |"]
    for stage, reasons in stats["removed"].items():
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            lines.append(f"| {stage} | {reason} | {count} |")
    dedup = {stage: stats[stage] for stage in stats["stages"] if isinstance(stats.get(stage), dict)}
    if dedup:
        lines += ["", "## Deduplication", "", "| stage | figures |", "| --- | --- |"]
        lines += [
            f"| {stage} | {', '.join(f'{k}: {v}' for k, v in figures.items())} |" for stage, figures in dedup.items()
        ]
    if stats["signal_sums"]:
        lines += ["", "## Signals", "", "| column | total over documents |", "| --- | ---: |"]
        lines += [f"| {column} | {total} |" for column, total in stats["signal_sums"].items()]
    for column, by_source in stats["histograms"].items():
        edges = [f"{b / 10:.1f}" for b in range(10)]
        lines += [
            "",
            f"## Distribution of {column}",
            "",
            "Documents per bin (bin = lower edge).",
            "",
            "| source | documents | " + " | ".join(edges) + " |",
            "| --- | --- |" + " ---: |" * len(edges),
        ]
        lines += [
            f"| {source} | {part} | " + " | ".join(map(str, counts)) + " |"
            for source, parts in by_source.items()
            for part, counts in parts.items()
        ]
    lines += ["", "## Quarantined (malformed input)", ""]
    if stats["quarantined"]:
        lines += ["| reason | documents |", "| --- | ---: |"]
        lines += [f"| {reason} | {count} |" for reason, count in stats["quarantined"].items()]
    else:
        lines.append("None.")
    lines += ["", "## Languages of kept documents", "", "| lang | documents |", "| --- | ---: |"]
    lines += [f"| {lang} | {count} |" for lang, count in stats["kept_languages"].items()]
    lines += ["", "## Examples of removed documents", ""]
    for key, examples in stats["examples"].items():
        lines.append(f"### {key}")
        for example in examples:
            snippet = " ".join(example["text"].split())[:200]
            lines.append(f"- `{example['id']}`: {snippet}")
        lines.append("")
    lines += [
        "## Configuration",
        "",
        "```yaml",
        yaml.safe_dump(config.raw, sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
