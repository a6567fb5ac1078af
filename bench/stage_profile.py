"""Where our time goes: our stage chain in this process on one core, without Ray, timed per stage
on the start of a benchmark input, the word segmentation the filters share timed apart."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

from bench.inputs import MB, WORK
from bench.markdown import pct, table
from bench.ours_runner import ours_config

# The stages that read the shared segmentation (stages.text.analyses); the first of them in the chain
# would pay for it, so the profile times it apart, per language.
ANALYSING_STAGES = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")
STAGE_GOAL_MB_PER_S = 2.0  # per core, every row stage but language ID and the classifier
GOAL_EXEMPT = ("langid", "quality_classifier")


def profile_stages(manifest: dict, limit_mb: float = 2.8) -> dict:
    """Our stage chain in this process, one core, no Ray: seconds per stage on the first
    `limit_mb` MB of the input, in batches of the config's batch size. The word segmentation the
    filters share is timed apart, before the first of them, per language."""
    import pyarrow.compute as pc

    from pipelines.corpus import StageChain
    from stages.base import document_batch
    from stages.text import analyses, forget_analyses

    config = ours_config(os.path.dirname(manifest["files"][0]), os.path.join(WORK, "unused"), 1)
    texts = []
    size = 0
    with open(manifest["files"][0], encoding="utf-8") as handle:
        for line in handle:
            if size >= limit_mb * MB:
                break
            texts.append(json.loads(line)["text"])
            size += len(texts[-1].encode())
    chain = StageChain(
        [(spec.name, spec.params) for spec in config.stages], config.execution.batch_size, config.ingest.max_batch_bytes
    )
    first_analysing = next((stage.name for stage in chain.stages if stage.name in ANALYSING_STAGES), None)
    seconds: Counter = Counter()
    segmented: Counter = Counter()  # language -> MB segmented

    def run(chunk: list[str]) -> None:
        batch = document_batch(chunk, ["bench"] * len(chunk))
        for stage in chain.stages:
            if stage.name == first_analysing:
                for doc in analyses(batch.filter(pc.is_null(batch["drop_stage"]))):
                    t0 = time.perf_counter()
                    doc.line_words  # noqa: B018 - computes the segmentation
                    seconds[f"segmentation:{doc.lang}"] += time.perf_counter() - t0
                    segmented[doc.lang] += len(doc.text.encode()) / MB
            t0 = time.perf_counter()
            batch = stage.process(batch)
            seconds[stage.name] += time.perf_counter() - t0

    # A warm-up pass over the same documents, untimed, loads what stages load on first use and a
    # worker pays once: lingua's models (all of an alphabet's on its first text), jieba's
    # dictionary, character tables. Its analyses are then forgotten, so the timed pass segments
    # every document again.
    n = config.execution.batch_size
    started = time.perf_counter()
    for start in range(0, len(texts), n):
        run(texts[start : start + n])
    setup = time.perf_counter() - started
    forget_analyses()
    seconds.clear()
    segmented.clear()
    for start in range(0, len(texts), n):
        run(texts[start : start + n])
    segmentation = [(lang, segmented[lang], seconds[f"segmentation:{lang}"]) for lang in sorted(segmented, key=str)]
    return {
        "mb": size / MB,
        "documents": len(texts),
        "setup": setup,
        "segmentation": segmentation,
        "stages": [(stage.name, seconds[stage.name]) for stage in chain.stages],
    }


def goal_met(seconds: float, mb: float) -> str:
    return "met" if seconds * STAGE_GOAL_MB_PER_S <= mb else "**not met**"


def profile_table(profile: dict) -> str:
    """Seconds and MB/s of input text per stage on one core, the shared segmentation apart."""
    seg_seconds = sum(s for _, _, s in profile["segmentation"])
    total = sum(s for _, s in profile["stages"]) + seg_seconds or 1.0
    mb = profile["mb"]
    rows = []
    for name, seconds in profile["stages"]:
        if name in ANALYSING_STAGES and seg_seconds and not any(r[0].startswith("segmentation") for r in rows):
            rows.append(
                [
                    "segmentation (shared by the next four)",
                    f"{seg_seconds:.2f}",
                    pct(seg_seconds, total),
                    f"{mb / seg_seconds:.2f}",
                    goal_met(seg_seconds, mb),
                ]
            )
        goal = "-" if name in GOAL_EXEMPT else goal_met(seconds, mb)
        rows.append([name, f"{seconds:.2f}", pct(seconds, total), f"{mb / seconds:.2f}" if seconds else "-", goal])
    rows.append(["chain", f"{total:.2f}", "100 %", f"{mb / total:.2f}", ""])
    per_lang = "; ".join(
        f"{lang or 'no language'}: {seg_mb:.2f} MB in {s:.2f} s ({seg_mb / s:.2f} MB/s)"
        for lang, seg_mb, s in profile["segmentation"]
        if s
    )
    return "\n".join(
        [
            f"**Ours: time per stage** (stage chain in one process, one core, no Ray, first {mb:.1f} MB / "
            f"{profile['documents']} docs of the input; timed on a second pass: the first "
            f"({profile['setup']:.1f} s, models loaded on first use) is not included; MB/s = MB of "
            f"input text / the stage's seconds; goal >= {STAGE_GOAL_MB_PER_S:g} MB/s per core except "
            f"{' and '.join(GOAL_EXEMPT)})",
            "",
            table(["stage", "seconds", "share", "MB/s (one core)", "goal"], rows),
            "",
            f"Segmentation per language (documents still alive after langid; zh = jieba's words, via jieba-rs): {per_lang}.",
        ]
    )
