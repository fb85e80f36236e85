"""``python -m bench [NAME|all] [ARGS...]``: run one benchmark, or every one in turn (the default).

A benchmark is a module ``bench/<name>_bench.py`` with ``main(argv: list[str] | None) -> dict``; it is
found by its file name, so adding one needs no change here. ``python -m bench NAME --help`` shows its
options; with ``all`` each runs with its defaults.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SUFFIX = "_bench"


def benchmarks() -> dict[str, str]:
    """Benchmark name -> module name, in alphabetical order."""
    found = (m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    return {name.removesuffix(SUFFIX): f"bench.{name}" for name in sorted(found) if name.endswith(SUFFIX)}


def entry(module: str) -> Callable[[list[str] | None], Any]:
    main: Callable[[list[str] | None], Any] = importlib.import_module(module).main
    return main


def run(argv: list[str]) -> int:
    known = benchmarks()
    name = argv[0] if argv else "all"
    if name in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(known) or "none")
        return 0
    if name == "all":
        for module in known.values():
            entry(module)([])
            print()
        return 0
    if name not in known:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join([*known, 'all'])}", file=sys.stderr)
        return 2
    entry(known[name])(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
