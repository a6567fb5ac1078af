"""Markdown for the benchmarks' reports."""

from __future__ import annotations


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table, the first column left-aligned and the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" ---: " if i else " --- " for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(part: float, whole: float) -> str:
    """`part` as a percentage of `whole` ("-" when `whole` is 0)."""
    return f"{100 * part / whole:.1f} %" if whole else "-"
