"""report.html's charts: matplotlib figures rendered to inline SVG (text kept as text, so the page
stays searchable and a test can read a chart's labels), one function per chart."""

from __future__ import annotations

import functools
import io
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

KEPT, REMOVED, QUARANTINED = "#3b8f6b", "#d9734e", "#8d99ae"
SERIES = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_TAB20 = matplotlib.colormaps["tab20"].colors
STAGE_COLOURS = [matplotlib.colors.to_hex(c) for c in _TAB20[::2] + _TAB20[1::2]]  # 20: a pipeline has ~12 stages
WIDTH = 10.0  # inches: 720 pt, which the page shows at 960 px or scales down to its column
STYLE = {
    "svg.fonttype": "none",  # <text> elements, not glyph paths
    "svg.hashsalt": "lmforge",  # stable ids: the same run gives the same file
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
    "axes.formatter.useoffset": False,  # "+1e4" offsets above an axis read as noise
}


def figure(height: float, width: float = WIDTH) -> Figure:
    return Figure(figsize=(width, max(height, 1.2)), layout="constrained")


def to_svg(fig: Figure, slug: str) -> str:
    """The figure as an <svg> element whose ids are prefixed by `slug`: matplotlib numbers its ids
    per figure, and a page holds many figures."""
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{slug}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{slug}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{slug}-\1"', svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{slug}" ', 1)


def styled(build: Callable[..., str]) -> Callable[..., str]:
    """Build the figure under the report's style (rcParams apply when artists are created)."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs) -> str:
        with matplotlib.rc_context(STYLE):
            return build(*args, **kwargs)

    return wrapper


def mib(size: float) -> str:
    return f"{size / 2**20:.2f} MiB"


def whole_numbers(axis) -> None:
    """Ticks at whole numbers only: the axis counts documents, clusters or steps."""
    axis.set_major_locator(MaxNLocator(integer=True))


def label_bars(ax, bars, labels: Iterable[str], inside: bool = False) -> None:
    ax.bar_label(bars, labels=list(labels), padding=3, fontsize=8, label_type="center" if inside else "edge")


@styled
def funnel(steps: Sequence[dict]) -> str:
    """Documents (and text bytes) left after each step; the removed part of each step beside it."""
    with_bytes = steps[-1]["bytes"] is not None
    fig = figure(0.32 * len(steps) + 0.8)
    axes = fig.subplots(1, 2 if with_bytes else 1, sharey=True, squeeze=False)[0]
    names = [s["step"] for s in steps]
    panels = [("documents", "documents left", lambda v: f"{v:,}")]
    if with_bytes:
        panels.append(("bytes", "text left", mib))
    for ax, (key, title, fmt) in zip(axes, panels):
        left = [s[key] for s in steps]
        removed = [0] + [before - after for before, after in zip(left, left[1:])]
        total = left[0] or 1
        bars = ax.barh(names, left, color=KEPT)
        ax.barh(names, removed, left=left, color=REMOVED, alpha=0.6)
        label_bars(ax, bars, [f"{fmt(v)} ({100 * v / total:.1f} %)" for v in left], inside=True)
        for y, (value, gone) in enumerate(zip(left, removed)):
            if gone:
                ax.text(value + gone, y, f"  −{fmt(gone)}", va="center", fontsize=8, color="#8a3b1f")
        ax.set_title(title)
        ax.set_xlim(0, total * 1.25)
        ax.xaxis.set_visible(False)
    axes[0].invert_yaxis()  # shared: both panels read top-down
    return to_svg(fig, "funnel")


@styled
def removals(removed: dict[str, dict[str, int]], stages: Sequence[str]) -> str:
    """Documents removed per (stage, reason), stages in pipeline order, colour per stage."""
    rows = [
        (stage, reason, count)
        for stage in stages
        if stage in removed
        for reason, count in sorted(removed[stage].items(), key=lambda item: -item[1])
    ]
    fig = figure(0.21 * len(rows) + 0.6)
    ax = fig.subplots()
    colours = {
        stage: STAGE_COLOURS[i % len(STAGE_COLOURS)] for i, stage in enumerate(dict.fromkeys(r[0] for r in rows))
    }
    bars = ax.barh(
        [f"{stage} · {reason}" for stage, reason, _ in rows],
        [c for _, _, c in rows],
        color=[colours[stage] for stage, _, _ in rows],
    )
    label_bars(ax, bars, [f"{c:,}" for _, _, c in rows])
    ax.invert_yaxis()
    whole_numbers(ax.xaxis)
    ax.set_xlabel("documents removed")
    ax.margins(x=0.08, y=0.01)
    return to_svg(fig, "removals")


@styled
def source_shares(per_source: dict[str, dict]) -> str:
    """Share of each source's input documents kept, removed, quarantined."""
    sources = list(per_source)
    fig = figure(0.4 * len(sources) + 0.9)
    ax = fig.subplots()
    left = [0.0] * len(sources)
    for key, name, colour in (
        ("kept_documents", "kept", KEPT),
        ("removed_documents", "removed", REMOVED),
        ("quarantined_documents", "quarantined", QUARANTINED),
    ):
        shares = [per_source[s][key] / (per_source[s]["input_documents"] or 1) for s in sources]
        bars = ax.barh(sources, shares, left=left, color=colour, label=name)
        label_bars(ax, bars, [f"{100 * v:.0f} %" if v >= 0.06 else "" for v in shares], inside=True)
        left = [a + b for a, b in zip(left, shares)]
    for y, source in enumerate(sources):
        s = per_source[source]
        ax.text(1.01, y, f"{s['kept_documents']:,} of {s['input_documents']:,} kept", va="center", fontsize=8)
    ax.set_xlim(0, 1.22)
    ax.invert_yaxis()
    ax.xaxis.set_visible(False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.42, 1.0), ncols=3)
    return to_svg(fig, "sources")


@styled
def counts(values: dict[str, int], slug: str, xlabel: str, colour: str = SERIES[0]) -> str:
    """One horizontal bar per key (languages, PII types, quarantine reasons, ...)."""
    names = list(values)
    fig = figure(0.28 * len(names) + 0.7, width=WIDTH * 0.75)
    ax = fig.subplots()
    bars = ax.barh(names, list(values.values()), color=colour)
    label_bars(ax, bars, [f"{v:,}" for v in values.values()])
    ax.invert_yaxis()
    whole_numbers(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.margins(x=0.1)
    return to_svg(fig, slug)


@styled
def histograms(by_source: dict[str, dict[str, list[int]]], column: str) -> str:
    """Documents per score bin, one panel per source, kept and removed stacked."""
    sources = list(by_source)
    columns = min(4, len(sources))
    rows = -(-len(sources) // columns)
    fig = figure(2.0 * rows + 0.4, width=min(WIDTH, 2.5 * columns + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, source in zip(axes, sources):
        parts = by_source[source]
        bins = len(next(iter(parts.values())))
        edges = [b / bins for b in range(bins)]
        bottom = [0] * bins
        for part, colour in (("kept", KEPT), ("removed", REMOVED), ("quarantined", QUARANTINED)):
            if part in parts:
                ax.bar(
                    edges,
                    parts[part],
                    width=1 / bins,
                    bottom=bottom,
                    align="edge",
                    color=colour,
                    label=part,
                    edgecolor="white",
                    linewidth=0.5,
                )
                bottom = [a + b for a, b in zip(bottom, parts[part])]
        ax.set_title(f"{source} ({sum(bottom):,} scored)")
        ax.set_xlim(0, 1)
        whole_numbers(ax.yaxis)
        ax.set_xlabel(column)
    axes[0].set_ylabel("documents")
    axes[0].legend(loc="upper right")
    for ax in axes[len(sources) :]:
        ax.set_visible(False)
    return to_svg(fig, f"histogram-{column}")


@styled
def size_distributions(distributions: dict[str, tuple[str, dict[str, int]]]) -> str:
    """Per stage, how many clusters (or spans) have each size; {stage: (what, {size: count})}."""
    stages = list(distributions)
    fig = figure(2.2, width=min(WIDTH, 3.4 * len(stages)))
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage, colour in zip(axes, stages, SERIES):
        what, sizes = distributions[stage]
        keys = sorted(sizes, key=int)
        bars = ax.bar(keys, [sizes[k] for k in keys], color=colour, width=0.6)
        label_bars(ax, bars, [f"{sizes[k]:,}" for k in keys])
        ax.set_xlim(-0.75, max(len(keys), 3) - 0.25)  # a lone size is a bar, not a wall
        ax.set_title(stage)
        ax.set_xlabel(what.replace("_", " "))
        ax.margins(y=0.15)
        whole_numbers(ax.yaxis)
    axes[0].set_ylabel("clusters")
    return to_svg(fig, "dedup-clusters")


@styled
def phase_times(timing: list[dict]) -> str:
    """Wall time of each phase step, with its documents/s."""
    labels = [textwrap.fill(f"{t['phase']}: {t['what']}", 48) for t in timing]  # phase 0 lists every row stage
    fig = figure(0.3 * sum(label.count("\n") + 1 for label in labels) + 0.7)
    ax = fig.subplots()
    bars = ax.barh(labels, [t["seconds"] for t in timing], color=SERIES[0])
    label_bars(
        ax,
        bars,
        [
            f"{t['seconds']:.1f} s"
            + (f" · {t['count'] / t['seconds']:.0f} documents/s" if t["what"] == "documents" and t["seconds"] else "")
            for t in timing
        ],
    )
    ax.invert_yaxis()
    ax.set_xlabel("wall time (s)")
    ax.margins(x=0.45)
    return to_svg(fig, "phase-times")


@styled
def stage_times(rows: Sequence[dict]) -> str:
    """CPU and wall seconds of each stage (stats.json `stage_timing`), with the rates beside them:
    MB per CPU-second by the CPU bar, documents/s by the wall bar."""
    fig = figure(0.5 * len(rows) + 0.8)
    ax = fig.subplots()
    ys = range(len(rows))
    cpu = [r["cpu_seconds"] or 0 for r in rows]
    wall = [r["wall_seconds"] or 0 for r in rows]
    bars_c = ax.barh([y - 0.2 for y in ys], cpu, height=0.38, color=SERIES[0], label="CPU seconds")
    bars_w = ax.barh([y + 0.2 for y in ys], wall, height=0.38, color=SERIES[7], label="wall seconds")
    label_bars(
        ax,
        bars_c,
        [
            "CPU not measured"
            if r["cpu_seconds"] is None
            else f"{r['cpu_seconds']:.1f} s"
            + (f" · {r['mb_per_cpu_second']:.2f} MB per CPU-second" if r["mb_per_cpu_second"] else "")
            for r in rows
        ],
    )
    label_bars(
        ax,
        bars_w,
        [
            f"{r['wall_seconds'] or 0:.1f} s" + (f" · {r['docs_per_s']:,.0f} documents/s" if r["docs_per_s"] else "")
            for r in rows
        ],
    )
    ax.set_yticks(list(ys), [r["stage"] + (" (global)" if r["kind"] == "global" else "") for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds (a row stage's summed over its workers)")
    ax.margins(x=0.45)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2)  # above the bars: their labels fill the right
    return to_svg(fig, "stage-times")


@styled
def shard_shares(sources: dict[str, dict]) -> str:
    """Requested vs achieved token share per source, with the epochs each source was repeated."""
    names = list(sources)
    fig = figure(0.55 * len(names) + 0.8)
    ax = fig.subplots()
    ys = range(len(names))
    requested = [100 * sources[n]["requested_share"] for n in names]
    achieved = [100 * sources[n]["achieved_share"] for n in names]
    bars_r = ax.barh([y - 0.2 for y in ys], requested, height=0.38, color=SERIES[7], label="requested")
    bars_a = ax.barh([y + 0.2 for y in ys], achieved, height=0.38, color=SERIES[0], label="achieved")
    label_bars(ax, bars_r, [f"{v:.1f} %" for v in requested])
    label_bars(ax, bars_a, [f"{v:.1f} % · {sources[n]['epochs']:.2f} epochs" for v, n in zip(achieved, names)])
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_xlabel("share of training tokens (%)")
    ax.margins(x=0.3)
    ax.legend(loc="lower right")
    return to_svg(fig, "shard-shares")


@styled
def tokenizer_efficiency(series: dict[str, dict[str, dict]]) -> str:
    """Characters per token and tokens per word per language, one bar per tokenizer."""
    langs = list(dict.fromkeys(lang for results in series.values() for lang in results))
    fig = figure(0.5 * len(langs) * len(series) + 1.0)
    axes = fig.subplots(1, 2, sharey=True)
    height = 0.8 / len(series)
    for ax, key, title in zip(
        axes,
        ("chars_per_token", "tokens_per_word"),
        ("characters per token (higher: fewer tokens)", "tokens per word (lower: fewer tokens)"),
    ):
        for i, (name, results) in enumerate(series.items()):
            values = [results.get(lang, {}).get(key, 0) for lang in langs]
            bars = ax.barh(
                [y + (i - (len(series) - 1) / 2) * height for y in range(len(langs))],
                values,
                height=height * 0.95,
                color=SERIES[i],
                label=name,
            )
            label_bars(ax, bars, [f"{v:.3f}" for v in values])
        ax.set_title(title)
        ax.margins(x=0.2)
    axes[0].set_yticks(range(len(langs)), langs)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(series))
    return to_svg(fig, "tokenizer")


@styled
def training_curves(train: list[dict], evaluations: list[dict], slug: str) -> str:
    """Every logged metric there is: loss (and validation loss) by step and by token, learning
    rate, tokens/s, bits per byte, and for DPO the reward margin and accuracy."""
    tokens_at = {r["step"]: r["tokens"] for r in train if "tokens" in r}
    panels = [
        ("loss by step", "step", [("loss", "loss", train), ("val_loss", "validation loss", evaluations)]),
        ("loss by training tokens", "tokens", [("loss", "loss", train), ("val_loss", "validation loss", evaluations)]),
        ("learning rate", "step", [("lr", "lr", train)]),
        ("tokens/s", "step", [("tokens_per_s", "tokens/s", train)]),
        ("validation bits per byte", "step", [("val_bpb", "bits per byte", evaluations)]),
        ("reward margin", "step", [("margin", "margin", train), ("val_margin", "validation margin", evaluations)]),
        (
            "preference accuracy",
            "step",
            [("accuracy", "accuracy", train), ("val_accuracy", "validation accuracy", evaluations)],
        ),
    ]

    def points(key: str, records: list[dict], x: str) -> tuple[list, list]:
        chosen = [r for r in records if key in r and (x == "step" or r["step"] in tokens_at)]
        return [r["step"] if x == "step" else tokens_at[r["step"]] for r in chosen], [r[key] for r in chosen]

    present = [
        (title, x, [(k, label, points(k, records, x)) for k, label, records in series]) for title, x, series in panels
    ]
    present = [(title, x, [s for s in series if s[2][0]]) for title, x, series in present]
    present = [panel for panel in present if panel[2]]
    columns = min(3, len(present))
    rows = -(-len(present) // columns)
    fig = figure(2.3 * rows + 0.3)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, x, series) in zip(axes, present):
        for key, label, (xs, ys) in series:
            is_eval = key.startswith("val_")
            ax.plot(
                xs,
                ys,
                marker="o" if is_eval or len(xs) < 3 else None,
                markersize=4,
                color=SERIES[1] if is_eval else SERIES[0],
                label=label,
            )
        ax.set_title(title)
        ax.set_xlabel(x)
        whole_numbers(ax.xaxis)
        if x == "tokens":
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 300k, not 300000 crowding its neighbours
        if len(series) > 1:
            ax.legend()
        ax.grid(alpha=0.3)
    for ax in axes[len(present) :]:
        ax.set_visible(False)
    return to_svg(fig, slug)
