"""Memory and CPU of a process tree, from /proc (Linux): shared by the benchmarks.

`TreeMonitor(root)` samples, every `interval` seconds, a process and all its
descendants (a pipeline driver, the raylet and GCS it started, Ray's workers):
RSS, PSS (shared pages counted once) and PSS split into anonymous memory (heaps)
and shmem (Ray's object store) from /proc/PID/smaps_rollup, summed over the tree,
and keeps the peaks; the root's own RSS, its VmHWM and RssAnon (/proc/PID/status);
and each process's CPU seconds (utime + stime), remembered after it exits.
"""

from __future__ import annotations

import os
import threading


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


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


def loadavg() -> str:
    """The machine's 1, 5 and 15 minute load averages, as /proc/loadavg prints them."""
    with open("/proc/loadavg", encoding="ascii") as handle:
        return " ".join(handle.read().split()[:3])


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, IndexError):
            continue
    return total


class TreeMonitor(threading.Thread):
    """Peaks of memory summed over `root` (default: this process) and its descendants, and their
    CPU time. Peak keys: Rss, Pss, Pss_Anon, Pss_Shmem (sums over the tree), processes, and the
    root's own driver_Rss (smaps_rollup), driver_HWM (VmHWM), driver_Anon (RssAnon)."""

    def __init__(self, interval: float = 0.2, root: int | None = None):
        super().__init__(daemon=True)
        self.root = os.getpid() if root is None else root
        self.interval, self.stop = interval, threading.Event()
        self.peak: dict[str, int] = {}
        self.cpu: dict[int, float] = {}  # last CPU seconds seen per pid (survives exited workers)
        self.names: dict[int, str] = {}  # pid -> command line when first seen (up to 300 characters)
        self.samples = 0

    def sample(self) -> None:
        pids = tree_pids(self.root)
        totals = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_Shmem": 0}
        for pid in pids:
            try:
                values = rollup(pid)
            except OSError:
                continue
            for key in totals:
                totals[key] += values.get(key, 0)
            self.cpu[pid] = cpu_seconds([pid])
            if pid not in self.names:
                self.names[pid] = command_line(pid)
        try:
            totals["driver_Rss"] = rollup(self.root)["Rss"]
            own = status(self.root)
            totals["driver_HWM"], totals["driver_Anon"] = own.get("VmHWM", 0), own.get("RssAnon", 0)
        except (OSError, KeyError):  # the root has exited
            pass
        totals["processes"] = len(pids)
        for key, value in totals.items():
            self.peak[key] = max(self.peak.get(key, 0), value)
        self.samples += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)

    def cpu_total(self) -> float:
        self.sample()
        return sum(self.cpu.values())

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds of the root ("driver"), of Ray's worker processes ("workers": tasks and actors)
        and of everything else in the tree ("ray system": raylet, GCS, agents, log monitor)."""
        out = {"driver": 0.0, "workers": 0.0, "ray system": 0.0}
        for pid, seconds in list(self.cpu.items()):
            name = self.names.get(pid, "")
            kind = (
                "driver"
                if pid == self.root
                else "workers"
                if name.startswith("ray::") or "default_worker.py" in name
                else "ray system"
            )
            out[kind] += seconds
        return out


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read(300).replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""
