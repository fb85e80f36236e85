"""Build the self-contained Function App package: the same inputs always give the same bytes.

The zip holds the runtime files (function_app.py, host.json, requirements.txt, the auditsync package) and
every runtime dependency for the Functions host (Linux x86_64, CPython 3.11) under
``.python_packages/lib/site-packages``, installed by pip from wheels only, with the hashes pinned in
``requirements.lock``. The host puts that folder on ``sys.path``, so no remote build runs at deploy time
(the templates deploy with ``remoteBuild: false``). A manifest (``auditsync-manifest.json``: version,
commit, lock hash, sha256 of every file) goes inside; ``<zip>.sha256`` (sha256sum format) goes beside it.

Reproducible: entries sorted, timestamps and permissions fixed, no bytecode, no console scripts (their
shebang names the build machine's interpreter), wheels fixed by hash.

    python tools/package.py                      # dist/auditsync-<version>.zip and .sha256
    python tools/package.py -o out.zip --commit <sha>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = "requirements.lock"
RUNTIME_FILES = ("function_app.py", "host.json", "requirements.txt")
RUNTIME_PACKAGES = ("auditsync",)
EXCLUDED_PARTS = {"__pycache__"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
SITE_PACKAGES = ".python_packages/lib/site-packages"
MANIFEST = "auditsync-manifest.json"
#: What the Flex Consumption Python 3.11 workers run; pip picks wheels for exactly this.
TARGET = {"platform": "manylinux2014_x86_64", "python_version": "3.11", "implementation": "cp"}
#: The zip format cannot store times before 1980; any fixed time makes the build reproducible.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: Installed by pip but useless on the host and machine-specific (script shebangs) or noise.
DROPPED_FROM_SITE_PACKAGES = ("bin",)


def version(root: Path = ROOT) -> str:
    """The version in ``auditsync/__init__.py`` (the one place it is written)."""
    text = (root / "auditsync" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not found:
        raise ValueError("auditsync/__init__.py has no __version__")
    return found.group(1)


def asset_name(ver: str) -> str:
    """The release asset name the templates' default package URL points at."""
    return f"auditsync-{ver}.zip"


def runtime_files(root: Path = ROOT) -> Iterator[Path]:
    """Every first-party file the Function App needs at runtime, relative to ``root``, sorted."""
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


def _pip(verb: str, lock: Path, *extra: str) -> None:
    """Run pip ``verb`` on the locked wheels for the Functions host (hash-checked, wheels only)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        verb,
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--require-hashes",
        "--no-deps",  # the lock is complete; a missing pin fails here instead of resolving silently
        "--only-binary=:all:",
        "--platform",
        TARGET["platform"],
        "--python-version",
        TARGET["python_version"],
        "--implementation",
        TARGET["implementation"],
        *extra,
        "-r",
        str(lock),
    ]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "SOURCE_DATE_EPOCH": "315532800"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip {verb} failed for {lock.name} (Functions host wheels):\n{result.stderr[-3000:]}"
        )


def download_wheels(lock: Path, dest: Path) -> None:
    """Fetch the locked wheels into ``dest`` once, for offline builds (``--wheels``)."""
    _pip("download", lock, "--dest", str(dest))


def install_dependencies(lock: Path, target: Path, wheels: Path | None = None) -> None:
    """Install the locked wheels into ``target``: from the index, or only from ``wheels`` when given."""
    source = ("--no-index", "--find-links", str(wheels)) if wheels else ()
    _pip("install", lock, *source, "--no-compile", "--target", str(target))
    for name in DROPPED_FROM_SITE_PACKAGES:
        shutil.rmtree(target / name, ignore_errors=True)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def git_commit(root: Path) -> str:
    """The checked-out commit (``<sha>-dirty`` when a packaged file differs from it), or ``unknown``."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "unknown"
    paths = [*RUNTIME_FILES, *RUNTIME_PACKAGES, LOCK_FILE]
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], cwd=root, capture_output=True, text=True, check=False
    )
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def collect(root: Path, site_packages: Path) -> dict[str, bytes]:
    """Archive path -> content for every file that goes into the zip (manifest excluded)."""
    files = {rel.as_posix(): (root / rel).read_bytes() for rel in runtime_files(root)}
    for path in site_packages.rglob("*"):
        if path.is_file() and path.suffix not in EXCLUDED_SUFFIXES:
            files[f"{SITE_PACKAGES}/{path.relative_to(site_packages).as_posix()}"] = path.read_bytes()
    return files


def manifest(files: dict[str, bytes], ver: str, commit: str, lock: bytes) -> bytes:
    doc = {
        "name": "auditsync",
        "version": ver,
        "commit": commit,
        "target": TARGET,
        "requirementsLockSha256": _sha256(lock),
        "files": {name: _sha256(files[name]) for name in sorted(files)},
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def write_zip(output: Path, files: dict[str, bytes]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            archive.writestr(info, files[name], compresslevel=9)


def build(output: Path, root: Path = ROOT, commit: str | None = None, wheels: Path | None = None) -> str:
    """Write the zip to ``output`` and ``<output>.sha256`` beside it; return the zip's sha256."""
    lock = root / LOCK_FILE
    if not lock.is_file():
        raise FileNotFoundError(f"{LOCK_FILE} missing: see the command at the top of requirements.lock")
    ver = version(root)
    with tempfile.TemporaryDirectory(prefix="auditsync-package-") as work:
        site_packages = Path(work) / "site-packages"
        install_dependencies(lock, site_packages, wheels)
        files = collect(root, site_packages)
    files[MANIFEST] = manifest(files, ver, commit or git_commit(root), lock.read_bytes())
    write_zip(output, files)
    digest = _sha256(output.read_bytes())
    Path(f"{output}.sha256").write_text(f"{digest}  {output.name}\n", encoding="utf-8")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="default: dist/auditsync-<version>.zip")
    parser.add_argument("--commit", help="commit recorded in the manifest (default: git rev-parse HEAD)")
    parser.add_argument("--wheels", type=Path, help="install only from this folder of downloaded wheels")
    parser.add_argument("--print-version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.print_version:
        print(version())
        return 0
    output = args.output or ROOT / "dist" / asset_name(version())
    digest = build(output, commit=args.commit, wheels=args.wheels)
    print(f"{output} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
