"""Measuring helpers shared by the benchmarks: a fresh child process per measurement, its peak RSS,
and a one-line description of the machine.

Each measured part runs in its own interpreter so that its peak RSS (``VmHWM``, read by the child
itself) counts only what that part allocated: not the simulators, not an earlier measurement. The
children import this module, so it imports nothing the product does not (psutil and the simulators,
2.9 MB of RSS between them, are imported where the parent needs them).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB: ``VmHWM`` from /proc where there is one.

    Not ``ru_maxrss`` on Linux: the kernel carries it across fork and exec, so a child started by a
    process holding the simulators' backlog reports the parent's peak, not its own (we measured
    336 MB that way for a child whose own peak was 92 MB).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def rss_mb() -> float:
    """This process's resident set now, in MiB."""
    resident = status_kb(("VmRSS",)).get("VmRSS")
    if resident is not None:
        return resident / 1024
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child: ours without stray Azure credentials, plus ``extra``."""
    from simulators.identity import COMPETING_CREDENTIAL_ENV

    env = {k: v for k, v in os.environ.items() if k not in COMPETING_CREDENTIAL_ENV}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env.update(extra)
    return env


def run_child(
    module: str,
    args: list[str],
    env: Mapping[str, str],
    *,
    timeout: float = 3600,
    prefix: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``python -m module args --out FILE`` in a fresh interpreter; return the JSON it wrote to FILE.

    ``prefix`` goes before the interpreter on the command line: a profiler such as ``py-spy record``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "result.json"
        completed = subprocess.run(
            [*prefix, sys.executable, "-m", module, *args, "--out", str(out)],
            cwd=ROOT,
            env=child_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{module} {' '.join(args)} exited with {completed.returncode}:\n{completed.stderr[-4000:]}"
            )
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


def write_result(path: str, result: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=1), encoding="utf-8")


def machine() -> str:
    """CPU model, core count, memory, Python and the SDK versions that matter here."""
    from importlib import metadata

    import psutil

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for package in ("azure-monitor-ingestion", "azure-core", "requests"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}"
    )


def status_kb(fields: Sequence[str] = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")) -> dict[str, int]:
    """Fields of /proc/self/status (kB, ``Threads`` a count); empty where there is no /proc."""
    found: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in fields:
                    found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def malloc_arenas() -> list[dict[str, int]]:
    """glibc's arenas as ``malloc_info`` reports them: per arena the memory it holds from the system and
    how much of it is free (in chunks malloc keeps for reuse), in KiB. Empty where malloc is not glibc's.

    Python's allocator serves objects of up to 512 bytes from its own 1 MiB arenas; everything bigger
    (a response body, orjson's buffers, a joined request body, a dict's table past a few dozen keys)
    comes from malloc, which gives each thread that allocates its own arena (up to 8 per core).
    """
    import ctypes
    import re

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return []
    buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return []
    try:
        libc.malloc_info(0, stream)
    finally:
        libc.fclose(stream)
    text = ctypes.string_at(buffer, size.value).decode("ascii", "replace")
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(ctypes.cast(buffer, ctypes.c_void_p))
    arenas = []
    for heap in re.finditer(r'<heap nr="(\d+)">(.*?)</heap>', text, re.S):
        body = heap.group(2)
        system = re.search(r'<system type="current" size="(\d+)"', body)
        free = sum(
            int(m.group(1))
            for m in re.finditer(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"', body)
        )
        arenas.append(
            {
                "arena": int(heap.group(1)),
                "system_kb": int(system.group(1)) // 1024 if system else 0,
                "free_kb": free // 1024,
            }
        )
    return arenas
