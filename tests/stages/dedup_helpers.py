"""Run a global (dedup) stage on a small table with the session's Ray."""

import pyarrow as pa
import ray

from stages.base import RunContext


def run_global(stage, table: pa.Table, priority=None, blocks: int = 1) -> pa.Table:
    ds = ray.data.from_arrow(table).repartition(blocks).materialize()
    context = RunContext(source_priority=priority or {}, batch_size=4)
    out = stage.apply(ds, context)
    return pa.concat_tables(ray.get(out.to_arrow_refs())).sort_by("id")
