"""Look-alikes: number and address shapes that are not PII, recognised by their form or the word
before them (dates, year ranges, ISBNs, versions, prices, decimals, outline numbers), and
addresses that identify nobody (private IPs, example.org mail)."""

from __future__ import annotations

import ipaddress
import re

# Look-alikes: number shapes that are not PII, recognised by their form or the word before them.
DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# Decimal numbers a phone matcher takes for a trunk '0' + number: 0.3571428571, 325.318/0.000.
_DECIMALS = re.compile(r"[(-]*\d+\.\d+(?:[/ ]-?\d+\.\d+)*\)?")
# Domains reserved for examples (RFC 2606, 6761): user@example.org in a manual is nobody's address.
_EXAMPLE_DOMAIN = re.compile(
    r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test|invalid|localhost))$", re.IGNORECASE
)
_LINE_START = re.compile(r"(?:^|\n)[ \t]*$")
_DATE = re.compile(r"(\d{4})[-./ ](\d{1,2})[-./ ](\d{1,2})|(\d{1,2})[-./ ](\d{1,2})[-./ ](\d{2}|\d{4})")
_YEAR_RANGE = re.compile(r"(?:1[5-9]|20)\d\d\s*[-–/.]?\s*(?:1[5-9]|20)\d\d")
_DATE_SHAPES = re.compile(r"(?<!\d)(?:\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})|\d{4}-\d\d-\d\d)(?!\d)")
_YEAR_RANGES = re.compile(r"(?<!\d)(?:1[5-9]|20)\d\d[-–/](?:1[5-9]|20)\d\d(?!\d)")
_DENY_BEFORE = re.compile(
    r"(?:\bisbn(?:-1[03])?|\bissn|\bdoi|\bv|\bver\.?|\bversion|\brelease|\bbuild|\bpp?\.|"
    r"\bsection|§|\bchapter|\bfigure|\btable|[$€£¥₹])[\s:#]*$",
    re.IGNORECASE,
)


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
    return (
        _DENY_BEFORE.search(text, max(0, start - 16), start) is not None
        or _is_date(value)
        or _YEAR_RANGE.fullmatch(value) is not None
    )


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
    heading = text[end : end + 1] == "." and text[end + 1 : end + 2].isspace() and _LINE_START.search(text, 0, start)
    return not heading and not all(len(octet) == 1 for octet in value.split("/")[0].split("."))
