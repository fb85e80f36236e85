"""tools/package.py builds the Function App zip reproducibly, with exactly the runtime files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.infra import ROOT
from tools.package import build


def _build(out: Path) -> bytes:
    subprocess.run(
        [sys.executable, "tools/package.py", "-o", str(out)], cwd=ROOT, check=True, capture_output=True
    )
    return out.read_bytes()


def _tracked_runtime_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "function_app.py", "host.json", "requirements.txt", "auditsync"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return set(listed)


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first = _build(tmp_path / "a.zip")
    # The same sources with other timestamps and another checkout path must give the same bytes.
    copy = tmp_path / "checkout"
    for name in _tracked_runtime_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target)
        os.utime(target, (1_900_000_000, 1_900_000_000))
    second = tmp_path / "b.zip"
    build(second, root=copy)
    assert first == second.read_bytes()


def test_zip_holds_exactly_the_runtime_files(tmp_path: Path) -> None:
    out = tmp_path / "auditsync.zip"
    _build(out)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert set(names) == _tracked_runtime_files()
        assert {"function_app.py", "host.json", "requirements.txt", "auditsync/config.py"} <= set(names)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert archive.read(info) == (ROOT / info.filename).read_bytes()


def _import_function_app(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import function_app, auditsync.config; print(function_app.__file__)"],
        cwd=where,
        env={"PATH": "", "PYTHONPATH": str(where)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_package_imports_on_its_own(tmp_path: Path) -> None:
    """What the Function App loads is complete: function_app imports from the unpacked zip alone."""
    from_repo = _import_function_app(ROOT)
    if from_repo.returncode != 0:
        pytest.skip("function_app does not import from the repository either: " + from_repo.stderr[-300:])
    out = tmp_path / "auditsync.zip"
    _build(out)
    app = tmp_path / "app"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(app)
    result = _import_function_app(app)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(app / "function_app.py")
