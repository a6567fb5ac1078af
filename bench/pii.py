"""PII detection accuracy: `python -m bench.pii FILE.json [--reference]`.

FILE is in presidio-research format: a list of records with `full_text` and
`spans` (`entity_type`, `start_position`, `end_position`). Prints span recall
and precision per entity type and overall for the types the `pii` stage
covers (a gold span is found when a predicted span of the same type overlaps
it; a predicted span is correct when it overlaps a gold span of its type),
ending with `recall R precision P mb_per_s T`. `--reference` measures
presidio's own pattern recognizers over whole documents instead (the figure
the stage is compared with).

`python -m bench.pii --build-zh OUT.json` writes the Chinese test set
(tests/fixtures/pii/zh_synth.json): real sentences of the Chinese Debian
Reference with generated, valid resident ID and mobile numbers inserted
(seed 0), plus look-alikes that must stay (wrong check digits, non-mobile
11-digit numbers, dates, versions).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import time
from collections import Counter

import yaml

EVAL_TYPES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "CN_RESIDENT_ID"]


def reference_analyzer():
    """Presidio's predefined pattern recognizers for EVAL_TYPES over whole documents (blank spaCy,
    offline suffix list): what `AnalyzerEngine` gives without the stage's prefilter and additions."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    from stages.pii.presidio import LANGUAGE
    from stages.pii.recognizers import OfflineEmailRecognizer

    class BlankSpacyEngine(SpacyNlpEngine):  # presidio's own engine on a blank pipeline: no download
        def load(self) -> None:
            import spacy

            self.nlp = {LANGUAGE: spacy.blank(LANGUAGE)}

    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    for recognizer in (
        OfflineEmailRecognizer(extract),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        UsSsnRecognizer(),
    ):
        registry.add_recognizer(recognizer)
    engine = BlankSpacyEngine()
    engine.load()
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])
    entities = EVAL_TYPES[:-1]
    return lambda text: [(r.start, r.end, r.entity_type) for r in analyzer.analyze(text, LANGUAGE, entities)]


def stage_analyzer(**params):
    from stages.pii import PiiScrubber

    stage = PiiScrubber(**params)
    stage.setup()
    return lambda text: [(s.start, s.end, s.entity) for s in stage.find(text)]


def evaluate(records: list[dict], predict) -> tuple[dict, float]:
    """Per-type counts: gold found/total and predictions correct/total; and seconds spent predicting."""
    counts: dict = {t: Counter() for t in EVAL_TYPES}
    seconds = 0.0
    for record in records:
        text = record["full_text"]
        gold = [
            (s["start_position"], s["end_position"], s["entity_type"])
            for s in record["spans"]
            if s["entity_type"] in counts
        ]
        started = time.perf_counter()
        predicted = [p for p in predict(text) if p[2] in counts]
        seconds += time.perf_counter() - started
        for start, end, entity in gold:
            counts[entity]["gold"] += 1
            counts[entity]["found"] += any(e == entity and s < end and start < t for s, t, e in predicted)
        for start, end, entity in predicted:
            counts[entity]["predicted"] += 1
            counts[entity]["correct"] += any(e == entity and s < end and start < t for s, t, e in gold)
    return counts, seconds


def report(counts: dict, seconds: float, size: int) -> str:
    lines = ["type\trecall\tprecision\tgold\tpredicted"]
    total: Counter = Counter()
    for entity, c in counts.items():
        if c["gold"] or c["predicted"]:
            lines.append(
                f"{entity}\t{_ratio(c['found'], c['gold'])}\t{_ratio(c['correct'], c['predicted'])}\t"
                f"{c['gold']}\t{c['predicted']}"
            )
            total.update(c)
    lines.append(
        f"recall {_ratio(total['found'], total['gold'])} precision {_ratio(total['correct'], total['predicted'])} "
        f"mb_per_s {size / 1e6 / seconds:.3f}"
    )
    return "\n".join(lines)


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.4f}" if whole else "-"


# --- the Chinese test set -------------------------------------------------------------------

REGIONS = ["110101", "310104", "440305", "510107", "330106", "420111", "610113", "210102", "350203", "530102"]
MOBILE_PREFIXES = ["134", "135", "138", "139", "150", "152", "158", "176", "182", "187", "189", "199", "166"]
ID_TEMPLATES = ["身份证号码：{}", "身份证号{}", "公民身份号码为{}，", "（身份证：{}）", "证件号码 {} "]
PHONE_TEMPLATES = ["联系电话：{}", "手机{}", "请拨打 {} 咨询", "电话：{}。", "（手机号：{}）"]


def resident_id(rng: random.Random, valid: bool = True) -> str:
    from stages.pii.recognizers import CN_ID_CHECK, cn_id_check_character

    birth = f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = rng.choice(REGIONS) + birth + f"{rng.randint(0, 999):03d}"
    check = cn_id_check_character(body)
    if not valid:
        check = rng.choice([c for c in CN_ID_CHECK if c != check])
    return body + check


def mobile(rng: random.Random) -> str:
    number = rng.choice(MOBILE_PREFIXES) + f"{rng.randint(0, 99999999):08d}"
    style = rng.randrange(4)
    if style == 1:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if style == 2:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    if style == 3:
        return f"+86 {number}"
    return number


def decoy(rng: random.Random) -> str:
    """A labelled number that must stay: a wrong check character, a non-mobile 11-digit order
    number, a date, a version, an ISBN."""
    return rng.choice(
        [
            lambda: f"身份证号码（校验位错误）：{resident_id(rng, valid=False)}",
            lambda: f"订单号{12}{rng.randint(0, 999999999):09d}",
            lambda: f"日期 {rng.randint(2000, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            lambda: f"版本 {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}",
            lambda: f"ISBN 978-7-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}",
        ]
    )()


def chinese_sentences(path: str) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    # Paragraphs (the manual is hard-wrapped) of mostly Han characters, split at full stops;
    # tables, code and headings are left out.
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = "".join(line.strip() for line in paragraph.splitlines())
        han = len(re.findall(r"[\u4e00-\u9fff]", paragraph))
        if len(paragraph) >= 20 and han / len(paragraph) > 0.5:
            sentences += [s + "。" for s in paragraph.split("。") if len(s) >= 12]
    return sentences


def build_zh(source: str, n: int = 300, seed: int = 0) -> list[dict]:
    """Records of 1-3 real sentences with 0-2 inserted entities and a look-alike in some."""
    rng = random.Random(seed)
    sentences = chinese_sentences(source)
    records = []
    for _ in range(n):
        pieces = [rng.choice(sentences) for _ in range(rng.randint(1, 3))]
        inserts = []
        for _ in range(rng.randint(0, 2)):
            if rng.random() < 0.5:
                inserts.append(("CN_RESIDENT_ID", rng.choice(ID_TEMPLATES), resident_id(rng)))
            else:
                inserts.append(("PHONE_NUMBER", rng.choice(PHONE_TEMPLATES), mobile(rng)))
        if rng.random() < 0.4:
            inserts.append((None, "{}", decoy(rng)))
        text, spans = "", []
        for piece in pieces:
            text += piece
            if inserts and rng.random() < 0.7:
                entity, template, value = inserts.pop()
                before, _, after = template.partition("{}")
                start = len(text) + len(before)
                text += before + value + after
                if entity:
                    spans.append(
                        {
                            "entity_type": entity,
                            "entity_value": value,
                            "start_position": start,
                            "end_position": start + len(value),
                        }
                    )
        records.append({"full_text": text, "spans": spans})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="presidio-research JSON (full_text, spans)")
    parser.add_argument("--reference", action="store_true", help="presidio's pattern recognizers, whole documents")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a `pii` stage parameter (YAML value), e.g. --set private_ips=true",
    )
    parser.add_argument("--build-zh", metavar="OUT", help="write the Chinese test set to OUT and exit")
    parser.add_argument("--zh-source", default="../shared/data/zh/debian-reference.zh-cn.txt.gz")
    args = parser.parse_args(argv)
    if args.build_zh:
        with open(args.build_zh, "w", encoding="utf-8") as handle:
            json.dump(build_zh(args.zh_source), handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        return 0
    if not args.file:
        parser.error("FILE is required")
    with open(args.file, encoding="utf-8") as handle:
        records = json.load(handle)
    params = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.set)}
    predict = reference_analyzer() if args.reference else stage_analyzer(**params)
    counts, seconds = evaluate(records, predict)
    print(report(counts, seconds, sum(len(r["full_text"].encode()) for r in records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
