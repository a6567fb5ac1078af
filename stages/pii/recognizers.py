"""Presidio recognizers for the pattern entities: presidio's own, extended where they miss
(card networks, lower-case IBANs, phone numbers in runs of digits), and Chinese resident IDs and
mobile numbers."""

from __future__ import annotations

import re
from datetime import date

import phonenumbers

from stages.pii.lookalikes import DOTTED_QUAD, lookalike
from stages.pii.presidio import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    Pattern,
    PatternRecognizer,
    PhoneRecognizer,
    RecognizerResult,
    UsSsnRecognizer,
)

PATTERN_ENTITIES = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "CN_RESIDENT_ID",
]

# Whole words (presidio's substring mode would take "tel" in "hotel", "ring" in "during").
PHONE_CONTEXT = [
    "phone",
    "phones",
    "telephone",
    "tel",
    "mobile",
    "cell",
    "cellphone",
    "call",
    "fax",
    "desk",
    "office",
    "contact",
    "whatsapp",
    "sms",
    "hotline",
    "dial",
    "answering",
    "messages",
]
CARD_CONTEXT = [
    "card",
    "credit",
    "debit",
    "visa",
    "mastercard",
    "amex",
    "cc",
    "discover",
    "jcb",
    "maestro",
    "diners",
    "unionpay",
]


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


CN_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CN_ID_CHECK = "10X98765432"  # by weighted sum modulo 11


def cn_id_check_character(body: str) -> str:
    """The check character of a resident ID number's first 17 digits (ISO 7064 MOD 11-2)."""
    return CN_ID_CHECK[sum(int(digit) * weight for digit, weight in zip(body, CN_ID_WEIGHTS)) % 11]


class CnResidentIdRecognizer(PatternRecognizer):
    """Resident identity card numbers of mainland China (GB 11643-1999): region code, birth date,
    sequence number, ISO 7064 MOD 11-2 check character."""

    def __init__(self):
        pattern = r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?!\d)"
        super().__init__(
            supported_entity="CN_RESIDENT_ID",
            patterns=[Pattern("cn id 18", pattern, 0.5)],
            context=["身份证", "id"],
            name="CnResidentIdRecognizer",
        )

    def validate_result(self, pattern_text: str) -> bool:
        body, check = pattern_text[:17], pattern_text[17].upper()
        if cn_id_check_character(body) != check:
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
        super().__init__(
            supported_entity="PHONE_NUMBER",
            patterns=[Pattern("cn mobile", pattern, 0.5)],
            context=PHONE_CONTEXT,
            name="CnMobileRecognizer",
        )

    def validate_result(self, pattern_text: str) -> bool:
        number = phonenumbers.parse(re.sub(r"^(\+|00)86", "", re.sub(r"[ -]", "", pattern_text)), "CN")
        kind = phonenumbers.number_type(number)
        return phonenumbers.is_valid_number(number) and kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )


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
            bare = run[0].isdigit() and text[run.start() - 1 : run.start()] not in ("+", "(")
            if bare or lookalike(text, run.start(), run.end()) or DOTTED_QUAD.fullmatch(run[0]):
                continue  # weak anyway, rejected by `plausible`, or taken by the IP recognizer
            offset = max(0, run.start() - self.REACH)
            piece = text[offset : run.end() + self.REACH]
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
        Pattern(
            "national grouped",
            rf"(?<![\w+.-])(?:\(\d{{1,4}}\)[ .-]?)?\d{{2,5}}(?:[ .-]\d{{2,8}}){{1,4}}{extension}{end}",
            0.1,
        ),
        Pattern("national", rf"(?<![\w+.-])\(\d{{1,4}}\)[ .-]?\d{{3,8}}{extension}{end}", 0.1),
        Pattern("national plain", rf"(?<![\w+.-])0?\d{{9,10}}{end}", 0.1),
    ]


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
        "PHONE_NUMBER": [
            RunPhoneRecognizer(supported_regions=_one_per_calling_code(phone_regions), context=PHONE_CONTEXT),
            PatternRecognizer(
                "PHONE_NUMBER", patterns=phone_patterns(), context=PHONE_CONTEXT, name="PhonePatternRecognizer"
            ),
            CnMobileRecognizer(),
        ],
        "CREDIT_CARD": [CardRecognizer()],
        "IBAN_CODE": [AnyCaseIbanRecognizer()],
        "IP_ADDRESS": [IpRecognizer()],
        "US_SSN": [UsSsnRecognizer()],
        "CN_RESIDENT_ID": [CnResidentIdRecognizer()],
    }
    return [r for entity in entities for r in recognizers[entity]]
