"""Stages that misbehave on purpose, for the fault-isolation tests (configs name them as
`tests.fault_stages:RaiseOn`): the pipeline loads `module:Class` stage names like its own."""

from __future__ import annotations

import os
import signal

import pyarrow as pa

from stages.base import Stage


class RaiseOn(Stage):
    """Raises on any batch holding one of `ids`, as a stage with a bug triggered by one document would."""

    name = "raise_on"

    def __init__(self, ids: list[str]):
        self.ids = set(ids)

    def process(self, batch: pa.Table) -> pa.Table:
        hit = self.ids.intersection(batch["id"].to_pylist())
        if hit:
            raise ZeroDivisionError(f"cannot handle {sorted(hit)[0]}")
        return batch


class KillOnce(Stage):
    """SIGKILLs its own worker process the first time it sees `id` (as the OOM killer or a lost node
    would); `marker` records that it happened, so the retried task goes through."""

    name = "kill_once"

    def __init__(self, id: str, marker: str):
        self.id, self.marker = id, marker

    def process(self, batch: pa.Table) -> pa.Table:
        if self.id in batch["id"].to_pylist() and not os.path.exists(self.marker):
            with open(self.marker, "w") as handle:
                handle.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return batch
