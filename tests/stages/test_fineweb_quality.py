from stages.fineweb_quality import FineWebQuality
from tests.helpers import batch, fixture_text, reasons


def test_named_rules():
    article = fixture_text("good_en.json")
    no_punct = "\n".join(f"Breaking headline number {i} about local sports teams and weather" for i in range(30))
    short = "\n".join(["Home", "About us", "Contact", "Shop now", "The shop sells many fine goods to many people."] * 3)
    out = FineWebQuality().process(batch([article, no_punct, short], langs=["en"] * 3))
    assert reasons(out) == [
        (None, None),
        ("fineweb_quality", "line_punct_ratio"),
        ("fineweb_quality", "short_line_ratio"),
    ]
