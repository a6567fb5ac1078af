"""The corpus command's console: one line per phase (a progress bar while it runs, on a terminal)
and the summary last. Ray's and Ray Data's own output goes to `<out>/logs/` unless --verbose."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time

from tqdm import tqdm

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RULE = "═" * 72


def log_dir(root: str) -> str:
    """Where a command writing into `root` keeps Ray's output: `<root>/logs`, or a local temporary
    folder when `root` is a URI (log files are written locally)."""
    return tempfile.mkdtemp(prefix="lmforge-logs-") if "://" in root else os.path.join(root, "logs")


def quiet_ray(directory: str) -> None:
    """Keep Ray's own output off the console, in files under `directory`: its Python loggers (ray.log,
    ray-data.log: Ray Data's execution log, issue-detector hints, deprecation notices) and whatever
    Ray's C++ core writes to this process's stderr (stderr.log: e.g. the "constructor arguments in
    the object store" notice Ray Data's actor pools trigger themselves, ray-project/ray#57733).
    Python's own writes to sys.stderr (our progress, warnings, tracebacks) still reach the console.
    Call it before Ray starts; workers' output stays in Ray's session logs (ray.init(log_to_driver=False))."""
    import ray.data  # configures its loggers when imported: before their console handlers are replaced

    os.makedirs(directory, exist_ok=True)
    for name, filename in (("ray", "ray.log"), ("ray.data", "ray-data.log")):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_console or handler.get_name() == "lmforge":  # ours too, from an earlier call
                logger.removeHandler(handler)
        file_handler = logging.FileHandler(os.path.join(directory, filename), encoding="utf-8")
        file_handler.set_name("lmforge")
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        file_handler.setLevel(logging.INFO)  # Ray Data's DEBUG records stay in Ray's session logs
        logger.addHandler(file_handler)
    ray.data.DataContext.get_current().enable_progress_bars = False  # no status blocks: the phase lines replace them
    console = os.dup(2)
    sys.stderr.flush()
    log = os.open(os.path.join(directory, "stderr.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    sys.stderr = open(console, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


class PhaseProgress:
    """A phase's documents and text bytes, counted as its parts are written: a bar with
    documents/s, MB/s and, when `total` is known, an ETA while it runs on a terminal; then one
    line, `corpus: <label>: N <unit> in S s (D documents/s, M MB/s)`."""

    def __init__(self, label: str, total: int | None = None, unit: str = "documents"):
        self.label, self.unit = label, unit
        self.count = self.size = 0
        self.started = time.perf_counter()
        self.seconds = 0.0
        self.bar = tqdm(
            total=total,
            desc=f"corpus: {label}",
            unit=f" {unit.split()[0]}",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
            disable=None,
        )  # None: off unless a terminal

    def update(self, documents: int, size: int = 0) -> None:
        self.count += documents
        self.size += size
        if self.size:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{self.size / 1e6 / elapsed:.2f} MB/s", refresh=False)
        self.bar.update(documents)

    def close(self) -> None:
        self.bar.close()
        self.seconds = seconds = time.perf_counter() - self.started
        rates = ""
        if self.unit == "documents" and seconds > 0:
            rates = f" ({self.count / seconds:.1f} documents/s, {self.size / 1e6 / seconds:.2f} MB/s)"
        print(f"corpus: {self.label}: {self.count} {self.unit} in {seconds:.1f} s{rates}", flush=True)

    def figures(self) -> dict:
        """What stats.json's `timing` records of the phase."""
        return {
            "phase": self.label,
            "what": self.unit,
            "count": self.count,
            "bytes": self.size,
            "seconds": round(self.seconds, 2),
        }

    def __enter__(self) -> PhaseProgress:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.bar.close()


def print_summary(lines: list[str]) -> None:
    """The run's result, set off from the phase lines (bold on a terminal)."""
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{RULE}\n" + "\n".join(f"{bold}{line}{plain}" for line in lines) + f"\n{RULE}", flush=True)
