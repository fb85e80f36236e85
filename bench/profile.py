"""Where the measured child spends its time: py-spy around one extra run that counts for no figure.

py-spy samples from outside the process, so the profile costs the measured code nothing; it starts
the child itself (``py-spy record -- python ...``), which needs no ptrace rights over other processes.
Only the stream threads' samples count (stacks through ``runner._run_stream``, and through
``paging.ReadAhead._run`` for a stream's two read-ahead threads, which send its requests and read
their answers): start-up, imports and the heartbeat are left out. A stream has up to three threads,
so with ``idle`` the samples add up to a multiple of its wall time. Each sample goes to one area (``classify``): on loopback the CPU areas,
with ``idle=True`` (latency runs) also the waits, which is where a stream's wall time goes.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.measure import ROOT

#: Samples per second; py-spy's default is 100.
RATE = 200
#: Stacks through these frames are a stream's work; everything else is set-up.
STREAM_FRAMES = (
    "_run_stream (auditsync/runner.py)",
    "ReadAhead._run (auditsync/sources/paging.py)",
)
#: Innermost frames in which a thread waits instead of running Python.
WAIT_FRAMES = ("recv_into", "readinto", "sleep", "select", "poll", "wait", "acquire", "fsync", "connect")
#: CPU areas, searched from the innermost frame outwards: the first match names the sample.
CPU_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JSON encoding (rows)", ("JSONEncoder.", "(json/encoder.py)", "compact_bytes (auditsync/fastjson.py)")),
    (
        "JSON decoding (vendor pages)",
        (
            "JSONDecoder.",
            "(json/decoder.py)",
            "loads (json/__init__.py)",
            "response_json (auditsync/fastjson",
        ),
    ),
    ("gzip", ("_gzip (auditsync/sinks", "(gzip.py)", "zlib")),
    ("row shaping (shape_rows)", ("(auditsync/tables/rows.py)",)),
    ("checkpoint store", ("(auditsync/checkpoints/",)),
    ("Azure SDK (azure-core, ingestion)", ("(azure/",)),
    (
        "HTTP client (requests, urllib3, http.client)",
        ("(requests/", "(urllib3/", "(http/client.py)", "(socket.py)"),
    ),
    ("vendor source", ("(auditsync/sources/",)),
)


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter (installed by requirements-dev.txt), or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record_prefix(out: Path, *, idle: bool = False) -> list[str]:
    """The command-line prefix that runs a child under py-spy, writing collapsed stacks to ``out``.

    ``idle``: sample waiting threads too (wall time); otherwise only threads on the CPU.
    """
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: run ./dev setup (requirements-dev.txt lists it)")
    flags = ["--idle"] if idle else []
    return [exe, "record", "--format", "raw", "--rate", str(RATE), *flags, "--output", str(out), "--"]


def classify(frames: list[str]) -> str:
    """The area one sample belongs to: a wait (by whom it waits for) or a CPU area."""
    inner = frames[-1].split(" (", 1)[0]
    if any(word in inner for word in WAIT_FRAMES):
        joined = ";".join(frames)
        if "(auditsync/retry.py" in joined and "sleep" in inner:
            return "waiting: retry backoff (429/5xx)"
        if "(auditsync/sinks/" in joined:
            return "waiting: Logs Ingestion (upload)"
        if "ReadAhead.next (" in joined:
            return "waiting: the next page (read ahead)"
        if "(auditsync/sources/" in joined:
            return "waiting: vendor API (page fetch)"
        if "(auditsync/checkpoints/" in joined:
            return "waiting: checkpoint store"
        return "waiting: other"
    for frame in reversed(frames):
        for area, parts in CPU_AREAS:
            if any(part in frame for part in parts):
                return area
    return "other Python"


@dataclass(frozen=True)
class Profile:
    """The stream threads' samples: by area, and by innermost function."""

    samples: int
    areas: Counter[str]
    own: Counter[str]

    @classmethod
    def read(cls, path: Path) -> Profile:
        areas: Counter[str] = Counter()
        own: Counter[str] = Counter()
        samples = 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not any(mark in frame for frame in frames for mark in STREAM_FRAMES):
                continue
            n = int(count)
            samples += n
            areas[classify(frames)] += n
            own[frames[-1]] += n
        return cls(samples, areas, own)

    def share(self, area: str) -> float:
        return self.areas[area] / self.samples if self.samples else 0.0

    def lines(self, top: int = 10) -> list[str]:
        out = [f"{self.samples:,} samples of the stream threads, by area:"]
        out += [f"  {n / self.samples:6.1%}  {area}" for area, n in self.areas.most_common()]
        out.append("functions with the most samples of their own:")
        out += [f"  {n / self.samples:6.1%}  {frame}" for frame, n in self.own.most_common(top)]
        return out


def _short(frame: str) -> str:
    """``func (/abs/path/pkg/module.py:123)`` -> ``func (pkg/module.py)``: repository or package relative."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    root = str(ROOT) + "/"
    if path.startswith(root):
        path = path.removeprefix(root)
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{name} ({path})"
