"""Where the measured child spends its time: py-spy (sampling, every thread, native frames off) around
one extra run that counts for no figure, summarised as the functions with the most samples.

py-spy samples from outside the process, so the profile costs the measured code nothing; it starts
the child itself (``py-spy record -- python ...``), which needs no ptrace rights over other processes.
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


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter (installed by requirements-dev.txt), or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record_prefix(out: Path) -> list[str]:
    """The command-line prefix that runs a child under py-spy, writing collapsed stacks to ``out``."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: run ./dev setup (requirements-dev.txt lists it)")
    return [exe, "record", "--format", "raw", "--rate", str(RATE), "--threads", "--output", str(out), "--"]


@dataclass(frozen=True)
class Profile:
    """Collapsed stacks: total samples, samples per innermost frame (self) and per frame anywhere (total)."""

    samples: int
    own: Counter[str]
    inclusive: Counter[str]

    @classmethod
    def read(cls, path: Path, *, idle: tuple[str, ...] = ()) -> Profile:
        """Parse py-spy's raw output; stacks whose innermost frame matches ``idle`` (waiting) are dropped."""
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        samples = 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames or any(word in frames[-1] for word in idle):
                continue
            n = int(count)
            samples += n
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
        return cls(samples, own, inclusive)

    def share(self, frame_part: str) -> float:
        """Fraction of busy samples with a frame containing ``frame_part`` anywhere on the stack."""
        hits = sum(n for frame, n in self.inclusive.items() if frame_part in frame)
        return min(1.0, hits / self.samples) if self.samples else 0.0

    def lines(self, top: int = 15) -> list[str]:
        out = [f"{self.samples:,} busy samples; functions with the most samples of their own:"]
        for frame, n in self.own.most_common(top):
            out.append(f"  {n / self.samples:6.1%}  {frame}")
        return out


#: Where a thread waits rather than works: these innermost frames are not CPU.
IDLE_FRAMES = (
    "wait (threading.py",
    "_wait_for_tstate_lock",
    "select (selectors.py",
    "poll (selectors.py",
    "recv_into (socket.py",
    "readinto (socket.py",
    "sleep",
    "acquire",
    "result (concurrent/futures/_base.py",
    "_worker (concurrent/futures/thread.py",
)


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``, site-packages paths trimmed."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    root = str(ROOT) + "/"
    if path.startswith(root):
        path = path.removeprefix(root)
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = (
                path.split(marker, 1)[1].split("/", 1)[-1]
                if marker.startswith("/lib")
                else path.split(marker, 1)[1]
            )
            break
    return f"{name} ({path})"
