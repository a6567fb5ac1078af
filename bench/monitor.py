"""CPU and memory of a benchmark's processes and of the machine around them (psutil, Linux): the one
monitor of the benchmarks.

`TreeMonitor(root)` samples, every `interval` seconds, a process and all its descendants (a
pipeline driver, the raylet and GCS it started, Ray's workers, datatrove's worker pool): each
process's CPU seconds, remembered after it exits; with `memory=True` also RSS, PSS (shared pages
counted once) and PSS split into anonymous memory (heaps) and shmem (Ray's object store), summed over
the tree, with their peaks, and the root's own RSS, VmHWM and RssAnon. As a context manager it also
gives the cores the tree used over the block, its CPU seconds by kind of process, and the cores
the rest of the machine kept busy meanwhile, so that a timing disturbed by other work on a shared
machine shows it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[monitor] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    """The machine's 1, 5 and 15 minute load averages, as /proc/loadavg prints them."""
    return " ".join(f"{load:.2f}" for load in psutil.getloadavg())


def machine_busy(seconds: float = 2.0) -> float:
    """Cores' worth of CPU the whole machine used over the next `seconds`."""
    return psutil.cpu_percent(interval=seconds) / 100 * psutil.cpu_count()


def busy_seconds() -> float:
    """CPU seconds all cores have been busy since boot (as psutil counts busy: not idle, not iowait)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - times.iowait - times.guest - times.guest_nice  # guest is inside user


def wait_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to `max_wait` s) until other processes use < `threshold` cores, so that
    timings are not taken while tests or other jobs share the machine; returns the last reading."""
    deadline = time.time() + max_wait
    while True:
        busy = machine_busy()
        if busy < threshold or time.time() >= deadline:
            if busy >= threshold:
                log(f"WARNING: timing while {busy:.1f} cores are busy with other work")
            return busy
        log(f"machine busy ({busy:.1f} cores in use by other processes): waiting")
        time.sleep(10)


# psutil has neither PSS split into anonymous and shmem pages nor the peak RSS (VmHWM): those are
# read from the kernel's own files.


def _kib_fields(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    """The `Key: N kB` lines of a /proc file named by `keys`, in bytes."""
    values = {}
    with open(path, encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in keys:
                values[key] = int(rest.split()[0]) * 1024
    return values


def rollup(pid: int) -> dict[str, int]:
    """Rss, Pss, Pss_Anon, Pss_Shmem, Pss_File of `pid` in bytes (OSError once it has exited)."""
    return _kib_fields(f"/proc/{pid}/smaps_rollup", ("Rss", "Pss", "Pss_Anon", "Pss_Shmem", "Pss_File"))


def status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS as the kernel counts it), VmRSS, RssAnon, RssShmem of `pid`, in bytes."""
    return _kib_fields(f"/proc/{pid}/status", ("VmHWM", "VmRSS", "RssAnon", "RssShmem", "RssFile"))


def command_line(process: psutil.Process) -> str:
    """The first 300 characters of `process`'s command line ("" once it has exited)."""
    try:
        return " ".join(process.cmdline())[:300]
    except psutil.Error:
        return ""


class TreeMonitor:
    """Samples `root` (default: this process) and its descendants on a thread while used as a
    context manager. `peak` (with `memory`): Rss, Pss, Pss_Anon, Pss_Shmem (sums over the tree),
    processes, and the root's own driver_Rss (smaps_rollup), driver_HWM (VmHWM), driver_Anon
    (RssAnon). After the block: `own_cores` (the tree's CPU seconds / wall seconds), `kinds`
    (its CPU seconds over the block, as `cpu_by_kind` splits them) and `other_cores` (the rest of
    the machine's)."""

    def __init__(self, root: int | None = None, interval: float = 0.2, memory: bool = True):
        self.root = os.getpid() if root is None else root
        self.interval, self.memory = interval, memory
        self.peak: dict[str, int] = {}
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> last CPU seconds seen
        self.names: dict[tuple[int, float], str] = {}  # command line when first seen (300 characters)
        self.samples = 0
        self.own_cores = self.other_cores = 0.0
        self.kinds: dict[str, float] = {}
        self._root: psutil.Process | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        try:
            self._root = self._root or psutil.Process(self.root)
            return [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> None:
        with self._lock:
            processes = self._tree()
            totals = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_Shmem": 0}
            for process in processes:
                key = (process.pid, process.create_time())
                try:
                    times = process.cpu_times()
                    values = rollup(process.pid) if self.memory else {}
                except (psutil.Error, OSError):  # exited since listed
                    continue
                self.cpu[key] = times.user + times.system
                if key not in self.names:
                    self.names[key] = command_line(process)
                for name in totals:
                    totals[name] += values.get(name, 0)
            if self.memory:
                try:
                    totals["driver_Rss"] = rollup(self.root)["Rss"]
                    own = status(self.root)
                    totals["driver_HWM"], totals["driver_Anon"] = own.get("VmHWM", 0), own.get("RssAnon", 0)
                except (OSError, KeyError):  # the root has exited
                    pass
                totals["processes"] = len(processes)
                for name, value in totals.items():
                    self.peak[name] = max(self.peak.get(name, 0), value)
            self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def cpu_total(self) -> float:
        """CPU seconds of the tree so far (each process's since it started), sampled now."""
        self.sample()
        with self._lock:
            return sum(self.cpu.values())

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds of the root ("driver"), of Ray's worker processes ("workers": tasks and actors)
        and of everything else in the tree ("ray system": raylet, GCS, agents, log monitor)."""
        out = {"driver": 0.0, "workers": 0.0, "ray system": 0.0}
        with self._lock:
            for key, seconds in self.cpu.items():
                name = self.names.get(key, "")
                kind = (
                    "driver"
                    if key[0] == self.root
                    else "workers"
                    if name.startswith("ray::") or "default_worker.py" in name
                    else "ray system"
                )
                out[kind] += seconds
        return out

    def __enter__(self) -> TreeMonitor:
        self._started, self._busy = time.perf_counter(), busy_seconds()
        self._cpu = self.cpu_total()
        self._kinds = self.cpu_by_kind()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        seconds = max(time.perf_counter() - self._started, 1e-9)
        self.own_cores = (self.cpu_total() - self._cpu) / seconds
        self.kinds = {kind: cpu - self._kinds[kind] for kind, cpu in self.cpu_by_kind().items()}
        self.other_cores = max((busy_seconds() - self._busy) / seconds - self.own_cores, 0.0)


def timed_run(work: Callable[[], T], wait: float = 0) -> tuple[T, dict]:
    """`work()` after waiting up to `wait` s for the machine to be idle, timed and monitored: its
    result and {seconds, load_before (cores busy before), own_cores, cpu_kinds (CPU seconds by kind of
    process, see TreeMonitor.cpu_by_kind), other_cores}."""
    load = wait_quiet(wait)
    with TreeMonitor(interval=1.0, memory=False) as cpu:
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
    return result, {
        "seconds": seconds,
        "load_before": load,
        "own_cores": cpu.own_cores,
        "cpu_kinds": cpu.kinds,
        "other_cores": cpu.other_cores,
    }
