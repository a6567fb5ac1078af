"""The candidate prefilter: where in a text PII can start at all. Presidio over whole documents
runs ~80 KB/s per core, and almost no text can hold these entities; so RE2 (in pyarrow, C++)
finds each document's first and last candidate, Python's `re` the candidates between them, and
presidio analyses only a window around each."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.pii.lookalikes import digits_beyond_dates

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


def candidate_windows(
    text: str, first: int, last: int, entities: set[str], custom: list[tuple[str, re.Pattern]], margin: int
) -> list[tuple[int, int, set[str]]]:
    """Merged (start, end, entity types) regions of `text` that can hold one of `entities` (or a
    match of a `custom` (name, regex)), each candidate widened by `margin` characters to whole
    tokens; candidates are looked for from `first` to `last`."""
    hits = [
        (m.start(), m.end(), KIND_ENTITIES[m.lastgroup] & entities)
        for m in CANDIDATE.finditer(text, first, last + LOOKAHEAD)
        if m.lastgroup != "digits" or digits_beyond_dates(m[0]) >= 7
    ]
    hits += [(m.start(), m.end(), {name}) for name, regex in custom for m in regex.finditer(text)]
    windows: list[tuple[int, int, set[str]]] = []
    for start, end, kinds in sorted(hits):
        start, end = _token_edge(text, max(0, start - margin), -1), _token_edge(text, min(len(text), end + margin), 1)
        if windows and start <= windows[-1][1]:
            previous = windows[-1]
            windows[-1] = (previous[0], max(previous[1], end), previous[2] | kinds)
        elif kinds:
            windows.append((start, end, set(kinds)))
    return windows


def candidate_bounds(texts: pa.ChunkedArray) -> list[tuple[int, int] | None]:
    """Per text, the character range from its first candidate's start to its last one's end, or
    None when it has none (null texts too)."""
    first = pc.find_substring_regex(texts, CANDIDATE_RE2)
    hit = pc.fill_null(pc.greater_equal(first, 0), False)
    hits = texts.filter(hit)
    from_end = iter(pc.find_substring_regex(pc.utf8_reverse(hits), CANDIDATE_RE2_REVERSED).to_pylist())
    bounds: list[tuple[int, int] | None] = [None] * len(texts)
    for row, text, start in zip(
        np.flatnonzero(hit.to_numpy(zero_copy_only=False)), hits.to_pylist(), first.filter(hit).to_pylist()
    ):
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
