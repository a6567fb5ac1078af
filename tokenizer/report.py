"""Tokenizer efficiency per language on held-out text: characters per token
(higher = shorter sequences) and tokens per word (fertility; lower = better).

Words are counted as the corpus filters count them (stages/text.py: jieba
for Chinese, characters for Japanese/Thai, `\\w+` runs otherwise), so figures
are comparable across languages.
"""

from __future__ import annotations

import json
import os

from tokenizers import Tokenizer

from pipelines.workdir import write_local_atomic
from stages.text import words_of


def measure(tokenizer: Tokenizer, texts_by_lang: dict[str, list[str]]) -> dict[str, dict]:
    """Per language: documents, characters, words, tokens, chars_per_token, tokens_per_word."""
    results = {}
    for lang, texts in sorted(texts_by_lang.items()):
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
        characters = sum(len(t) for t in texts)
        words = sum(len(words_of(t, lang)) for t in texts)
        results[lang] = {
            "documents": len(texts),
            "characters": characters,
            "words": words,
            "tokens": tokens,
            "chars_per_token": round(characters / tokens, 4) if tokens else None,
            "tokens_per_word": round(tokens / words, 4) if words else None,
        }
    return results


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(title: str, results: dict[str, dict[str, dict]], notes: list[str]) -> str:
    """One table per metric, a column per tokenizer (e.g. base / extended)."""
    labels = list(results)
    langs = sorted({lang for per_lang in results.values() for lang in per_lang})
    lines = [f"# {title}", "", *notes, ""]
    for metric in ("chars_per_token", "tokens_per_word"):
        lines += [
            f"## {metric.replace('_', ' ')}",
            "",
            "| lang | documents | " + " | ".join(labels) + " |",
            "| --- | --- |" + " --- |" * len(labels),
        ]
        for lang in langs:
            documents = next((r[lang]["documents"] for r in results.values() if lang in r), 0)
            cells = [_cell(results[label].get(lang, {}).get(metric)) for label in labels]
            lines.append(f"| {lang} | {documents} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(
    out_dir: str,
    title: str,
    results: dict[str, dict[str, dict]],
    notes: list[str] | None = None,
    extra: dict | None = None,
) -> None:
    """`report.json` (figures and `extra` details) and `report.md` into `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    write_local_atomic(
        os.path.join(out_dir, "report.json"),
        json.dumps({"title": title, "results": results, **(extra or {})}, indent=2, ensure_ascii=False),
    )
    write_local_atomic(os.path.join(out_dir, "report.md"), markdown(title, results, notes or []))
