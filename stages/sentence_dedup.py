"""Sentence-level dedup (C4 / datatrove's SentenceDedup): a span of `n_sentences`
consecutive sentences that also occurs in a better-ranked document is removed
from this one; the first occurrence (by rank) keeps it. Boilerplate shared by
many pages (navigation, disclaimers) goes, the page's own text stays.
Documents left with fewer than `min_doc_words` words are dropped."""

from __future__ import annotations

import pyarrow as pa
import ray
import xxhash
from pydantic import NonNegativeInt, PositiveInt

from stages.base import GlobalStage, RunContext, Strict, make_params, write_alive
from stages.dedup import first_owner_of_shared_keys, rank_keys
from stages.text import sentence_spans, simplify_text, words_of


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


class SentenceDedup(GlobalStage):
    name = "sentence_dedup"
    writes = {"sentences_removed": pa.int32(), "text": pa.string()}

    def __init__(self, **params):
        super().__init__()
        self.params = make_params(SentenceDedupParams, params)

    def keys_of(self, rows: pa.Table) -> list[list[int]]:
        return [[k for k in windows(t, self.params)[1] if k is not None] for t in rows["text"].to_pylist()]

    def apply(self, ds, context: RunContext):
        owners, shared = first_owner_of_shared_keys(ds, self.keys_of, context)
        self.stats = {"shared_spans": len(owners), "span_sharing_documents": {str(n): c for n, c in sorted(shared.items())}}
        return ds.map_batches(self.remove_spans, fn_kwargs={"owners_ref": ray.put(owners), "context": context},
                              batch_format="pyarrow", batch_size=context.batch_size)

    def remove_spans(self, batch: pa.Table, owners_ref, context: RunContext) -> pa.Table:
        owners: dict[int, str] = ray.get(owners_ref)
        alive = batch["drop_stage"].is_null().to_numpy(zero_copy_only=False)
        live = batch.filter(alive)
        langs = live["lang"].to_pylist() if "lang" in live.column_names else [None] * live.num_rows
        texts, removed, reasons = [], [], []
        for text, lang, rank in zip(live["text"].to_pylist(), langs, rank_keys(live, context)):
            new_text, n_removed = self.dedup_text(text, owners, rank)
            too_short = n_removed and len(words_of(new_text, lang)) < self.params.min_doc_words
            texts.append(text if too_short else new_text)
            removed.append(n_removed)
            reasons.append("too_short_after_sentence_dedup" if too_short else None)
        columns = {"sentences_removed": (removed, pa.int32()), "text": (texts, pa.string())}
        return write_alive(batch, alive, columns, self.name, reasons)

    def dedup_text(self, text: str, owners: dict[int, str], rank: str) -> tuple[str, int]:
        spans, keys = windows(text, self.params)
        drop = set()
        for start, key in enumerate(keys):
            owner = owners.get(key) if key is not None else None
            if owner is not None and owner != rank:
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
