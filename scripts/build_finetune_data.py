"""Rebuild data/finetune/ (the SFT and preference slices `make finetune` trains on) from
../shared/data/sft, the LLaMA-Factory demo data (Apache-2.0).

    python scripts/build_finetune_data.py [--shared ../shared]

Records are copied verbatim, in file order; a record is taken when it is short enough for
the tiny model's 256-token context (character limits below, per language: the tokenizer
makes ~3.4 characters per English token and ~1.2 per Chinese one). Preference responses are
not limited: the trainer truncates them to `data.seq_len`. Deterministic: a rebuild gives
byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "data", "finetune")

# (source file, output file, records, max characters of the prompt, max characters in all)
SFT = [
    ("alpaca_en_demo.json", "alpaca_en.json", 200, None, 500),
    ("alpaca_zh_demo.json", "alpaca_zh.json", 200, None, 200),
]
DPO = [("dpo_en_demo.json", "dpo_en.json", 100, 600, None), ("dpo_zh_demo.json", "dpo_zh.json", 100, 200, None)]


def alpaca_chars(record: dict) -> tuple[int, int]:
    prompt = len(record["instruction"]) + len(record["input"])
    return prompt, prompt + len(record["output"])


def preference_chars(record: dict) -> tuple[int, int]:
    prompt = sum(len(message["value"]) for message in record["conversations"])
    return prompt, prompt + max(len(record["chosen"]["value"]), len(record["rejected"]["value"]))


def take(records: list[dict], count: int, max_prompt: int | None, max_total: int | None, measure) -> list[dict]:
    picked = []
    for record in records:
        prompt, total = measure(record)
        if (max_prompt is None or prompt <= max_prompt) and (max_total is None or total <= max_total):
            picked.append(record)
            if len(picked) == count:
                return picked
    raise SystemExit(f"only {len(picked)} records fit, {count} wanted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(REPO, "..", "shared"), help="the shared/ folder")
    args = parser.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    for specs, measure in ((SFT, alpaca_chars), (DPO, preference_chars)):
        for source, name, count, max_prompt, max_total in specs:
            with open(os.path.join(args.shared, "data", "sft", source), encoding="utf-8") as handle:
                records = json.load(handle)
            picked = take(records, count, max_prompt, max_total, measure)
            with open(os.path.join(OUT_DIR, name), "w", encoding="utf-8") as handle:
                json.dump(picked, handle, ensure_ascii=False, indent=1)
                handle.write("\n")
            print(f"data/finetune/{name}: {len(picked)} of {len(records)} records of {source}")


if __name__ == "__main__":
    main()
