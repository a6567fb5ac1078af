import json
import os
import socket

import pyarrow as pa
import pytest

from bench.pii import evaluate, resident_id
from stages.pii import PiiScrubber
from stages.pii.candidates import CANDIDATE, LOOKAHEAD, candidate_bounds
from stages.pii.recognizers import luhn_valid
from tests.helpers import FIXTURES, batch, fixture_text, reasons

# (text, entity type, the value that must disappear). Numbers are test/documentation values:
# Visa test card, the IBAN of the ISO 13616 example, public DNS resolver addresses.
ENGLISH = [
    ("Write to jane.doe@fastmail.com for details.", "EMAIL_ADDRESS", "jane.doe@fastmail.com"),
    ("Call our London office on +44 20 7946 0958 today.", "PHONE_NUMBER", "+44 20 7946 0958"),
    ("For bookings call (212) 555-0187.", "PHONE_NUMBER", "(212) 555-0187"),
    ("Phone: 0487 98 11 92", "PHONE_NUMBER", "0487 98 11 92"),
    ("Paid with card 4111 1111 1111 1111 yesterday.", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("My Mastercard 2221000000000009 expired.", "CREDIT_CARD", "2221000000000009"),
    ("Transfer to DE89 3704 0044 0532 0130 00 please.", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ("my iban is gb82west12345698765432", "IBAN_CODE", "gb82west12345698765432"),
    ("Blocked requests from 185.199.108.153 all night.", "IP_ADDRESS", "185.199.108.153"),
    ("The host 2606:4700:4700::1111 answered.", "IP_ADDRESS", "2606:4700:4700::1111"),
    ("Her SSN: 536-90-4399 was on the form.", "US_SSN", "536-90-4399"),
]
ID = resident_id(__import__("random").Random(7))
CHINESE = [
    (f"我的身份证号码是{ID}，请核对。", "CN_RESIDENT_ID", ID),
    (f"身份证：{ID[:-1]}{'X' if ID[-1] != 'X' else '0'}", None, None),  # only the valid one counts
    ("联系电话13812345678，工作日可拨打。", "PHONE_NUMBER", "13812345678"),
    ("手机：+86 139 1234 5678。", "PHONE_NUMBER", "+86 139 1234 5678"),
    ("邮箱zhang.wei@example.cn欢迎来信", "EMAIL_ADDRESS", "zhang.wei@example.cn"),
]
# Number shapes that are not PII: the stage must leave these texts byte-identical.
LOOKALIKES = [
    "ISBN 978-0-306-40615-7 and ISBN-10 0-306-40615-2 are the same book.",
    "Released on 2023-01-15, updated 12/05/2019 and 20.11.1945.",
    "Upgrade to version 1.2.3.4 or v2.10.1 now; see section 4.3.2.1.",
    "The price is $1,299.99 or € 1 234 567 for the fleet, 45.50 USD per unit.",
    "commit 3f4e5d6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4, sha256 "
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "Card-like but Luhn-invalid: 4111 1111 1111 1112.",
    "He ruled 1997-2005 and again 1987.2004, pp. 721-742.",
    "int buffer[1048576]; x = 0x7fffffff; y = 12:30:45;",
    "127.0.0.1 localhost\n::1 ip6-localhost\nAddress=192.168.0.10/24\nGateway=10.0.0.1",
    "12.1.2.3.\u00a0Compiling and installing\nsee 2001:db8::1 in the examples, mDNS on ff02::fb",
    "$ ssh username@example.org; git config user.email you@mail.example; C = arccos(-0.3571428571)",
    "rtt min/avg/max/mdev = 325.318/325.318/325.318/0.000 ms",
    "Population 8,336,817 (2019), area 783.8 km2, 1 1.22 999 ratio.",
    "订单号12357057975已发货，版本 3.9.3。",
]


@pytest.fixture(scope="module")
def stage():
    stage = PiiScrubber()
    stage.setup()
    return stage


@pytest.mark.parametrize("text,entity,value", ENGLISH + CHINESE)
def test_each_type_is_replaced_and_counted(stage, text, entity, value):
    out = stage.process(batch([text]))
    scrubbed = out["text"][0].as_py()
    counts = {c.removeprefix("pii_").upper(): out[c][0].as_py() for c in out.column_names if c.startswith("pii_")}
    if entity is None:
        assert scrubbed == text and not any(counts.values())
        return
    assert value not in scrubbed
    assert stage.placeholders[entity] in scrubbed
    assert counts == {t: int(t == entity) for t in counts}
    # Only the value changed: the words around it are intact.
    before, _, after = text.partition(value)
    assert scrubbed == before + stage.placeholders[entity] + after


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_left_alone(stage, text):
    out = stage.process(batch([text]))
    assert out["text"][0].as_py() == text
    assert all(out[c][0].as_py() == 0 for c in out.column_names if c.startswith("pii_"))


def test_invalid_checksums_are_not_pii():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    invalid_id = ID[:-1] + ("0" if ID[-1] != "0" else "1")
    out = PiiScrubber().process(batch([f"身份证号{invalid_id}", "card 4111 1111 1111 1112"]))
    assert out["text"].to_pylist() == [f"身份证号{invalid_id}", "card 4111 1111 1111 1112"]


def test_chinese_fixture_every_value_gone_and_decoys_kept(stage):
    with open(os.path.join(FIXTURES, "pii", "zh_synth.json"), encoding="utf-8") as handle:
        records = json.load(handle)
    counts, _ = evaluate(records, lambda text: [(s.start, s.end, s.entity) for s in stage.find(text)])
    found = sum(c["found"] for c in counts.values())
    correct = sum(c["correct"] for c in counts.values())
    assert found == sum(c["gold"] for c in counts.values()) > 150
    assert correct == sum(c["predicted"] for c in counts.values())
    out = stage.process(batch([r["full_text"] for r in records]))["text"].to_pylist()
    for record, scrubbed in zip(records, out):
        assert not any(span["entity_value"] in scrubbed for span in record["spans"])


def test_prefilter_finds_what_whole_document_analysis_finds(stage):
    whole = PiiScrubber(prefilter=False)
    texts = [t for t, *_ in ENGLISH + CHINESE] + LOOKALIKES + [fixture_text("good_en.json"), fixture_text("spam.json")]
    texts.append(" ".join(t for t, *_ in ENGLISH))  # several entities in one document
    assert [stage.find(t) for t in texts] == [whole.find(t) for t in texts]


def test_dropped_rows_are_scrubbed_and_kept_dropped(stage):
    text = "Mail bob@gmail.com"
    out = stage.process(batch([text, text, None], dropped={1: ("langid", "low_language_score")}))
    assert out["text"].to_pylist() == ["Mail <EMAIL>", "Mail <EMAIL>", None]
    assert out["pii_email_address"].to_pylist() == [1, 1, 0]
    assert reasons(out)[1] == ("langid", "low_language_score") and reasons(out)[0] == (None, None)
    assert out.schema.field("pii_phone_number").type == pa.int32()


def test_private_ips_only_when_asked():
    text = "ping me on my ip 192.168.0.12"
    assert PiiScrubber().process(batch([text]))["text"][0].as_py() == text
    assert PiiScrubber(private_ips=True).process(batch([text]))["text"][0].as_py() == "ping me on my ip <IP_ADDRESS>"


def test_custom_recognizer_and_placeholders():
    stage = PiiScrubber(
        custom=[{"name": "EMPLOYEE_ID", "regex": r"\bEMP-\d{6}\b", "placeholder": "[employee]"}],
        placeholders={"EMAIL_ADDRESS": "[email]"},
    )
    out = stage.process(batch(["EMP-123456 wrote from a@b.io"]))
    assert out["text"][0].as_py() == "[employee] wrote from [email]"
    assert out["pii_employee_id"][0].as_py() == 1


def test_bad_parameters_fail_early():
    with pytest.raises(ValueError, match="unknown entities"):
        PiiScrubber(entities=["EMAIL"])
    with pytest.raises(ValueError, match="valid keys"):
        PiiScrubber(threshold=0.5)
    with pytest.raises(ValueError, match="needs name and regex"):
        PiiScrubber(custom=[{"regex": "x"}])
    with pytest.raises(ValueError, match="unknown types"):
        PiiScrubber(placeholders={"EMAIL": "[e]"})


def test_ner_model_from_a_path(tmp_path):
    """PERSON/LOCATION come from an installed spaCy pipeline; here a tiny rule-based one on disk."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [{"label": "PERSON", "pattern": "Ada Lovelace"}, {"label": "GPE", "pattern": "London"}]
    )
    nlp.to_disk(tmp_path / "ner")
    stage = PiiScrubber(ner_model=str(tmp_path / "ner"))
    out = stage.process(batch(["Ada Lovelace lived in London; ada@posteo.de"], langs=["en"]))
    assert out["text"][0].as_py() == "<PERSON> lived in <LOCATION>; <EMAIL>"
    assert out["pii_person"][0].as_py() == 1 and out["pii_location"][0].as_py() == 1


def test_nothing_is_downloaded(monkeypatch):
    """Setup and scrubbing work with the network unreachable (tldextract, spaCy, presidio)."""

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    out = PiiScrubber().process(batch(["write to someone@bbc.co.uk"]))
    assert out["text"][0].as_py() == "write to <EMAIL>"


def test_re2_bounds_cover_every_python_candidate():
    """The prefilter's three candidate regexes (Python's, RE2's and RE2's for reversed text) are
    kept in step by hand: RE2's first and last match must enclose every Python match, or PII
    outside the bounds would never be analysed."""
    texts = [t for t, *_ in ENGLISH + CHINESE] + LOOKALIKES + [fixture_text("good_en.json")]
    texts += ["a@b x 1234567 y", "DE89 3704 x ::1 y 1.2.3.4", "no candidates here", "１２３４５６７８ 全角数字"]
    bounds = candidate_bounds(pa.chunked_array([pa.array(texts)]))
    for text, bound in zip(texts, bounds):
        matches = [m.span() for m in CANDIDATE.finditer(text)]
        if not matches:
            continue
        assert bound is not None, text
        assert bound[0] <= matches[0][0] and matches[-1][1] <= bound[1] + LOOKAHEAD, text
