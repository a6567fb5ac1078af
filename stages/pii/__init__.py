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

Modules: `presidio` (import and engine set-up), `recognizers`, `candidates` (the prefilter),
`lookalikes`, `stage` (PiiScrubber).
"""

from stages.pii.stage import PiiScrubber

__all__ = ["PiiScrubber"]
