"""The dedup chain as the pipeline runs it (exact -> minhash -> sentence) gives the same output
whatever the number of workers (1 CPU or 2), of blocks, of shuffle partitions, and the order of
the rows; and distinct
pages that only share a site's header/footer are not near-duplicates."""

import pyarrow as pa
import ray
from ray.data import ExecutionResources

from stages.base import RunContext
from stages.dedup import mark_table
from stages.exact_dedup import ExactDedup
from stages.minhash_dedup import MinHashDedup
from stages.sentence_dedup import SentenceDedup
from tests.helpers import batch, fixture_text, reasons
from tests.stages.dedup_helpers import run_global

HEADER = (
    "Cedar Valley Gazette | Home | News | World | Business | Technology | Science | Health | Sports\n"
    "Trending now: council approves the new library budget · high school team wins the regional final"
)
FOOTER = (
    "Sign up for our newsletter and get the best of the Cedar Valley Gazette delivered every morning.\n"
    "About Us · Contact · Advertise · Careers · Sitemap · RSS Feeds · Help Center\n"
    "Copyright 2023 Cedar Valley Gazette Media Group. All rights reserved."
)


def chain_corpus() -> pa.Table:
    article = fixture_text("good_en.json")
    paragraphs = [p for p in article.split("\n") if p.strip()]
    half = len(paragraphs) // 2
    first, second = "\n".join(paragraphs[:half]), "\n".join(paragraphs[half:])
    words = article.split()
    changed = " ".join("changed" if i % 50 == 0 else w for i, w in enumerate(words))
    zh = fixture_text("good_zh.json")
    texts = [
        article,
        article.upper(),
        changed,
        first,
        second,
        zh[0],
        zh[0] + "补充一句话。",
        zh[1],
        first + "\n" + second[:200],
        second + " The end.",
    ]
    sources = ["web", "web", "wiki", "web", "web", "zh", "zh", "zh", "web", "wiki"]
    langs = ["en"] * 5 + ["zh"] * 3 + ["en"] * 2
    return batch(texts, sources=sources, langs=langs)


def run_chain(table: pa.Table, blocks: int, cpus: float | None, partitions: int) -> pa.Table:
    context = ray.data.DataContext.get_current()
    options = context.execution_options
    before = options.resource_limits
    if cpus is not None:
        options.resource_limits = ExecutionResources(cpu=cpus)
    context.default_hash_shuffle_parallelism = partitions  # reset by tests/stages/conftest.py
    try:
        context = RunContext(source_priority={"wiki": 1, "zh": 2, "web": 3}, batch_size=3)
        for stage in (ExactDedup(), MinHashDedup(), SentenceDedup(min_doc_words=20)):
            table = mark_table(stage, table, context, blocks)
        return table.sort_by("id")
    finally:
        options.resource_limits = before


def test_same_output_whatever_workers_blocks_shuffle_partitions_row_order(ray_local):
    table = chain_corpus()
    one = run_chain(table, blocks=1, cpus=1, partitions=1)
    reversed_rows = table.take(pa.array(list(range(table.num_rows))[::-1]))
    many = run_chain(reversed_rows, blocks=5, cpus=None, partitions=3)
    assert one.equals(many)
    # And it did dedup: the upper-cased copy is an exact duplicate, the changed copy in `wiki`
    # (better priority) survives the near-duplicate original, Chinese copies by characters.
    got = dict(zip(one["id"].to_pylist(), reasons(one)))
    assert got["doc/1"] == ("exact_dedup", "exact_duplicate")
    assert got["doc/0"] == ("minhash_dedup", "near_duplicate")
    assert got["doc/2"] == (None, None)
    assert got["doc/6"] == ("minhash_dedup", "near_duplicate")
    assert one["duplicate_of"].to_pylist()[:2] == ["doc/2", "doc/0"]


def test_distinct_pages_sharing_a_site_template_are_kept(ray_local):
    article = fixture_text("good_en.json")
    pages = [p for p in article.split("\n") if len(p.split()) > 60][:4]
    assert len(pages) == 4
    texts = [f"{HEADER}\n{page}\n{FOOTER}" for page in pages]
    # The first page crawled again (one word changed) with that template is still a near-duplicate.
    out = run_global(MinHashDedup(), batch([*texts, texts[0].replace(" the ", " a ", 1)], langs=["en"] * 5))
    assert reasons(out) == [(None, None)] * 4 + [("minhash_dedup", "near_duplicate")]
    assert out["duplicate_of"].to_pylist()[4] == "doc/0"
