"""Cold-import benchmark: ``import function_app`` against importing the SDKs it needs, alone.

A cold start of the Function App pays for every module ``function_app`` imports, and the first tick
for the SDKs it imports lazily (azure-identity, azure-monitor-ingestion, azure-data-tables are loaded
by the first run, not at indexing). So the app side imports ``function_app`` and then the SDKs (those
already loaded cost nothing); the other side imports the SDKs alone (what requirements.txt installs),
the floor no code of ours can go under. The ratio says what our own modules add. Each measurement is a fresh interpreter (``python -c``) that
times its own import with ``perf_counter`` (interpreter start-up excluded, the same for both); the
two alternate in pairs, the ratio is taken within each pair, min/median/max over the pairs.
Run: ``python -m bench import [--repeat 21]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.measure import ROOT, child_env, machine

TARGET_RATIO = 1.1
#: The top-level modules of the runtime requirements (requirements.txt).
SDK_MODULES = (
    "azure.functions",
    "azure.identity",
    "azure.keyvault.secrets",
    "azure.monitor.ingestion",
    "azure.data.tables",
    "croniter",
    "orjson",
    "requests",
    "tenacity",
)
#: function_app, then whatever SDK its import left for the first run to load.
APP_MODULES = ("function_app", *SDK_MODULES)


def import_seconds(modules: tuple[str, ...]) -> float:
    """Seconds a fresh interpreter spends importing ``modules`` (start-up not included)."""
    code = (
        "import time, importlib\n"
        "t = time.perf_counter()\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env({}), capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench import", description=__doc__)
    parser.add_argument("--repeat", type=int, default=21, help="pairs of measurements (default 21)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    import_seconds(APP_MODULES)  # warm the file cache and the .pyc files: "cold" means a new process
    pairs = []
    for i in range(args.repeat):
        if i % 2:
            sdk = import_seconds(SDK_MODULES)
            app = import_seconds(APP_MODULES)
        else:
            app = import_seconds(APP_MODULES)
            sdk = import_seconds(SDK_MODULES)
        pairs.append((app, sdk))
    ratios = [app / sdk for app, sdk in pairs]
    result = {
        "app_ms": statistics.median(a for a, _ in pairs) * 1000,
        "sdk_ms": statistics.median(s for _, s in pairs) * 1000,
        "ratio": {"low": min(ratios), "median": statistics.median(ratios), "high": max(ratios)},
        "repeat": args.repeat,
        "sdk_modules": list(SDK_MODULES),
    }
    met = result["ratio"]["median"] <= TARGET_RATIO
    print(f"Cold-import benchmark: {machine()}")
    print(
        f"  import function_app, then the SDKs it left for the first run: {result['app_ms']:.0f} ms (median of {args.repeat})"
    )
    print(f"  import the SDKs alone ({', '.join(SDK_MODULES)}): {result['sdk_ms']:.0f} ms")
    r = result["ratio"]
    print(f"  function_app / SDKs, paired: {r['median']:.2f} (min {r['low']:.2f}, max {r['high']:.2f})")
    print(f"  targets: ratio {r['median']:.2f} (<= {TARGET_RATIO}): {'met' if met else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
