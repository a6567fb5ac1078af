from stages.exact_dedup import ExactDedup
from tests.helpers import batch, fixture_text, reasons
from tests.stages.dedup_helpers import run_global


def test_normalised_copies_removed_best_ranked_survives(ray_local):
    article = fixture_text("good_en.json")
    shouted = article.upper().replace(".", " !")
    texts = [article, shouted, article + " extra words that make it different", article]
    out = run_global(ExactDedup(), batch(texts, sources=["web", "web", "web", "wiki"]), priority={"wiki": 0})
    assert reasons(out) == [
        ("exact_dedup", "exact_duplicate"),
        ("exact_dedup", "exact_duplicate"),
        (None, None),
        (None, None),
    ]
    assert out["duplicate_of"].to_pylist()[:2] == ["doc/3", "doc/3"]


def test_already_dropped_rows_are_not_survivors(ray_local):
    article = fixture_text("good_en.json")
    table = batch([article, article], dropped={0: ("langid", "low_language_score")})
    out = run_global(ExactDedup(), table)
    assert reasons(out) == [("langid", "low_language_score"), (None, None)]


def test_pages_differing_only_in_numbers_unless_digits_are_kept(ray_local):
    texts = [
        "Room rates start at 120 dollars per night, breakfast included.",
        "Room rates start at 95 dollars per night, breakfast included.",
    ]
    assert reasons(run_global(ExactDedup(), batch(texts)))[1] == ("exact_dedup", "exact_duplicate")
    assert reasons(run_global(ExactDedup(normalize_digits=False), batch(texts))) == [(None, None), (None, None)]
