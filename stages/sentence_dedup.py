"""Sentence-level dedup (C4 / datatrove's SentenceDedup): a span of `n_sentences`
consecutive sentences that also occurs in a better-ranked document is removed
from this one; the first occurrence (by rank) keeps it. Boilerplate shared by
many pages (navigation, disclaimers) goes, the page's own text stays.
Documents left with fewer than `min_doc_words` words are dropped."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import NonNegativeInt, PositiveInt

from stages.base import GlobalStage, RunContext, Strict, make_params, write_alive
from stages.dedup import alive_rows, ids_of, rank_keys, shuffle, sorted_groups, value_counts
from stages.text import sentence_spans, simplify_text, words_of

SPAN_KEYS = pa.schema([("key", pa.uint64()), ("rank", pa.string())])
SHARED_SPANS = pa.schema(
    [("key", pa.uint64()), ("rank", pa.string()), ("documents", pa.int64()), ("first", pa.bool_())]
)
# A window of sentences this document must lose (a better-ranked document has it too).
SPAN_MARKS = pa.schema([("id", pa.string()), ("key", pa.uint64())])


class SentenceDedupParams(Strict):
    n_sentences: PositiveInt = 3
    min_doc_words: NonNegativeInt = 50
    # Windows of tiny sentences ("Home. Menu. Login.") are too common to mean a copy. Measured in
    # UTF-8 bytes so that a CJK character (3 bytes) counts about as much text as 3 Latin letters.
    min_window_bytes: NonNegativeInt = 30


def windows(text: str, params: SentenceDedupParams) -> tuple[list[tuple[int, int]], list[int | None]]:
    """Sentence spans of `text` and the hash of the window starting at each (None if too short)."""
    spans = sentence_spans(text)
    normalised = [simplify_text(text[a:b]) for a, b in spans]
    keys: list[int | None] = []
    for i in range(len(spans) - params.n_sentences + 1):
        window = " ".join(normalised[i : i + params.n_sentences])
        encoded = window.encode("utf-8")
        keys.append(xxhash.xxh3_64_intdigest(encoded) if len(encoded) >= params.min_window_bytes else None)
    return spans, keys


def span_key_rows(batch: pa.Table, params: SentenceDedupParams, context: RunContext) -> pa.Table:
    """One row per (alive document, distinct window key)."""
    rows = alive_rows(batch)
    keys, ranks = [], []
    for text, rank in zip(rows["text"].to_pylist(), rank_keys(rows, context)):
        unique = {k for k in windows(text, params)[1] if k is not None}  # repeated inside one document: not shared
        keys.extend(unique)
        ranks.extend([rank] * len(unique))
    return pa.table({"key": pa.array(keys, pa.uint64()), "rank": pa.array(ranks, pa.string())}, schema=SPAN_KEYS)


def shared_spans(block: pa.Table) -> pa.Table:
    """The rows of keys that several documents have (whole keys in `block`), with the number of
    those documents and whether the row is the key's first (best-ranked) document."""
    rows, group = sorted_groups(block, ["key"], ["key", "rank"])
    sizes = np.bincount(group) if len(group) else np.zeros(0, np.int64)
    shared = sizes[group] > 1
    first = np.ones(len(group), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    return pa.table(
        {
            "key": rows["key"].filter(pa.array(shared)),
            "rank": rows["rank"].filter(pa.array(shared)),
            "documents": sizes[group][shared].astype(np.int64),
            "first": first[shared],
        },
        schema=SHARED_SPANS,
    )


def _histogram_rows(rows: pa.Table) -> pa.Table:
    return rows.filter(rows["first"]).select(["documents"])


def _span_marks(rows: pa.Table) -> pa.Table:
    later = rows.filter(pc.invert(rows["first"]))
    return pa.table({"id": ids_of(later["rank"]), "key": later["key"]}, schema=SPAN_MARKS)


class SentenceDedup(GlobalStage):
    name = "sentence_dedup"
    writes = {"sentences_removed": pa.int32(), "text": pa.string()}
    marks_schema = SPAN_MARKS

    def __init__(self, **params):
        super().__init__()
        self.params = make_params(SentenceDedupParams, params)

    def find(self, ds, context: RunContext):
        keys = ds.map_batches(
            span_key_rows,
            fn_kwargs={"params": self.params, "context": context},
            batch_format="pyarrow",
            batch_size=context.batch_size,
        )
        shared = shuffle(keys, ["key"]).map_batches(shared_spans, batch_format="pyarrow", batch_size=None).materialize()
        counts = value_counts(shared.map_batches(_histogram_rows, batch_format="pyarrow"), "documents")
        histogram = {str(documents): n for documents, n in sorted(counts.items())}
        self.stats = {"shared_spans": sum(histogram.values()), "span_sharing_documents": histogram}
        return shared.map_batches(_span_marks, batch_format="pyarrow")

    def mark(self, batch: pa.Table, marks: pa.Table) -> pa.Table:
        alive = batch["drop_stage"].is_null().to_numpy(zero_copy_only=False)
        live = batch.filter(alive)
        langs = live["lang"].to_pylist() if "lang" in live.column_names else [None] * live.num_rows
        lost: dict[str, set[int]] = {}
        mine = marks.filter(pc.is_in(marks["id"], value_set=live["id"].combine_chunks()))
        for doc_id, key in zip(mine["id"].to_pylist(), mine["key"].to_pylist()):
            lost.setdefault(doc_id, set()).add(key)
        texts, removed, reasons = [], [], []
        for doc_id, text, lang in zip(live["id"].to_pylist(), live["text"].to_pylist(), langs):
            new_text, n_removed = self.dedup_text(text, lost.get(doc_id, set()))
            too_short = n_removed and len(words_of(new_text, lang)) < self.params.min_doc_words
            texts.append(text if too_short else new_text)
            removed.append(n_removed)
            reasons.append("too_short_after_sentence_dedup" if too_short else None)
        columns = {"sentences_removed": (removed, pa.int32()), "text": (texts, pa.string())}
        return write_alive(batch, alive, columns, self.name, reasons)

    def dedup_text(self, text: str, lost: set[int]) -> tuple[str, int]:
        """`text` without the sentences of its windows in `lost`, and how many sentences went."""
        if not lost:
            return text, 0
        spans, keys = windows(text, self.params)
        drop = set()
        for start, key in enumerate(keys):
            if key in lost:
                drop.update(range(start, start + self.params.n_sentences))
        if not drop:
            return text, 0
        # Keep the text between kept sentences as it was (newlines, spacing).
        pieces, cursor = [], 0
        for index, (start, end) in enumerate(spans):
            if index in drop:
                pieces.append(text[cursor:start])
                cursor = end
        pieces.append(text[cursor:])
        cleaned = "".join(pieces)
        cleaned = "\n".join(line.strip() for line in cleaned.split("\n"))
        while "\n\n\n" in cleaned:
            cleaned = cleaned.replace("\n\n\n", "\n\n")
        return cleaned.strip(), len(drop)
