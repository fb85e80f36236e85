"""Build the Function App package zip reproducibly: the same sources always give the same bytes.

Only runtime files go in (function_app.py, host.json, requirements.txt and the auditsync package, without
caches); entries are sorted, timestamps and permissions fixed. Flex Consumption installs requirements.txt
with a remote build when the templates deploy the zip (OneDeploy ``remoteBuild: true``).

    python tools/package.py                 # writes dist/auditsync.zip
    python tools/package.py -o out.zip
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_FILES = ("function_app.py", "host.json", "requirements.txt")
RUNTIME_PACKAGES = ("auditsync",)
EXCLUDED_PARTS = {"__pycache__"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
#: The zip format cannot store times before 1980; any fixed time makes the build reproducible.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def runtime_files(root: Path = ROOT) -> Iterator[Path]:
    """Every file the Function App needs at runtime, as paths relative to ``root``, sorted."""
    found = []
    for name in RUNTIME_FILES:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"runtime file missing: {name}")
        found.append(Path(name))
    for package in RUNTIME_PACKAGES:
        for path in (root / package).rglob("*"):
            rel = path.relative_to(root)
            if (
                path.is_file()
                and not EXCLUDED_PARTS & set(rel.parts)
                and path.suffix not in EXCLUDED_SUFFIXES
            ):
                found.append(rel)
    return iter(sorted(found, key=lambda p: p.as_posix()))


def build(output: Path, root: Path = ROOT) -> str:
    """Write the zip to ``output`` and return its sha256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for rel in runtime_files(root):
            info = zipfile.ZipInfo(rel.as_posix(), date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            archive.writestr(info, (root / rel).read_bytes(), compresslevel=9)
    return hashlib.sha256(output.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "dist" / "auditsync.zip")
    args = parser.parse_args(argv)
    digest = build(args.output)
    print(f"{args.output} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
