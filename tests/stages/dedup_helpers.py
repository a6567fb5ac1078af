"""Run a global (dedup) stage on a small table with the session's Ray."""

import pyarrow as pa

from stages.base import RunContext
from stages.dedup import mark_table


def run_global(stage, table: pa.Table, priority=None, blocks: int = 1) -> pa.Table:
    context = RunContext(source_priority=priority or {}, batch_size=4)
    return mark_table(stage, table, context, blocks).sort_by("id")
