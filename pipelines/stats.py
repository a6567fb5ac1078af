"""stats.json: the last phase's per-part counts folded into one summary, with the accounting check,
and the time each stage took."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from pipelines.config import CorpusConfig
from pipelines.output import BINS, KEPT, QUARANTINED, REMOVED, TIMING
from pipelines.report.sources import funnel
from stages.base import GlobalStage

EXAMPLES = 3  # removed documents shown per (stage, reason)


def collect_stats(
    rows: Iterable[dict],
    inputs: dict[str, int],
    config: CorpusConfig,
    seconds: float,
    global_seconds: dict[str, float | None] | None = None,
) -> dict:
    """Fold per-part counts into stats.json and check that every input is accounted for. `rows`
    is consumed once, as a stream: memory grows with the groups (source, stage, reason, lang),
    not with the number of parts. `global_seconds`: each global stage's wall time."""
    totals: Counter = Counter()
    removed: dict = defaultdict(Counter)
    removed_bytes: Counter = Counter()
    quarantined: Counter = Counter()
    quarantined_bytes: Counter = Counter()
    per_source: dict = defaultdict(Counter)
    langs: Counter = Counter()
    examples: dict = defaultdict(list)
    sums: Counter = Counter()
    histograms: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0] * BINS)))
    timed: dict = defaultdict(Counter)  # stage -> documents, bytes, cpu_ns, wall_ns
    for row in rows:
        if row["category"] == TIMING:
            timed[row["stage"]].update({"documents": row["documents"], "bytes": row["bytes"], **dict(row["signals"])})
            continue
        for name, value in row["signals"]:
            column, _, b = name.partition("#")
            if b:
                histograms[column][row["source"]][row["category"]][int(b)] += value
            else:
                sums[column] += value
        category, source, docs, size = row["category"], row["source"], row["documents"], row["bytes"]
        totals[category] += docs
        totals[f"{category}_bytes"] += size
        per_source[source][category] += docs
        per_source[source][f"{category}_bytes"] += size
        if category == KEPT:
            langs[row["lang"] or "unknown"] += docs
        elif category == REMOVED:
            removed[row["stage"]][row["reason"]] += docs
            removed_bytes[row["stage"]] += size
        else:
            quarantined[row["reason"]] += docs
            quarantined_bytes[row["reason"]] += size
        if category != KEPT:
            key = (row["stage"], row["reason"])
            examples[key] = sorted(examples[key] + list(zip(row["example_ids"], row["example_texts"])))[:EXAMPLES]
    input_documents = sum(inputs.values())
    stats = {
        "input_documents": input_documents,
        "kept_documents": totals[KEPT],
        "removed_documents": totals[REMOVED],
        "quarantined_documents": totals[QUARANTINED],
        "removed": {stage: dict(sorted(reasons.items())) for stage, reasons in sorted(removed.items())},
        "quarantined": dict(sorted(quarantined.items())),
        # text bytes (as written: after PII scrubbing) per removing stage and quarantine reason: the byte funnel
        "removed_bytes": dict(sorted(removed_bytes.items())),
        "quarantined_bytes": dict(sorted(quarantined_bytes.items())),
        "bytes_in": totals[f"{KEPT}_bytes"] + totals[f"{REMOVED}_bytes"] + totals[f"{QUARANTINED}_bytes"],
        "bytes_out": totals[f"{KEPT}_bytes"],
        "per_source": {
            source: {
                "input_documents": inputs.get(source, 0),
                "kept_documents": counts[KEPT],
                "removed_documents": counts[REMOVED],
                "quarantined_documents": counts[QUARANTINED],
                "kept_bytes": counts[f"{KEPT}_bytes"],
            }
            for source, counts in sorted(per_source.items())
        },
        "kept_languages": dict(langs.most_common()),
        "signal_sums": dict(sorted(sums.items())),  # e.g. pii_email_address: values replaced
        # column -> source -> kept/removed -> documents per score bin [0, 0.1), ..., [0.9, 1]
        "histograms": {
            column: {source: dict(sorted(parts.items())) for source, parts in sorted(by_source.items())}
            for column, by_source in sorted(histograms.items())
        },
        "stages": [spec.name for spec in config.stages],
        "config_digest": config.digest,
        # The YAML as read, overrides applied, for report.html; less output.dir: where a run was written is
        # not part of what it is (a resumed or moved run's stats stay equal)
        "config": {**config.raw, "output": {k: v for k, v in (config.raw.get("output") or {}).items() if k != "dir"}},
        "seed": config.seed,
        "seconds": round(seconds, 2),
        "docs_per_s": round(input_documents / seconds, 1) if seconds else None,
    }
    stats["examples"] = {
        f"{stage}/{reason}": [{"id": i, "text": t} for i, t in pairs]
        for (stage, reason), pairs in sorted(examples.items())
    }
    stats["stage_timing"] = stage_timing(stats, timed, global_seconds or {}, config)
    accounted = stats["kept_documents"] + stats["removed_documents"] + stats["quarantined_documents"]
    if accounted != input_documents:
        raise RuntimeError(
            f"accounting check failed: {input_documents} input documents but {stats['kept_documents']} kept + "
            f"{stats['removed_documents']} removed + {stats['quarantined_documents']} quarantined = {accounted}"
        )
    return stats


def stage_timing(stats: dict, timed: dict[str, Counter], global_seconds: dict, config: CorpusConfig) -> list[dict]:
    """stats.json `stage_timing`, in pipeline order: ingest and the row stages as timed per batch
    (CPU and wall seconds summed over the workers that ran them, documents and bytes as each got
    them); a global stage's wall time on the cluster and, from the funnel, the documents it got
    and their text bytes as written. Ray gives no complete CPU time of a global stage: its
    per-task figures miss the work of the shuffles' aggregators, where dedup does most of its."""
    steps = funnel(stats)
    entering = {step["step"]: before for before, step in zip(steps, steps[1:])}  # what the step before left
    table = [timing_row("ingest", "row", timed["ingest"])] if "ingest" in timed else []
    for name, stage in zip(stats["stages"], config.built_stages):
        if isinstance(stage, GlobalStage):
            got = entering[name]
            table.append(timing_row(name, "global", got, global_seconds.get(name)))
        elif name in timed:
            table.append(timing_row(name, "row", timed[name]))
    return table


def timing_row(stage: str, kind: str, figures: dict, wall_seconds: float | None = None) -> dict:
    """One row of `stage_timing`; `figures`: documents, bytes, and cpu_ns and wall_ns when timed."""
    cpu = figures["cpu_ns"] / 1e9 if "cpu_ns" in figures else None
    wall = figures["wall_ns"] / 1e9 if "wall_ns" in figures else wall_seconds
    mb = figures["bytes"] / 1e6
    return {
        "stage": stage,
        "kind": kind,
        "documents": figures["documents"],
        "mb": round(mb, 3),
        "cpu_seconds": None if cpu is None else round(cpu, 3),
        "wall_seconds": None if wall is None else round(wall, 3),
        "docs_per_s": round(figures["documents"] / wall, 1) if wall else None,
        "mb_per_cpu_second": round(mb / cpu, 3) if cpu else None,
    }
