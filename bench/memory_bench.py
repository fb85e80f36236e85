"""What the loopback drain's peak RSS is made of: imports, pages in flight, and malloc's free memory.

Against the same simulators as ``python -m bench onepassword`` (1,000-event pages, three streams):

- **imports**: the RSS of a fresh interpreter after importing the SDKs the drain uses, and after our
  modules too (the drain imports both before its clock starts);
- **a page, stage by stage** (``drain_child pages``, tracemalloc): the answer's body, the decoded
  events and the decoder's transient peak, the shaped rows, the encoded rows, the gzip bodies;
- **the drain at its peak** (``drain_child peak``): one ``run_cycle`` watched every 5 ms by a thread
  that keeps, at the highest RSS, /proc/self/status and glibc's arenas (``malloc_info``: what each
  arena holds from the system and how much of it is free). Every event is checked exactly once.
  ``--malloc-variants`` repeats it with glibc's tunables that bear on it (one arena per two threads
  at most; big blocks always mapped and unmapped), to measure what they would change.

Run: ``python -m bench memory [--events 50000] [--malloc-variants]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.drain_child import LAZY_IMPORTS
from bench.measure import ROOT, child_env, cpu_seconds, machine, run_child
from bench.onepassword_backlog import Backlog
from bench.onepassword_bench import _delivered, _measurement
from bench.onepassword_sims import BenchSims

CHILD = "bench.drain_child"
#: The SDKs a 1Password drain imports (the sink's, the credential's, the vendor client's, the stores').
DRAIN_SDKS = (
    "requests",
    "orjson",
    "croniter",
    "azure.identity",
    "azure.monitor.ingestion",
    "azure.data.tables",
    "azure.keyvault.secrets",
)
OUR_MODULES = ("auditsync.runner", *LAZY_IMPORTS)
#: glibc tunables worth measuring against the default (environment variables of the child).
MALLOC_VARIANTS: dict[str, dict[str, str]] = {
    "MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"},
    "MALLOC_MMAP_THRESHOLD_=262144": {"MALLOC_MMAP_THRESHOLD_": "262144"},
}


def imported_rss_mb(modules: tuple[str, ...]) -> float:
    """RSS (MiB) of a fresh interpreter of the venv after importing ``modules``."""
    code = (
        "import gc, importlib\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "gc.collect()\n"
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')][0] / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env({}), capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def peak_run(backlog: Backlog, sims: BenchSims, extra_env: dict[str, str]) -> dict[str, Any]:
    """One watched drain; refuses a run that lost or repeated an event."""
    sims.ingestion.reset_tally()
    before = sims.onepassword_requests()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as data:
        cpu = cpu_seconds()
        child = run_child(CHILD, ["peak"], {**sims.drain_env(backlog, Path(data)), **extra_env})
        sim_cpu = cpu_seconds() - cpu
    _delivered(_measurement(child, sims.ingestion.reset_tally(), sims, sim_cpu, before), "watched drain")
    return child


def summary(child: dict[str, Any]) -> dict[str, Any]:
    at_peak = child["at_peak"]
    arenas = at_peak.get("arenas", [])
    status = at_peak.get("status", {})
    return {
        "peak_rss_mb": child["peak_rss_mb"],
        "rss_start_mb": child["rss_start_mb"],
        "cpu_seconds": child["cpu_seconds"],
        "seconds": child["seconds"],
        "anon_mb_at_peak": status.get("RssAnon", 0) / 1024,
        "file_mb_at_peak": status.get("RssFile", 0) / 1024,
        "threads_at_peak": status.get("Threads", 0),
        "arenas_at_peak": len(arenas),
        "malloc_system_mb_at_peak": sum(a["system_kb"] for a in arenas) / 1024,
        "malloc_free_mb_at_peak": sum(a["free_kb"] for a in arenas) / 1024,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__)
    parser.add_argument("--events", type=int, default=50_000, help="backlog, split over three event types")
    parser.add_argument("--malloc-variants", action="store_true", help="also measure glibc's tunables")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    backlog = Backlog.ending_now(args.events)
    imports = {
        "interpreter_mb": imported_rss_mb(()),
        "sdks_mb": imported_rss_mb(DRAIN_SDKS),
        "sdks_and_ours_mb": imported_rss_mb((*DRAIN_SDKS, *OUR_MODULES)),
    }
    variants = {"default": {}, **(MALLOC_VARIANTS if args.malloc_variants else {})}
    with BenchSims.running(backlog) as sims, tempfile.TemporaryDirectory(prefix="bench-data-") as data:
        page_costs = run_child(CHILD, ["pages"], sims.drain_env(backlog, Path(data)))["pages"]
        runs = {name: summary(peak_run(backlog, sims, env)) for name, env in variants.items()}
    result = {"events": backlog.total, "imports": imports, "pages": page_costs, "runs": runs}

    print(f"Memory benchmark: {machine()}")
    print(
        f"  imports (fresh interpreter RSS): bare {imports['interpreter_mb']:.0f} MB; the drain's SDKs "
        f"{imports['sdks_mb']:.0f} MB; with our modules {imports['sdks_and_ours_mb']:.0f} MB"
    )
    print("  a 1,000-event page, stage by stage (tracemalloc, MB held by each stage's result):")
    for event_type, cost in page_costs.items():
        stages = ", ".join(f"{s['stage']} {s['mb']:.2f}" for s in cost["stages"])
        print(f"    {event_type}: {stages}; decoding's transient peak {cost['decode_transient_mb']:.1f}")
    print(f"  the drain of {backlog.total:,} events at its peak RSS:")
    for name, run in runs.items():
        print(
            f"    {name}: peak {run['peak_rss_mb']:.0f} MB (after imports {run['rss_start_mb']:.0f} MB; anonymous "
            f"{run['anon_mb_at_peak']:.0f}, files {run['file_mb_at_peak']:.0f}); {run['threads_at_peak']} threads; "
            f"malloc: {run['arenas_at_peak']} arenas holding {run['malloc_system_mb_at_peak']:.0f} MB, "
            f"{run['malloc_free_mb_at_peak']:.0f} MB of it free; CPU {run['cpu_seconds']:.2f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
