"""Pipeline throughput: `python -m bench.pipeline_throughput [--mb 20] [--cores 2]`.

Builds (once, cached under bench/work/, git-ignored) a JSONL corpus of real
text from ../shared/data, split into `cores` files, then on the same cores
and the same input:

- ours: `pipelines.corpus.run` with configs/corpus.yaml's stages (langid
  allowing en+zh), one JSONL source = the bench input, on a local Ray with
  num_cpus=cores. Ray start-up is timed separately.
- datatrove: LocalPipelineExecutor(tasks=cores, workers=cores) with
  JsonlReader -> LanguageFilter (datatrove's own class and scoring, only the
  model file swapped for the local lid.176.ftz, since datatrove downloads
  lid.176.bin at run time) -> GopherRepetitionFilter -> GopherQualityFilter
  -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter
  -> JsonlWriter.
- where our time goes: our stage chain in this process on one core, without
  Ray, timed per stage (the segmentation the filters share timed apart).

Prints markdown tables (stdout; progress goes to stderr) and ends with
`ours_mb_per_s X datatrove_mb_per_s Y same_input_ratio Z`: both on the same
input, in this run. MB = 10^6 bytes of UTF-8 document text (the `text`
field), not JSONL bytes. `--datatrove-mb` gives datatrove a smaller input
(whole copies of the same mix); ours then runs on both inputs, and the
same-input ratio is still the one printed last.

Input mix: every base document (C4, CCNet, Wikipedia articles, Chinese Debian
Reference split into 2-5k-character documents) is repeated until the target
size is reached. Each copy gets a distinct id (`origin/index/cN`) AND a
distinct first word (`cN ` prepended to the text), so that no text is
processed twice as the same string (nothing in our stages may profit from
exact repeats that real data would not have).

The parts: bench/inputs.py (the input), bench/ours_runner.py, bench/datatrove_runner.py,
bench/stage_profile.py (where our time goes), bench/pipeline_report.py (the markdown),
bench/monitor.py (CPU used during each timed run and other load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bench.datatrove_runner import run_datatrove
from bench.inputs import DEFAULT_SHARED, MB, REPO, WORK
from bench.inputs import build_pipeline_input as build_input  # the name other benches import it by
from bench.monitor import wait_quiet
from bench.ours_runner import log, run_ours, start_ray
from bench.pipeline_report import report
from bench.stage_profile import profile_stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="input size in MB of text (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=2, help="cores for both pipelines (default: %(default)s)")
    parser.add_argument(
        "--datatrove-mb",
        type=float,
        default=0,
        help="datatrove's input size if smaller than --mb (whole copies of the same mix; ours then "
        "runs on it too); 0 = the same input as ours (default: %(default)s)",
    )
    parser.add_argument("--shared", default=DEFAULT_SHARED, help="../shared/data (default: %(default)s)")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--no-profile", action="store_true", help="skip the one-core per-stage timing of ours")
    parser.add_argument(
        "--profile-mb",
        type=float,
        default=2.8,
        help="MB of the input the one-core per-stage timing runs on (default: %(default)s)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="S",
        help="before each timed run, wait up to S s for the machine to be idle (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    os.chdir(REPO)  # configs/corpus.yaml refers to keyword files relative to the repo root
    if not os.path.isdir(args.shared):
        print(
            f"pipeline_throughput: {args.shared} not found (the benchmark input is built from ../shared/data)",
            file=sys.stderr,
        )
        return 2
    os.makedirs(WORK, exist_ok=True)
    manifests = {"full": build_input(args.shared, args.mb, args.cores)}
    dt_mb = args.datatrove_mb or args.mb
    if not args.skip_datatrove and dt_mb < args.mb:
        manifests["subset"] = build_input(args.shared, dt_mb, args.cores)
    dt_key = "subset" if "subset" in manifests else "full"
    ours_inputs = ["full"] + (["subset"] if "subset" in manifests else [])

    import ray

    wait_quiet(args.wait_idle)
    ray_seconds = start_ray(args.cores)
    log(f"ray started in {ray_seconds:.1f} s")
    ours = {}
    try:
        for key in ours_inputs:
            ours[key] = run_ours(manifests[key], args.cores, key, args.wait_idle)
            log(f"ours ({key}): {ours[key]['seconds']:.1f} s")
    finally:
        ray.shutdown()
    dt = None
    if not args.skip_datatrove:
        dt = run_datatrove(manifests[dt_key], args.cores, dt_key, args.wait_idle)
        log(f"datatrove ({dt_key}): {dt['seconds']:.1f} s")
    profile = None if args.no_profile else profile_stages(manifests["full"], args.profile_mb)
    print(report(args, manifests, ray_seconds, ours, dt, profile))

    def mbps(result):
        return result["manifest"]["text_bytes"] / MB / result["seconds"]

    figures = {
        "ours_mb_per_s": mbps(ours["full"]),
        "ray_start_s": ray_seconds,
        "ours": {
            k: {
                "seconds": v["seconds"],
                "mb_per_s": mbps(v),
                "docs_per_s": v["documents"] / v["seconds"],
                "kept_per_origin": v["kept_per_origin"],
            }
            for k, v in ours.items()
        },
    }
    if dt:
        figures.update(
            {
                "datatrove_mb_per_s": mbps(dt),
                "datatrove": {
                    "input": dt_key,
                    "seconds": dt["seconds"],
                    "mb_per_s": mbps(dt),
                    "docs_per_s": dt["documents"] / dt["seconds"],
                    "kept_per_origin": dt["kept_per_origin"],
                },
            }
        )
        same = mbps(ours[dt_key])
        figures["same_input_ratio"] = same / mbps(dt)
        print(f"ours_mb_per_s {same:.3f} datatrove_mb_per_s {mbps(dt):.3f} same_input_ratio {same / mbps(dt):.2f}")
    else:
        print(f"ours_mb_per_s {mbps(ours['full']):.3f} datatrove_mb_per_s - same_input_ratio -")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
