"""PII scrubbing with presidio-analyzer's recognizers, at corpus speed.

Replaces emails, phone numbers, payment cards (Luhn), IBANs, IPv4/IPv6
addresses, US SSNs, Chinese resident ID numbers (checksum) and mainland
mobile numbers, plus regexes from the config, with typed placeholders
(`<EMAIL>`, `<PHONE>`, ...), and counts them per type (`pii_<type>` columns).
Documents are never dropped. PERSON/LOCATION from a spaCy NER model are
optional (`ner_model`, off by default; the model must be installed, nothing
is downloaded).

Presidio over whole documents runs ~80 KB/s per core. Almost no text can hold
these entities: every email has an '@', every number-like entity a run of 7+
digits, a dotted quad or an IBAN head, every IPv6 a '::' or three colons
around hex groups. So (1) RE2 through pyarrow finds each document's first and
last candidate at C++ speed, (2) Python `re` locates the candidates between
them, (3) presidio analyses only a window around each candidate, with the
recognizers of the entity types that candidate can start, (4) look-alikes
(dates, ISBNs, versions, prices, decimals, year ranges, outline numbers),
addresses that identify nobody (private IPs, example.org mail) are rejected
and overlaps resolved. Measured: >80x presidio's throughput, higher recall
(docs/BENCHMARKS.md, `python -m bench.pii_throughput`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import date

import sys
from contextlib import contextmanager
from typing import Any

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import NonNegativeInt, field_validator, model_validator


@contextmanager
def _without_deep_learning():
    """presidio imports transformers' pipeline, and thinc imports torch, whenever they are
    installed (the trainer needs both): ~8 s in every Ray worker, for engines we never use. A None
    entry in sys.modules makes such an optional import fail fast; modules a process has already
    imported cost nothing and are left alone. The entries are removed afterwards."""
    hidden = [name for name in ("transformers", "torch") if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        yield
    finally:
        for name in hidden:
            del sys.modules[name]


with _without_deep_learning():
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry, RecognizerResult
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                          IpRecognizer, PhoneRecognizer, SpacyRecognizer,
                                                          UsSsnRecognizer)

from stages.base import Fraction, Resources, Stage, Strict, make_params, set_column

PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "IP_ADDRESS": "<IP_ADDRESS>",
    "US_SSN": "<US_SSN>",
    "CN_RESIDENT_ID": "<ID_NUMBER>",
    "PERSON": "<PERSON>",
    "LOCATION": "<LOCATION>",
}
PATTERN_ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
                    "CN_RESIDENT_ID"]
NER_ENTITIES = ["PERSON", "LOCATION"]
LANGUAGE = "en"  # pattern recognizers do not depend on the language; presidio needs one name

# Candidate kinds and the entity types each can start. An email needs '@'; an IPv6 address '::' or
# three colons around hex groups; an IBAN its head (2 letters, 2 check digits, 4 alphanumerics);
# everything else 7+ digits joined by separators or a dotted quad: the superset every recognizer
# below stays inside. The IBAN head is tried first: in 'DE89 3704 0044 ...' the digits alone would
# otherwise win, and its window covers the digit run that follows.
CANDIDATE = re.compile(
    r"(?=[\d@:])(?:(?P<iban>(?<=[A-Za-z]{2})\d\d ?[A-Za-z0-9]{4})|(?P<digits>\d(?:[ \-.()/]{0,3}\d){6,})"
    r"|(?P<quad>\d{1,3}(?:\.\d{1,3}){3})|(?P<at>(?<=\w)@(?=\w))|(?P<colon>::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:))"
)
# The same superset in RE2 syntax (no look-arounds; \p{Nd} as Python's Unicode \d), and mirrored
# for reversed text: pyarrow runs them in C++ to find the first and the last candidate of each
# document, so Python's regex engine scans only what lies between (nothing in most documents).
_RE2_COMMON = r"\p{Nd}([ \-.()/]{0,3}\p{Nd}){6,}|\p{Nd}{1,3}(\.\p{Nd}{1,3}){3}|@|::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"
CANDIDATE_RE2 = _RE2_COMMON + r"|[A-Za-z]{2}\p{Nd}\p{Nd} ?[A-Za-z0-9]{4}"
CANDIDATE_RE2_REVERSED = _RE2_COMMON + r"|[A-Za-z0-9]{4} ?\p{Nd}\p{Nd}[A-Za-z]{2}"
LOOKAHEAD = 8  # characters past the last candidate that CANDIDATE's look-aheads may read
_DIGIT_ENTITIES = {"PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "US_SSN", "CN_RESIDENT_ID"}
KIND_ENTITIES = {
    "digits": _DIGIT_ENTITIES,
    "quad": {"IP_ADDRESS"},
    "iban": {"IBAN_CODE"} | _DIGIT_ENTITIES,
    "at": {"EMAIL_ADDRESS"},
    "colon": {"IP_ADDRESS"},
}
# Scripts written without spaces. Presidio's patterns rely on \b, which does not separate a digit
# from a Han character (both are \w): '电话13812345678' would not match and an email's local part
# would swallow the Chinese word before it. Windows are analysed with these letters blanked
# (same length, so offsets hold).
CJK_LETTERS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

# Whole words (presidio's substring mode would take "tel" in "hotel", "ring" in "during").
PHONE_CONTEXT = ["phone", "phones", "telephone", "tel", "mobile", "cell", "cellphone", "call", "fax", "desk",
                 "office", "contact", "whatsapp", "sms", "hotline", "dial", "answering", "messages"]
CARD_CONTEXT = ["card", "credit", "debit", "visa", "mastercard", "amex", "cc", "discover", "jcb", "maestro",
                "diners", "unionpay"]


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# Issuer prefixes (IIN) and card lengths of the networks that print such numbers; a Luhn-valid
# number outside this table is only a card with a context word ("card", "visa", ...) nearby.
CARD_NETWORKS = [
    (r"4", range(13, 20)),  # Visa
    (r"5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720", (16,)),  # Mastercard
    (r"3[47]", (15,)),  # American Express
    (r"6011|64[4-9]|65", range(16, 20)),  # Discover
    (r"352[89]|35[3-8]\d", range(16, 20)),  # JCB
    (r"2131|1800", (15,)),  # JCB (15 digits)
    (r"30[0-5]|3095|36|3[89]", range(14, 20)),  # Diners Club
    (r"50|5[6-9]|6\d", range(12, 20)),  # Maestro, UnionPay (62)
]
CARD_PREFIX = [(re.compile(prefix), lengths) for prefix, lengths in CARD_NETWORKS]


class CardRecognizer(CreditCardRecognizer):
    """Presidio's card recognizer, extended to every network prefix and 12-19 digits (presidio's
    pattern misses 2-series Mastercard, 19-digit Visa, Maestro, 15-digit JCB)."""

    PATTERNS = [Pattern("card 12-19 digits", r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-]|[.,]\d)", 0.1)]

    def __init__(self):
        super().__init__(patterns=self.PATTERNS, context=CARD_CONTEXT)

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = re.sub(r"\D", "", pattern_text)
        if not luhn_valid(digits) or len(set(digits)) == 1:
            return False
        known = any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in CARD_PREFIX)
        return True if known else None  # None keeps the weak score: a context word must confirm it


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with tldextract's bundled suffix list: the default extractor
    fetches the public-suffix list over the network on first use."""

    def __init__(self, extract):
        super().__init__()
        self.extract = extract

    def validate_result(self, pattern_text: str) -> bool:
        return self.extract(pattern_text).fqdn != ""


class AnyCaseIbanRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer (checksum + per-country format), also for lower-case IBANs."""

    def __init__(self):
        super().__init__(regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE)

    def validate_result(self, pattern_text: str):
        return super().validate_result(pattern_text.upper())


class CnResidentIdRecognizer(PatternRecognizer):
    """Resident identity card numbers of mainland China (GB 11643-1999): region code, birth date,
    sequence number, ISO 7064 MOD 11-2 check character."""

    WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    CHECK = "10X98765432"

    def __init__(self):
        pattern = r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?!\d)"
        super().__init__(supported_entity="CN_RESIDENT_ID", patterns=[Pattern("cn id 18", pattern, 0.5)],
                         context=["身份证", "id"], name="CnResidentIdRecognizer")

    def validate_result(self, pattern_text: str) -> bool:
        body, check = pattern_text[:17], pattern_text[17].upper()
        if self.CHECK[sum(int(d) * w for d, w in zip(body, self.WEIGHTS)) % 11] != check:
            return False
        try:
            date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
        except ValueError:
            return False
        return True


class CnMobileRecognizer(PatternRecognizer):
    """Mainland China mobile numbers (1[3-9]x xxxx xxxx, optional +86), checked against
    libphonenumber's CN mobile ranges."""

    def __init__(self):
        pattern = r"(?<![\d+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"
        super().__init__(supported_entity="PHONE_NUMBER", patterns=[Pattern("cn mobile", pattern, 0.5)],
                         context=PHONE_CONTEXT, name="CnMobileRecognizer")

    def validate_result(self, pattern_text: str) -> bool:
        number = phonenumbers.parse(re.sub(r"^(\+|00)86", "", re.sub(r"[ -]", "", pattern_text)), "CN")
        kind = phonenumbers.number_type(number)
        return phonenumbers.is_valid_number(number) and kind in (
            phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


class RunPhoneRecognizer(PhoneRecognizer):
    """Presidio's libphonenumber recognizer, run on each run of 7+ digits instead of the whole text
    (libphonenumber's matcher parses every digit group, years and prices too, once per region:
    ~3 ms per 100 characters), stopping at the first region that accepts the number. A bare digit
    string ("12357057975": order numbers, IDs) is valid in some national plan far too often to stand
    alone: it is left to the weak "national plain" pattern, and one the matcher finds inside a
    longer run gets the same weak score; only a context word lifts them over the threshold."""

    WEAK = 0.1

    # One separator between digits, as printed numbers have ("11/02/2006 - 8" and "1959.  1928"
    # are a date and two years, not one number).
    RUN = re.compile(r"\d(?:(?:[-./ ]|\) ?| ?\()?\d){6,}(?:\s?(?:x|ext\.?)\s?\d{1,5})?")
    REACH = 3  # characters around the run: a leading '+' or '(' and the matcher's boundary checks

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        results = []
        for run in self.RUN.finditer(text):
            bare = run[0].isdigit() and text[run.start() - 1:run.start()] not in ("+", "(")
            if bare or lookalike(text, run.start(), run.end()) or _QUAD.fullmatch(run[0]):
                continue  # weak anyway, rejected by `plausible`, or taken by the IP recognizer
            offset = max(0, run.start() - self.REACH)
            piece = text[offset:run.end() + self.REACH]
            for region in self.supported_regions:
                matches = list(phonenumbers.PhoneNumberMatcher(piece, region, leniency=self.leniency))
                if matches:
                    for match in matches:
                        match.start, match.end = match.start + offset, match.end + offset
                        result = self._get_recognizer_result(match, text, region, nlp_artifacts)
                        if match.raw_string.isdigit():
                            result.score = self.WEAK
                        results.append(result)
                    break
        return results


def phone_patterns() -> list[Pattern]:
    """Formats libphonenumber cannot validate without knowing the country (a national number in
    groups, '(37) 788-063'): weak, so a context word ("phone", "call", "fax", ...) must confirm them.
    An international '+CC ...' number with 8-15 digits stands on its own."""
    extension = r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
    end = r"(?!\w|-\d|[.,]\d)"
    return [
        Pattern("international", rf"(?<![\w+])\+\d(?:[ .\-()]{{0,2}}\d){{7,14}}{extension}{end}", 0.5),
        Pattern("national grouped", rf"(?<![\w+.-])(?:\(\d{{1,4}}\)[ .-]?)?\d{{2,5}}(?:[ .-]\d{{2,8}}){{1,4}}{extension}{end}", 0.1),
        Pattern("national", rf"(?<![\w+.-])\(\d{{1,4}}\)[ .-]?\d{{3,8}}{extension}{end}", 0.1),
        Pattern("national plain", rf"(?<![\w+.-])0?\d{{9,10}}{end}", 0.1),
    ]


# Look-alikes: number shapes that are not PII, recognised by their form or the word before them.
_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# Decimal numbers a phone matcher takes for a trunk '0' + number: 0.3571428571, 325.318/0.000.
_DECIMALS = re.compile(r"[(-]*\d+\.\d+(?:[/ ]-?\d+\.\d+)*\)?")
# Domains reserved for examples (RFC 2606, 6761): user@example.org in a manual is nobody's address.
_EXAMPLE_DOMAIN = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test|invalid|localhost))$",
                             re.IGNORECASE)
_LINE_START = re.compile(r"(?:^|\n)[ \t]*$")
_DATE = re.compile(r"(\d{4})[-./ ](\d{1,2})[-./ ](\d{1,2})|(\d{1,2})[-./ ](\d{1,2})[-./ ](\d{2}|\d{4})")
_YEAR_RANGE = re.compile(r"(?:1[5-9]|20)\d\d\s*[-–/.]?\s*(?:1[5-9]|20)\d\d")
_DATE_SHAPES = re.compile(r"(?<!\d)(?:\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})|\d{4}-\d\d-\d\d)(?!\d)")
_YEAR_RANGES = re.compile(r"(?<!\d)(?:1[5-9]|20)\d\d[-–/](?:1[5-9]|20)\d\d(?!\d)")
_DENY_BEFORE = re.compile(r"(?:\bisbn(?:-1[03])?|\bissn|\bdoi|\bv|\bver\.?|\bversion|\brelease|\bbuild|\bpp?\.|"
                          r"\bsection|§|\bchapter|\bfigure|\btable|[$€£¥₹])[\s:#]*$", re.IGNORECASE)


def _is_date(value: str) -> bool:
    match = _DATE.fullmatch(value)
    if not match:
        return False
    year, month, day = (match[1], match[2], match[3]) if match[1] else (match[6], match[5], match[4])
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        year, month, day = year, day, month  # month-first (US) order
    return 1 <= int(month) <= 12 and 1 <= int(day) <= 31


def lookalike(text: str, start: int, end: int) -> bool:
    """A date, a year range, or a number after an ISBN/DOI/version/page/section word or a currency sign."""
    value = text[start:end]
    return (_DENY_BEFORE.search(text, max(0, start - 16), start) is not None or _is_date(value)
            or _YEAR_RANGE.fullmatch(value) is not None)


def digits_beyond_dates(run: str) -> int:
    """Digits of a candidate run outside dates and year ranges: '11/02/2006 - 8' has 1. Timestamps
    are the most common digit runs of web text; with fewer than 7 digits left, no recognizer's
    match in the run would pass `plausible`, so it needs no window."""
    run = _DATE_SHAPES.sub(lambda m: "" if _is_date(m[0]) else m[0], _YEAR_RANGES.sub("", run))
    return sum(c.isdigit() for c in run)


def plausible(entity: str, text: str, start: int, end: int, private_ips: bool = False) -> bool:
    """False for spans that have the shape of an entity but are a look-alike (see `lookalike`),
    a phone number of fewer than 7 digits or a decimal number, an IP address that is not
    personal, or an email address at a domain reserved for examples."""
    value = text[start:end]
    if entity == "EMAIL_ADDRESS":
        return not _EXAMPLE_DOMAIN.search(value)
    if entity in ("PERSON", "LOCATION"):
        return True
    if lookalike(text, start, end):
        return False
    if entity == "PHONE_NUMBER":
        digits = sum(c.isdigit() for c in re.sub(r"(?:x|ext\.?)\s?\d+$", "", value))
        return 7 <= digits <= 15 and not _DECIMALS.fullmatch(value)
    if entity == "IP_ADDRESS":
        return _personal_ip(text, start, end, private_ips)
    return True


def _personal_ip(text: str, start: int, end: int, private_ips: bool) -> bool:
    """Only a globally routable unicast address can point at a person: loopback, private,
    link-local, multicast and documentation ranges (127.0.0.1, 192.168.0.1, ::1, ff02::1 in every
    network how-to) stay. An outline
    number opening a line ('12.1.2.3. Title') or a quad of single digits (1.2.3.4, a version or
    section far more often than an address) is not an address."""
    value = text[start:end]
    try:
        address = ipaddress.ip_interface(value).ip
        if not private_ips and (not address.is_global or address.is_multicast):
            return False
    except ValueError:
        return False
    if ":" in value:
        return True
    heading = text[end:end + 1] == "." and text[end + 1:end + 2].isspace() and _LINE_START.search(text, 0, start)
    return not heading and not all(len(octet) == 1 for octet in value.split("/")[0].split("."))


def _one_per_calling_code(regions: list[str]) -> list[str]:
    """US and CA share +1 and libphonenumber validates a +1 number parsed in either region
    against the same plan: trying both doubles the cost and finds nothing more."""
    seen, kept = set(), []
    for region in regions:
        code = phonenumbers.country_code_for_region(region)
        if code not in seen:
            seen.add(code)
            kept.append(region)
    return kept


def build_recognizers(entities: list[str], phone_regions: list[str], extract) -> list:
    recognizers = {
        "EMAIL_ADDRESS": [OfflineEmailRecognizer(extract)],
        "PHONE_NUMBER": [RunPhoneRecognizer(supported_regions=_one_per_calling_code(phone_regions), context=PHONE_CONTEXT),
                         PatternRecognizer("PHONE_NUMBER", patterns=phone_patterns(), context=PHONE_CONTEXT,
                                           name="PhonePatternRecognizer"),
                         CnMobileRecognizer()],
        "CREDIT_CARD": [CardRecognizer()],
        "IBAN_CODE": [AnyCaseIbanRecognizer()],
        "IP_ADDRESS": [IpRecognizer()],
        "US_SSN": [UsSsnRecognizer()],
        "CN_RESIDENT_ID": [CnResidentIdRecognizer()],
    }
    return [r for entity in entities for r in recognizers[entity]]


class _BlankSpacyEngine(SpacyNlpEngine):
    """spaCy for tokens only (presidio's context words): a blank pipeline, so no model is loaded
    or downloaded. Blank pipelines have no lemmatizer; the lower-cased word stands in for it.
    Context words are never stop words (spaCy's English list has "call")."""

    def __init__(self, model: str | None = None, context_words: set[str] = frozenset()):
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": model or "blank"}])
        self.model = model
        self.context_words = context_words

    def load(self) -> None:
        import spacy

        # A model name or path; spacy.load never downloads (presidio's own load would try).
        nlp = spacy.load(self.model) if self.model else spacy.blank(LANGUAGE)
        self.nlp = {LANGUAGE: nlp}

    def _doc_to_nlp_artifact(self, doc, language) -> NlpArtifacts:
        if self.model:
            return super()._doc_to_nlp_artifact(doc, language)
        # Token texts rather than the Doc: presidio's context search walks `tokens` once per
        # result, and each step over a Doc builds a Token object (a fifth of the stage's time).
        words = [(token.idx, token.text, token.lower_) for token in doc]
        return NlpArtifacts(entities=[], tokens=[w[1] for w in words], tokens_indices=[w[0] for w in words],
                            lemmas=[w[2] for w in words], nlp_engine=self, language=language)

    def is_stopword(self, word: str, language: str) -> bool:
        return word not in self.context_words and super().is_stopword(word, language)


class CustomRecognizer(Strict):
    """{name: EMPLOYEE_ID, regex: 'EMP-\\d{6}', placeholder: '<EMPLOYEE_ID>', score: 1.0, context: [..]}"""

    name: str
    regex: str
    placeholder: str | None = None  # default <NAME>
    score: Fraction = 1.0
    context: list[str] | None = None  # words that raise the score when near

    @model_validator(mode="before")
    @classmethod
    def _named(cls, spec: Any) -> Any:
        if isinstance(spec, dict) and not {"name", "regex"} <= set(spec):
            raise ValueError("needs name and regex (optional: placeholder, score, context)")
        return spec

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return regex


class PiiParams(Strict):
    entities: list[str] = list(PATTERN_ENTITIES)
    placeholders: dict[str, str] = {}  # entity type -> replacement
    custom: list[CustomRecognizer] = []
    score_threshold: Fraction = 0.4  # presidio scores: weak patterns reach it only with a context word
    # National formats libphonenumber validates without a context word. Presidio's default adds IL,
    # IN, CA (same plan as US) and BR, whose permissive plans accept year pairs such as "1987.2004";
    # each region costs as much as all other recognizers together.
    phone_regions: list[str] = ["US", "GB", "DE", "FR"]
    window_chars: NonNegativeInt = 32  # text analysed on each side of a candidate (context words live there)
    prefilter: bool = True  # false: presidio over whole documents (slow; the benchmark's reference)
    # Also replace loopback, private, link-local, multicast and documentation IP addresses
    # (127.0.0.1, 192.168.0.1 in every network how-to; they identify nobody on their own).
    private_ips: bool = False
    ner_model: str | None = None  # installed spaCy model name or path for PERSON/LOCATION
    ner_langs: list[str] = ["en"]  # `lang` values NER runs on

    @field_validator("entities")
    @classmethod
    def _known(cls, entities: list[str]) -> list[str]:
        if set(entities) - set(PATTERN_ENTITIES):
            raise ValueError(f"unknown entities {sorted(set(entities) - set(PATTERN_ENTITIES))}; "
                             f"available: {PATTERN_ENTITIES}")
        return entities

    @property
    def types(self) -> list[str]:
        """Every entity type replaced: the pattern entities, the custom ones, NER's."""
        return self.entities + [spec.name for spec in self.custom] + (NER_ENTITIES if self.ner_model else [])

    @model_validator(mode="after")
    def _placeholders_known(self) -> PiiParams:
        if set(self.placeholders) - set(self.types):
            raise ValueError(f"placeholders for unknown types {sorted(set(self.placeholders) - set(self.types))}")
        return self


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str
    score: float


class PiiScrubber(Stage):
    """Replaces PII in `text` with typed placeholders; `pii_<type>` counts what was replaced.

    Every row is scrubbed, also rows an earlier stage removed: their text is written to
    rejects/ (and quarantine/), which are outputs too."""

    name = "pii"
    reads = ("text", "lang")
    resources = Resources(num_cpus=1, memory_mb=500)

    def __init__(self, **params):
        self.params = make_params(PiiParams, params)
        p = self.params
        self.custom = [(spec.name, re.compile(spec.regex), spec.score, spec.context) for spec in p.custom]
        types = p.types
        self.placeholders = {t: PLACEHOLDERS.get(t, f"<{t}>") for t in types}
        self.placeholders.update({spec.name: spec.placeholder for spec in p.custom if spec.placeholder is not None})
        self.placeholders.update(p.placeholders)
        self.writes = {"text": pa.string(), **{f"pii_{t.lower()}": pa.int32() for t in types}}
        self.summed = tuple(name for name in self.writes if name != "text")
        self.analyzer = None
        self.ner_analyzer = None

    def setup(self) -> None:
        import tldextract

        # Recognizers log the text they fail to validate: keep PII out of worker logs.
        logging.getLogger("presidio-analyzer").setLevel(logging.CRITICAL)
        extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        recognizers = build_recognizers(self.params.entities, self.params.phone_regions, extract)
        recognizers += [PatternRecognizer(name, patterns=[Pattern(name, regex.pattern, score)], context=context,
                                          name=f"custom:{name}") for name, regex, score, context in self.custom]
        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        for recognizer in recognizers:
            registry.add_recognizer(recognizer)
        engine = _BlankSpacyEngine(context_words={w.lower() for r in recognizers for w in r.context or []})
        engine.load()
        # Labels often follow a number ("28-64-66-98 office"); presidio counts the number's own
        # tokens in the suffix, hence 5.
        enhancer = LemmaContextAwareEnhancer(context_prefix_count=5, context_suffix_count=5,
                                             context_matching_mode="whole_word")
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE],
                                       context_aware_enhancer=enhancer)
        if self.params.ner_model:
            ner_engine = _BlankSpacyEngine(self.params.ner_model)
            ner_engine.load()
            ner_registry = RecognizerRegistry(supported_languages=[LANGUAGE])
            ner_registry.add_recognizer(SpacyRecognizer(supported_entities=NER_ENTITIES))
            self.ner_analyzer = AnalyzerEngine(registry=ner_registry, nlp_engine=ner_engine,
                                               supported_languages=[LANGUAGE])

    def process(self, batch: pa.Table) -> pa.Table:
        if self.analyzer is None:
            self.setup()
        texts = batch["text"]
        langs = batch["lang"].to_pylist() if "lang" in batch.column_names else [None] * batch.num_rows
        bounded = self.params.prefilter and not self.custom and not self.ner_analyzer
        bounds = candidate_bounds(texts) if bounded else [(0, None)] * batch.num_rows
        counts = {t: [0] * batch.num_rows for t in self.placeholders}
        out = []
        for row, (text, lang, bound) in enumerate(zip(texts.to_pylist(), langs, bounds)):
            if not text or bound is None:
                out.append(text)
                continue
            spans = self.find(text, lang, *bound)
            for span in spans:
                counts[span.entity][row] += 1
            out.append(self.replace(text, spans))
        batch = set_column(batch, "text", pa.array(out, pa.string()))
        for entity, values in counts.items():
            batch = set_column(batch, f"pii_{entity.lower()}", pa.array(values, pa.int32()))
        return batch

    def find(self, text: str, lang: str | None = None, first: int = 0, last: int | None = None) -> list[Span]:
        """Non-overlapping PII spans of `text`, in order; candidates are looked for from `first`
        to `last` (see `candidate_bounds`)."""
        if self.analyzer is None:
            self.setup()
        spans = []
        for start, end, entities in self._windows(text, first, len(text) if last is None else last):
            window = CJK_LETTERS.sub(" ", text[start:end])
            for result in self.analyzer.analyze(window, language=LANGUAGE, entities=sorted(entities),
                                                score_threshold=self.params.score_threshold):
                spans.append(self._span(result, start))
        if self.ner_analyzer and (lang is None or lang in self.params.ner_langs):
            spans += [self._span(r, 0) for r in self.ner_analyzer.analyze(text, language=LANGUAGE, entities=NER_ENTITIES)]
        spans = [s for s in spans if plausible(s.entity, text, s.start, s.end, self.params.private_ips)]
        return resolve_overlaps(spans)

    @staticmethod
    def _span(result: RecognizerResult, offset: int) -> Span:
        return Span(result.start + offset, result.end + offset, result.entity_type, result.score)

    def _windows(self, text: str, first: int, last: int) -> list[tuple[int, int, set[str]]]:
        """Merged (start, end, entity types) regions of `text` that can hold PII."""
        everything = set(self.params.entities) | {name for name, *_ in self.custom}
        if not self.params.prefilter:
            return [(0, len(text), everything)]
        margin = self.params.window_chars
        hits = [(m.start(), m.end(), KIND_ENTITIES[m.lastgroup] & everything)
                for m in CANDIDATE.finditer(text, first, last + LOOKAHEAD)
                if m.lastgroup != "digits" or digits_beyond_dates(m[0]) >= 7]
        hits += [(m.start(), m.end(), {name}) for name, regex, *_ in self.custom for m in regex.finditer(text)]
        windows: list[tuple[int, int, set[str]]] = []
        for start, end, entities in sorted(hits):
            start, end = _token_edge(text, max(0, start - margin), -1), _token_edge(text, min(len(text), end + margin), 1)
            if windows and start <= windows[-1][1]:
                last = windows[-1]
                windows[-1] = (last[0], max(last[1], end), last[2] | entities)
            elif entities:
                windows.append((start, end, set(entities)))
        return windows

    def replace(self, text: str, spans: list[Span]) -> str:
        parts, position = [], 0
        for span in spans:
            parts += [text[position:span.start], self.placeholders[span.entity]]
            position = span.end
        parts.append(text[position:])
        return "".join(parts)


def candidate_bounds(texts: pa.ChunkedArray) -> list[tuple[int, int] | None]:
    """Per text, the character range from its first candidate's start to its last one's end, or
    None when it has none (null texts too)."""
    first = pc.find_substring_regex(texts, CANDIDATE_RE2)
    hit = pc.fill_null(pc.greater_equal(first, 0), False)
    hits = texts.filter(hit)
    from_end = iter(pc.find_substring_regex(pc.utf8_reverse(hits), CANDIDATE_RE2_REVERSED).to_pylist())
    bounds: list[tuple[int, int] | None] = [None] * len(texts)
    for row, text, start in zip(np.flatnonzero(hit.to_numpy(zero_copy_only=False)), hits.to_pylist(),
                                first.filter(hit).to_pylist()):
        data = text.encode()
        end = len(data) - next(from_end)  # byte offsets; the reversed text's counts from the end
        if not text.isascii():
            start, end = len(data[:start].decode()), len(data[:end].decode())
        bounds[row] = (start, end)
    return bounds


def _token_edge(text: str, position: int, step: int, limit: int = 64) -> int:
    """Move a window edge outwards to whitespace or a CJK letter, so no token (a number, an email)
    is cut; a token longer than `limit` is cut."""
    while 0 < position < len(text) and limit:
        char = text[position - (step < 0)]
        if char.isspace() or CJK_LETTERS.match(char):
            break
        position += step
        limit -= 1
    return position


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the highest-scoring, then longest, span where spans overlap (a card number also
    parses as a phone number; a validated card wins)."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= k.start or k.end <= span.start for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
