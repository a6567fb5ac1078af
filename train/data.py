"""Training batches of fixed token windows, from the token shards or from one token array.

Public API::

    from train.data import TokenArray, TokenLoader

    # The shards `pipelines.shards` writes (out/shards): one DDP rank's batches.
    loader = TokenLoader("out/shards", seq_len=2048, batch_size=8, rank=rank, world_size=world_size,
                         seed=0, num_workers=2, pin_memory=True)
    for inputs, targets in loader:        # int64 (batch_size, seq_len); targets = inputs shifted by one
        ...
        checkpoint["data"] = loader.state_dict()    # a few ints (JSON- and torch.save-friendly)
    loader.load_state_dict(checkpoint["data"])      # next batch = the one an uninterrupted run gives

    val = TokenLoader("out/shards", 2048, 8, split="val", shuffle=False, loop=False)  # one pass, then stops
    loader.source.manifest["vocab_size"], loader.source.manifest["eos_id"]           # shard folder's manifest

    # One token sequence: an array (e.g. a byte-level corpus) or a memory-mapped .npy / raw binary file.
    TokenLoader(TokenArray(np.frombuffer(text.encode(), dtype=np.uint8)), seq_len=256, batch_size=64)
    TokenLoader(TokenArray("data/train.bin", dtype=np.uint16), seq_len=1024, batch_size=12)

`len(loader)` is the number of steps per epoch; iteration runs epoch after epoch (a new
shuffle each) unless `loop=False`. Extra keyword arguments go to torch's DataLoader.

How batches are made:

- A source is a list of token arrays ("files"): `TokenShards` (one split of a shard folder,
  each Arrow file memory-mapped; tokens are zero-copy numpy views, uint16/uint32 as
  written) or `TokenArray`. Files are opened lazily in each process, so DataLoader workers
  map them themselves instead of receiving copies.
- `WindowDataset`: window i of a file = tokens [i*seq_len, i*seq_len + seq_len + 1) of it
  (documents are separated by EOS in the stream). Consecutive windows share one token, so
  every token but a file's first is a target once per epoch. Windows never cross files.
- `TokenLoader`: each epoch is a seeded permutation of all windows; global step s takes the
  next `batch_size * world_size` windows of it and rank r every world_size-th of those, so
  ranks never overlap. The permutation is drawn in the main process and the DataLoader
  hands whole batches to its workers, so workers never overlap either and the batches do
  not depend on `num_workers`. The state is (epoch, windows consumed by all ranks), counted
  when a batch reaches the caller (prefetched batches do not count), so resuming gives
  exactly the remaining batches; after a change of world size it continues the same
  global order. Windows left over when an epoch does not divide into global batches are
  skipped in that epoch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.ipc as ipc
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class TokenSource(Protocol):
    """What `WindowDataset` reads: token counts per file and each file's tokens."""

    sizes: np.ndarray

    def tokens(self, index: int) -> np.ndarray: ...


class TokenShards:
    """The files of one split of a shard folder (`pipelines.shards` output)."""

    def __init__(self, shards_dir: str, split: str = "train"):
        with open(os.path.join(shards_dir, "manifest.json"), encoding="utf-8") as handle:
            self.manifest = json.load(handle)
        entries = [f for f in self.manifest["files"] if f["split"] == split]
        if not entries:
            raise ValueError(f"{shards_dir}: no {split!r} files in manifest.json")
        self.paths = [os.path.join(shards_dir, f["path"]) for f in entries]
        self.sizes = np.array([f["tokens"] for f in entries], dtype=np.int64)
        self._columns: list[tuple[np.ndarray, np.ndarray]] | None = None

    def _open(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._columns is None:
            self._columns = [read_tokens(path) for path in self.paths]
        return self._columns

    def tokens(self, index: int) -> np.ndarray:
        """All tokens of file `index`, a read-only view of the mapped file."""
        return self._open()[index][0]

    def document_offsets(self, index: int) -> np.ndarray:
        """Start of each document in `tokens(index)`, plus the end (e.g. for per-document attention masks)."""
        return self._open()[index][1]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_columns": None}


class TokenArray:
    """One token sequence: a 1-D integer array, or a file memory-mapped in each process
    (`.npy`, or raw little-endian integers of `dtype` as nanoGPT's `train.bin`)."""

    def __init__(self, tokens: npt.ArrayLike | str | os.PathLike, dtype: npt.DTypeLike = np.uint16):
        self.path = os.fspath(tokens) if isinstance(tokens, (str, os.PathLike)) else None
        self.dtype = np.dtype(dtype)
        self._array = None if self.path else np.asarray(tokens)
        array = self.tokens(0)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"expected a 1-D integer token array, got {array.dtype} with shape {array.shape}")
        self.sizes = np.array([len(array)], dtype=np.int64)

    def tokens(self, index: int) -> np.ndarray:
        if index != 0:
            raise IndexError(f"a TokenArray has one file, not {index + 1}")
        if self._array is None:
            self._array = (
                np.load(self.path, mmap_mode="r")
                if self.path.endswith(".npy")
                else np.memmap(self.path, dtype=self.dtype, mode="r")
            )
        return self._array

    def __getstate__(self) -> dict:
        # A file is mapped again by each worker; an in-memory array travels as it is.
        return {**self.__dict__, "_array": None} if self.path else self.__dict__


def read_tokens(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, document offsets) of one shard file, without copying the tokens."""
    reader = ipc.open_file(pa.memory_map(path))
    if reader.num_record_batches != 1:
        raise ValueError(f"{path}: expected one record batch, found {reader.num_record_batches}")
    column = reader.get_batch(0).column("tokens")
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=True)
    return values[offsets[0] : offsets[-1]], offsets - offsets[0]


class WindowDataset(Dataset):
    """Windows of `seq_len + 1` tokens (int64 tensors). Batched fetching (`__getitems__`,
    which torch's DataLoader calls with a whole batch of indices) fills one array per batch."""

    def __init__(self, source: TokenSource, seq_len: int):
        if seq_len < 1:
            raise ValueError("seq_len must be >= 1")
        self.source, self.seq_len = source, seq_len
        per_file = np.maximum((source.sizes - 1) // seq_len, 0)
        self.first = np.concatenate([[0], np.cumsum(per_file)])  # first window of each file

    def __len__(self) -> int:
        return int(self.first[-1])

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)})")
        files = np.searchsorted(self.first, indices, side="right") - 1
        starts = (indices - self.first[files]) * self.seq_len
        out = np.empty((len(indices), self.seq_len + 1), dtype=np.int64)
        for row, (file, start) in enumerate(zip(files.tolist(), starts.tolist())):
            out[row] = self.source.tokens(file)[start : start + self.seq_len + 1]
        return torch.from_numpy(out)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]


def epoch_order(num_windows: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(num_windows)
    return np.random.default_rng([seed, epoch]).permutation(num_windows)


class _RankBatches(Sampler):
    """This rank's batches of one epoch from global position `consumed` on."""

    def __init__(self, order: np.ndarray, consumed: int, batch_size: int, rank: int, world_size: int):
        self.order, self.consumed = order, consumed
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def __len__(self) -> int:
        return (len(self.order) - self.consumed) // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.batch_size * self.world_size
        for start in range(self.consumed, self.consumed + len(self) * step, step):
            yield self.order[start + self.rank : start + step : self.world_size].tolist()


def _as_is(batch: torch.Tensor) -> torch.Tensor:
    return batch  # __getitems__ already stacked the batch


class TokenLoader:
    """Batches `(inputs, targets)` of shape (batch_size, seq_len) for one DDP rank, with
    `state_dict()`/`load_state_dict()` for exact resumption (see the module docstring).

    `source`: a shard folder (its `split`, default "train") or a `TokenSource` such as
    `TokenArray`. `loop=False` stops at the end of the current epoch (e.g. validation)."""

    def __init__(
        self,
        source: str | os.PathLike | TokenSource,
        seq_len: int,
        batch_size: int,
        *,
        split: str | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        loop: bool = True,
        num_workers: int = 0,
        **dataloader_kwargs: Any,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if isinstance(source, (str, os.PathLike)):
            source = TokenShards(os.fspath(source), split or "train")
        elif split is not None:
            raise ValueError("split applies to a shard folder only")
        self.source = source
        self.dataset = WindowDataset(source, seq_len)
        self.seq_len, self.batch_size, self.rank, self.world_size = seq_len, batch_size, rank, world_size
        self.seed, self.shuffle, self.loop = seed, shuffle, loop
        self.num_workers, self.dataloader_kwargs = num_workers, dataloader_kwargs
        self.epoch, self.consumed = 0, 0  # consumed: windows of this epoch taken by all ranks
        if len(self) == 0:
            raise ValueError(
                f"{len(self.dataset)} windows of {seq_len + 1} tokens, fewer than one global "
                f"batch of {batch_size} x {world_size}"
            )

    def __len__(self) -> int:
        """Steps per epoch."""
        return len(self.dataset) // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            order = epoch_order(len(self.dataset), self.seed, self.epoch, self.shuffle)
            batches = _RankBatches(order, self.consumed, self.batch_size, self.rank, self.world_size)
            if self.num_workers or self.dataloader_kwargs:
                loader = DataLoader(
                    self.dataset,
                    batch_sampler=batches,
                    collate_fn=_as_is,
                    num_workers=self.num_workers,
                    **self.dataloader_kwargs,
                )
            else:  # the DataLoader's per-batch bookkeeping would cost as much as the copy at small batches
                loader = map(self.dataset.__getitems__, batches)
            for batch in loader:
                self.consumed += self.batch_size * self.world_size
                yield batch[:, :-1], batch[:, 1:]
            self.epoch, self.consumed = self.epoch + 1, 0
            if not self.loop:
                return

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "consumed": self.consumed,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "num_windows": len(self.dataset),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        # A different seed, window length or data would silently give other batches.
        for key, mine in (("seed", self.seed), ("seq_len", self.seq_len), ("num_windows", len(self.dataset))):
            if state[key] != mine:
                raise ValueError(f"cannot resume: state has {key}={state[key]}, this loader {mine}")
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
