import json
import os

import numpy as np
import pyarrow as pa
import pytest
import torch

from pipelines.shards import shard_schema, write_arrow
from train.data import TokenArray, TokenLoader, TokenShards

SEQ_LEN, BATCH = 16, 4
UINT32 = pa.uint32()


def write_shards(directory: str, sizes: list[int], dtype: pa.DataType = UINT32, split: str = "train") -> str:
    """Shard files whose token at stream position p is p (uint32), so windows identify themselves."""
    os.makedirs(directory, exist_ok=True)
    entries, position = [], 0
    for index, size in enumerate(sizes):
        values = np.arange(position, position + size) % (1 << (8 * dtype.byte_width))
        cut = np.linspace(0, size, 6, dtype=np.int32)  # five documents per file
        tokens = pa.ListArray.from_arrays(pa.array(cut), pa.array(values, dtype))
        table = pa.Table.from_arrays(
            [pa.array([f"d{index}.{i}" for i in range(5)]), pa.array(["s"] * 5), tokens], schema=shard_schema(dtype)
        )
        name = f"{split}-{index:05d}.arrow"
        write_arrow(os.path.join(directory, name), table)
        entries.append({"split": split, "path": name, "tokens": size, "documents": 5})
        position += size
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump({"files": entries}, handle)
    return directory


@pytest.fixture
def shards(tmp_path):
    return write_shards(str(tmp_path / "shards"), [1000, 537, 2049])


def take(loader: TokenLoader, steps: int) -> list[torch.Tensor]:
    batches = iter(loader)
    return [torch.cat([x, y[:, -1:]], dim=1) for x, y in (next(batches) for _ in range(steps))]


def test_windows_are_memory_mapped_slices(shards):
    data = TokenShards(shards)
    tokens = data.tokens(1)
    assert not tokens.flags.owndata and not tokens.flags.writeable  # a view of the mapped file
    assert tokens[0] == 1000 and len(tokens) == 537
    assert data.document_offsets(1).tolist() == np.linspace(0, 537, 6, dtype=int).tolist()
    loader = TokenLoader(shards, SEQ_LEN, BATCH, shuffle=False)
    assert len(loader.dataset) == 999 // 16 + 536 // 16 + 2048 // 16
    x, y = next(iter(loader))
    assert x.dtype == torch.int64 and x.shape == (BATCH, SEQ_LEN)
    assert x[1].tolist() == list(range(16, 32)) and y[1].tolist() == list(range(17, 33))
    last = loader.dataset[len(loader.dataset) - 1]  # windows stay inside their file
    assert last.tolist() == list(range(1537 + 2048 - 16, 1537 + 2049))


def test_uint16_shards(tmp_path):
    loader = TokenLoader(write_shards(str(tmp_path / "s16"), [300], pa.uint16()), SEQ_LEN, BATCH, shuffle=False)
    assert TokenShards(str(tmp_path / "s16")).tokens(0).dtype == np.uint16
    assert next(iter(loader))[0][0].tolist() == list(range(16))


def test_ranks_and_workers_never_overlap(shards):
    world = 3
    per_rank = [take(TokenLoader(shards, SEQ_LEN, BATCH, rank=r, world_size=world, seed=5), 14) for r in range(world)]
    starts = [set(b[:, 0].tolist()) for batches in per_rank for b in batches]
    union = set().union(*starts)
    assert len(union) == 14 * BATCH * world  # all distinct: no window served twice
    # The same global batches, whatever the split across ranks.
    single = take(TokenLoader(shards, SEQ_LEN, BATCH * world, seed=5), 14)
    for step in range(14):
        assert set(single[step][:, 0].tolist()) == set().union(
            *(set(per_rank[r][step][:, 0].tolist()) for r in range(world))
        )
    # DataLoader workers split the batches of a rank between them without overlap or reordering.
    with_workers = take(TokenLoader(shards, SEQ_LEN, BATCH, rank=1, world_size=world, seed=5, num_workers=2), 14)
    assert all(torch.equal(a, b) for a, b in zip(with_workers, per_rank[1]))


@pytest.mark.parametrize("stop", [5, 17, 22])  # mid-epoch, just after an epoch boundary, later
@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_gives_exactly_the_uninterrupted_batches(shards, stop, num_workers):
    steps = 40  # 223 windows / (4 x 2) = 27 steps per epoch: crosses an epoch
    uninterrupted = take(TokenLoader(shards, SEQ_LEN, BATCH, rank=1, world_size=2, seed=3), steps)
    first = TokenLoader(shards, SEQ_LEN, BATCH, rank=1, world_size=2, seed=3)
    before = take(first, stop)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    resumed = TokenLoader(shards, SEQ_LEN, BATCH, rank=1, world_size=2, seed=3, num_workers=num_workers)
    resumed.load_state_dict(state)
    after = take(resumed, steps - stop)
    assert all(torch.equal(a, b) for a, b in zip(before + after, uninterrupted))


def test_resume_on_another_world_size_continues_the_global_order(shards):
    two = [TokenLoader(shards, SEQ_LEN, BATCH, rank=r, world_size=2, seed=1) for r in range(2)]
    for loader in two:
        take(loader, 6)
    one = TokenLoader(shards, SEQ_LEN, 2 * BATCH, seed=1)
    one.load_state_dict(two[0].state_dict())
    continued = take(one, 3)
    reference = take(TokenLoader(shards, SEQ_LEN, 2 * BATCH, seed=1), 9)[6:]
    assert all(set(a[:, 0].tolist()) == set(b[:, 0].tolist()) for a, b in zip(continued, reference))


def test_state_from_other_data_is_refused(shards, tmp_path):
    state = TokenLoader(shards, SEQ_LEN, BATCH, seed=0).state_dict()
    with pytest.raises(ValueError, match="seed"):
        TokenLoader(shards, SEQ_LEN, BATCH, seed=1).load_state_dict(state)
    other = write_shards(str(tmp_path / "other"), [800])
    with pytest.raises(ValueError, match="num_windows"):
        TokenLoader(other, SEQ_LEN, BATCH, seed=0).load_state_dict(state)


def test_validation_pass_ends_after_one_epoch(tmp_path):
    directory = write_shards(str(tmp_path / "v"), [161], split="val")
    batches = list(TokenLoader(directory, SEQ_LEN, 2, split="val", shuffle=False, loop=False))
    assert len(batches) == 5  # 10 windows, batches of 2
    with pytest.raises(ValueError, match="no 'train' files"):
        TokenLoader(directory, SEQ_LEN, 2)


def test_single_token_array_in_memory_or_memory_mapped(tmp_path):
    tokens = np.arange(500, dtype=np.uint16)
    tokens.tofile(tmp_path / "train.bin")  # raw binary, as nanoGPT's prepare scripts write
    np.save(tmp_path / "train.npy", tokens.astype(np.uint32))
    loader = TokenLoader(TokenArray(tokens), SEQ_LEN, BATCH, seed=2)
    assert len(loader.dataset) == 499 // SEQ_LEN and len(loader) == 499 // SEQ_LEN // BATCH
    expected = take(loader, 7)  # one epoch: 28 of the 31 windows (3 do not fill a batch), each once
    windows = torch.cat(expected)
    starts = set(windows[:, 0].tolist())
    assert len(starts) == 28 and starts <= set(range(0, 31 * SEQ_LEN, SEQ_LEN))
    assert (windows == windows[:, :1] + torch.arange(SEQ_LEN + 1)).all()
    for source in (TokenArray(str(tmp_path / "train.bin")), TokenArray(tmp_path / "train.npy")):
        assert isinstance(source.tokens(0), np.memmap)
        got = take(TokenLoader(source, SEQ_LEN, BATCH, seed=2, num_workers=2), 7)  # workers map the file
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    bytes_ = TokenArray(np.frombuffer("ab😀".encode(), dtype=np.uint8))
    assert bytes_.sizes.tolist() == [6]
    with pytest.raises(ValueError, match="1-D integer"):
        TokenArray(np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="shard folder only"):
        TokenLoader(TokenArray(tokens), SEQ_LEN, BATCH, split="val")
