"""The markdown report of bench.pipeline_throughput: input mix, throughput of ours and datatrove,
kept documents per origin, time per step and per stage."""

from __future__ import annotations

from bench.inputs import MB, ORIGINS
from bench.markdown import pct, table
from bench.ours_runner import excluded_stages
from bench.stage_profile import profile_table


def report(args, manifests: dict, ray_seconds: float | None, ours: dict, dt: dict | None, profile: dict | None) -> str:
    """The markdown tables of one run: `ours` and `dt` (datatrove, or None) as the runners return them."""
    out = []
    out.append(
        f"Cores: {args.cores}. MB = 10^6 bytes of UTF-8 document text. Input: {len(manifests['full']['files'])} "
        f"JSONL files under bench/work/ (cached), built from ../shared/data."
    )
    out.append("")
    if ours:
        first = next(iter(ours.values()))
        out.append(
            f"Ours: stages {' -> '.join(first['stages'])} (params from configs/corpus.yaml; langid allows en+zh); "
            f"dataset-level stages in the config and not run here: {', '.join(excluded_stages()) or 'none'}."
        )
        out.append(
            "datatrove: JsonlReader -> LanguageFilter(en, zh; lid.176.ftz) -> GopherRepetitionFilter -> "
            "GopherQualityFilter -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter -> "
            "JsonlWriter (gzip), default parameters otherwise."
        )
        out.append("")
    out.append(
        "**Input mix** (each base document repeated `copies` times; copy N has id suffix `/cN` and `cN ` "
        "prepended to its text):"
    )
    out.append("")
    rows = []
    for key, manifest in manifests.items():
        per = manifest["per_origin"]
        rows.append(
            [
                f"{key} ({manifest['name']})",
                f"{manifest['documents']:,}",
                f"{manifest['text_bytes'] / MB:.1f}",
                manifest["copies"],
            ]
            + [f"{per[o]['documents']:,} docs, {pct(per[o]['text_bytes'], manifest['text_bytes'])}" for o in ORIGINS]
        )
    out.append(table(["input", "docs", "text MB", "copies", "C4", "CCNet", "Wikipedia", "zh (Debian Ref.)"], rows))
    out.append("")
    if dt:
        same = ours[dt["label"]]
        mb, dt_mbps = same["manifest"]["text_bytes"] / MB, dt["manifest"]["text_bytes"] / MB / dt["seconds"]
        with_start = (
            f"; {mb / (same['seconds'] + ray_seconds) / dt_mbps:.2f}x counting its {ray_seconds:.1f} s start"
            if ray_seconds is not None
            else ""
        )
        out.append(
            f"**Same input ({dt['label']}, {mb:.1f} MB), this run, {args.cores} cores: ours "
            f"{mb / same['seconds']:.3f} MB/s, datatrove {dt_mbps:.3f} MB/s: "
            f"{mb / same['seconds'] / dt_mbps:.2f}x** (ours with Ray already up{with_start})"
        )
        out.append("")
    out.append(
        "**Throughput** (wall clock, end to end: read JSONL, all stages, write output; ours also writes rejects "
        "and stats.json/report.md)"
    )
    out.append("")
    rows = []
    runs = []
    for key, result in ours.items():
        runs.append((f"ours, {key} input (Ray already up)", result, result["seconds"]))
    if ray_seconds is not None and "full" in ours:
        runs.append(("ours, full input, incl. Ray start", ours["full"], ours["full"]["seconds"] + ray_seconds))
    if dt:
        runs.append((f"datatrove, {dt['label']} input", dt, dt["seconds"]))
    for name, result, seconds in runs:
        m = result["manifest"]
        rows.append(
            [
                name,
                f"{m['text_bytes'] / MB:.1f}",
                f"{result['documents']:,}",
                f"{seconds:.1f}",
                f"{m['text_bytes'] / MB / seconds:.3f}",
                f"{result['documents'] / seconds:.1f}",
                f"{result['kept_documents']:,}",
                f"{result['own_cores']:.2f}",
                f"{result['load_before']:.2f} / {result['other_cores']:.2f}",
            ]
        )
    out.append(
        table(
            [
                "run",
                "input MB",
                "docs",
                "wall s",
                "MB/s",
                "docs/s",
                "kept docs",
                "cores used",
                "other load before / during (cores)",
            ],
            rows,
        )
    )
    disturbed = [name for name, result, _ in runs if result["other_cores"] > 0.25 or result["load_before"] > 0.3]
    out.append("")
    out.append(
        "`cores used`: CPU time of the run's own processes / wall time. `other load`: cores busy with "
        "other processes just before and during the run (should be ~0)."
        + (
            f" **WARNING: other work shared the machine during: {'; '.join(disturbed)}; these figures "
            "understate throughput.**"
            if disturbed
            else ""
        )
    )
    if "full" in ours:
        out.append("")
        out.append(cpu_paragraph(ours["full"]))
    if ray_seconds is not None:
        out.append("")
        out.append(f"Ray start (`ray.init(address='local', num_cpus={args.cores})`): {ray_seconds:.1f} s.")
    out.append("")
    if dt:
        ours_key = dt["label"]
        out.append(
            f"**Kept documents per origin** (both on the {ours_key} input; datatrove's filters are English-only, so Chinese is "
            "expected to be rejected there: a finding, not a bug)"
        )
        out.append("")
        mo, md = ours[ours_key]["manifest"], dt["manifest"]
        rows = []
        for origin in ORIGINS:
            a, n_a = ours[ours_key]["kept_per_origin"].get(origin, 0), mo["per_origin"][origin]["documents"]
            b, n_b = dt["kept_per_origin"].get(origin, 0), md["per_origin"][origin]["documents"]
            rows.append([origin, f"{a:,} / {n_a:,} ({pct(a, n_a)})", f"{b:,} / {n_b:,} ({pct(b, n_b)})"])
        a, b = ours[ours_key]["kept_documents"], dt["kept_documents"]
        rows.append(
            [
                "all",
                f"{a:,} / {mo['documents']:,} ({pct(a, mo['documents'])})",
                f"{b:,} / {md['documents']:,} ({pct(b, md['documents'])})",
            ]
        )
        out.append(table(["origin", f"ours kept ({ours_key})", f"datatrove kept ({dt['label']})"], rows))
        out.append("")
    for key, result in ours.items():
        out.append(f"Ours, {key} input: kept languages {result['kept_languages']}.")
        out.append("")
    first = next(iter(ours.values()), None)
    if first:
        out.append(
            f"**Ours: removed per stage** ({first['label']} input): "
            + "; ".join(
                f"{stage} {sum(reasons.values()):,} ("
                + ", ".join(f"{r} {c:,}" for r, c in sorted(reasons.items(), key=lambda x: -x[1])[:4])
                + ")"
                for stage, reasons in first["removed"].items()
            )
        )
        out.append("")
    if dt:
        total = sum(step["seconds"] for step in dt["steps"]) or 1.0
        out.append("**datatrove: time per step** (from its logs/stats.json, summed over tasks)")
        out.append("")
        out.append(
            table(
                ["step", "seconds", "share", "dropped"],
                [
                    [
                        step["name"],
                        f"{step['seconds']:.1f}",
                        pct(step["seconds"], total),
                        ", ".join(f"{k.removeprefix('dropped_') or k}: {v:,}" for k, v in step["dropped"].items())
                        or "-",
                    ]
                    for step in dt["steps"]
                ],
            )
        )
        out.append("")
    if profile:
        out.append(profile_table(profile))
        out.append("")
    return "\n".join(out)


def cpu_paragraph(result: dict) -> str:
    """Where ours' CPU went on one run: inside the row stages (as the workers timed them, stats.json
    `stage_timing`) and outside them, by kind of process (bench/monitor.py)."""
    kinds, stages = result["cpu_kinds"], result["stage_cpu"]
    total, inside = sum(kinds.values()), sum(stages.values())
    per_stage = ", ".join(f"{name} {seconds:.1f}" for name, seconds in stages.items())
    return (
        f"**Where ours' CPU went** ({result['label']} input): {total:.1f} CPU-s in all; {inside:.1f} inside the "
        f"stages ({per_stage}; stats.json `stage_timing`); {total - inside:.1f} outside them: Ray worker processes "
        f"beyond the stages' time {kinds['workers'] - inside:.1f} (process start, imports, model setup, reading "
        f"and writing, Ray Data's own actors), driver {kinds['driver']:.1f}, Ray's system processes "
        f"{kinds['ray system']:.1f}."
    )
