"""Cold-import benchmark: what our own modules add to a cold start, against the runtime SDKs alone.

Two measurements, each a fresh interpreter timing its own imports with ``perf_counter`` (interpreter
start-up excluded, the same for both sides), the two sides alternating in pairs, the ratio taken
within each pair, min/median/max over the pairs:

- **cold start** (issue 13's target): ``import function_app`` (what the Functions worker does to index
  the functions), then every module the first run imports, ours (``function_app`` leaves the runner,
  the sources, the sinks and the fan-out for the first invocation) and the SDKs, against importing the
  runtime SDKs alone (one top-level module per project of requirements.txt), the floor no code of
  ours can go under. The ratio says what our own modules add, wherever they are imported.
- **indexing**: ``import function_app`` alone against ``azure.functions`` and croniter alone (the
  trigger decorators and the schedule check indexing needs): how long the worker takes to list the
  functions, which is what lazy imports shorten.

The interpreters see the packages the Function App has, not the development venv's: the locked
runtime wheels (requirements.lock, installed once as ``tools/package.py`` installs them into the
zip, cached under ``.venv/``) and the project root, with ``python -I -S`` (no site-packages, no
PYTHON* variables). The venv holds packages the Function App does not have and other versions of
some it has: aiohttp (a dependency of checkov) is imported by the storage SDKs whenever it is
installed, about 100 ms that only the side importing azure-storage-queue first paid.
``--packages venv`` measures in the venv instead.
Run: ``python -m bench import [--repeat 21] [--packages lock|venv]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.drain_child import LAZY_IMPORTS
from bench.measure import ROOT, child_env, machine

TARGET_RATIO = 1.1
#: Each project of requirements.txt and the top-level module that stands for it.
RUNTIME_SDKS = {
    "azure-functions": "azure.functions",
    "azure-identity": "azure.identity",
    "azure-keyvault-secrets": "azure.keyvault.secrets",
    "azure-monitor-ingestion": "azure.monitor.ingestion",
    "azure-monitor-opentelemetry-exporter": "azure.monitor.opentelemetry.exporter",
    "azure-data-tables": "azure.data.tables",
    "azure-storage-queue": "azure.storage.queue",
    "croniter": "croniter",
    "orjson": "orjson",
    "requests": "requests",
    "opentelemetry-sdk": "opentelemetry.sdk._logs",
}
SDK_MODULES = tuple(RUNTIME_SDKS.values())
#: Our modules the Function App's first invocations import: the timer's run (the runner and what it
#: imports on first use) and the queue triggers' fan-out.
FIRST_RUN_MODULES = ("auditsync.runner", *LAZY_IMPORTS, "auditsync.fanout.deployment")
#: function_app, then everything its first run imports (those already loaded cost nothing).
APP_MODULES = ("function_app", *FIRST_RUN_MODULES, *SDK_MODULES)
#: What indexing cannot do without: the trigger decorators and the schedule check.
INDEXING_FLOOR = ("azure.functions", "croniter")
LOCK_FILE = ROOT / "requirements.lock"


def requirement_names(path: Path = ROOT / "requirements.txt") -> set[str]:
    """The projects requirements.txt names (normalised), to keep ``RUNTIME_SDKS`` complete."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def runtime_site(lock: Path = LOCK_FILE) -> Path:
    """The locked runtime packages installed in a folder of their own (once per lock file's content)."""
    from tools.package import install_dependencies

    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    site = ROOT / ".venv" / f"bench-runtime-{digest}"
    if not (site / ".complete").exists():
        partial = site.with_name(site.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        install_dependencies(lock, partial)
        (partial / ".complete").touch()
        shutil.rmtree(site, ignore_errors=True)
        partial.rename(site)
    return site


def import_seconds(modules: tuple[str, ...], site: Path | None) -> tuple[float, float]:
    """Seconds a fresh interpreter spends importing ``modules`` (start-up not included), and its RSS
    in MiB afterwards. ``site``: the packages it may import (None: the venv's)."""
    paths = [str(site), str(ROOT)] if site is not None else [str(ROOT)]
    code = (
        "import importlib, sys, time\n"
        f"sys.path[:0] = {paths!r}\n"
        "t = time.perf_counter()\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "seconds = time.perf_counter() - t\n"
        "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')]\n"
        "print(seconds, int(rss[0].split()[1]) / 1024 if rss else 0.0)\n"
    )
    isolated = ["-I", "-S"] if site is not None else []
    out = subprocess.run(
        [sys.executable, *isolated, "-c", code],
        cwd=ROOT,
        env=child_env({}),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"importing {', '.join(modules)} failed:\n{out.stderr[-3000:]}")
    seconds, rss = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(rss)


def paired(
    app_modules: tuple[str, ...], floor_modules: tuple[str, ...], repeat: int, site: Path | None
) -> dict[str, Any]:
    """``repeat`` pairs, their order alternating; medians and the paired ratio's spread."""
    import_seconds(app_modules, site)  # warm the file cache and the .pyc files: "cold" means a new process
    pairs = []
    for i in range(repeat):
        if i % 2:
            floor = import_seconds(floor_modules, site)
            app = import_seconds(app_modules, site)
        else:
            app = import_seconds(app_modules, site)
            floor = import_seconds(floor_modules, site)
        pairs.append((app, floor))
    ratios = [app[0] / floor[0] for app, floor in pairs]
    return {
        "app_ms": statistics.median(a[0] for a, _ in pairs) * 1000,
        "floor_ms": statistics.median(f[0] for _, f in pairs) * 1000,
        "app_rss_mb": statistics.median(a[1] for a, _ in pairs),
        "floor_rss_mb": statistics.median(f[1] for _, f in pairs),
        "ratio": {"low": min(ratios), "median": statistics.median(ratios), "high": max(ratios)},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench import", description=__doc__)
    parser.add_argument("--repeat", type=int, default=21, help="pairs of measurements (default 21)")
    parser.add_argument(
        "--packages",
        choices=("lock", "venv"),
        default="lock",
        help="the locked runtime packages as the Function App has them (default), or the dev venv's",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    missing = requirement_names() - set(RUNTIME_SDKS)
    if missing:
        raise SystemExit(
            f"requirements.txt names {', '.join(sorted(missing))}: add a module for it to RUNTIME_SDKS"
        )
    site = runtime_site() if args.packages == "lock" else None
    cold = paired(APP_MODULES, SDK_MODULES, args.repeat, site)
    indexing = paired(("function_app",), INDEXING_FLOOR, args.repeat, site)
    result = {
        "app_ms": cold["app_ms"],
        "sdk_ms": cold["floor_ms"],
        "app_rss_mb": cold["app_rss_mb"],
        "sdk_rss_mb": cold["floor_rss_mb"],
        "ratio": cold["ratio"],
        "indexing": indexing,
        "repeat": args.repeat,
        "packages": args.packages,
        "sdk_modules": list(SDK_MODULES),
        "first_run_modules": list(FIRST_RUN_MODULES),
    }
    r = result["ratio"]
    met = r["median"] <= TARGET_RATIO
    where = "the locked runtime packages (python -I -S)" if site is not None else "the development venv"
    print(f"Cold-import benchmark: {machine()}; packages: {where}")
    print(
        f"  import function_app, then what its first run imports (ours and the SDKs): {result['app_ms']:.0f} ms, "
        f"{result['app_rss_mb']:.0f} MB RSS (median of {args.repeat})"
    )
    print(
        f"  import the SDKs alone ({', '.join(SDK_MODULES)}): {result['sdk_ms']:.0f} ms, "
        f"{result['sdk_rss_mb']:.0f} MB RSS"
    )
    print(f"  cold start / SDKs, paired: {r['median']:.2f} (min {r['low']:.2f}, max {r['high']:.2f})")
    i = indexing["ratio"]
    print(
        f"  indexing: import function_app {indexing['app_ms']:.0f} ms, {indexing['app_rss_mb']:.0f} MB; "
        f"{' + '.join(INDEXING_FLOOR)} alone {indexing['floor_ms']:.0f} ms, {indexing['floor_rss_mb']:.0f} MB; "
        f"paired {i['median']:.2f} (min {i['low']:.2f}, max {i['high']:.2f})"
    )
    print(f"  targets: cold start ratio {r['median']:.2f} (<= {TARGET_RATIO}): {'met' if met else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
