"""tools/package.py builds a self-contained, reproducible Function App package that runs on its own.

The locked wheels are downloaded once per module; both builds install them offline from that folder with
the same pip flags the release uses (wheels only, for Linux x86_64 CPython 3.11, hashes required).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from simulators.identity import ManagedIdentitySim
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.infra import ROOT
from tests.fixtures.pipeline import event_rows, health, uuid_counts
from tools.package import LOCK_FILE, MANIFEST, SITE_PACKAGES, build, download_wheels, version

# One worker downloads the wheels and builds the package once (module fixtures), not one copy per worker.
pytestmark = pytest.mark.xdist_group("package")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
#: Nothing of the test or dev tool chain may ride along into the Function App.
DEV_ONLY = ("pytest", "checkov", "ruff", "mypy", "hypothesis", "simulators", "tests", "bench", "tools", "uv")


def _tracked_runtime_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "function_app.py", "host.json", "requirements.txt", "auditsync"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return set(listed)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheels")
    download_wheels(ROOT / LOCK_FILE, dest)
    return dest


@pytest.fixture(scope="module")
def package(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "auditsync.zip"
    result = subprocess.run(
        [sys.executable, "tools/package.py", "-o", str(out), "--wheels", str(wheels), "--commit", COMMIT],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_two_builds_are_byte_identical_and_the_checksum_matches(
    package: Path, wheels: Path, tmp_path: Path
) -> None:
    # The same sources with other timestamps, in another checkout path, give the same bytes.
    copy = tmp_path / "checkout"
    for name in [*_tracked_runtime_files(), LOCK_FILE]:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target)
        os.utime(target, (1_900_000_000, 1_900_000_000))
    second = tmp_path / "again.zip"
    digest = build(second, root=copy, commit=COMMIT, wheels=wheels)
    assert package.read_bytes() == second.read_bytes()
    expected = hashlib.sha256(package.read_bytes()).hexdigest()
    assert digest == expected
    assert Path(f"{package}.sha256").read_text() == f"{expected}  {package.name}\n"


def test_zip_holds_the_runtime_files_the_locked_dependencies_and_a_manifest(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        files = {n: archive.read(n) for n in names}
        infos = archive.infolist()
    assert names == sorted(names)
    first_party = {n for n in names if not n.startswith(".python_packages/") and n != MANIFEST}
    assert first_party == _tracked_runtime_files()
    for name in first_party:
        assert files[name] == (ROOT / name).read_bytes(), name
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith(f"{SITE_PACKAGES}/bin/")], (
        "console scripts name the build host"
    )
    # Every locked distribution is installed, and nothing else.
    locked = set(re.findall(r"^([A-Za-z0-9_.-]+)==([^ ]+) ", (ROOT / LOCK_FILE).read_text(), re.M))
    installed = {
        (m.group(1).lower().replace("_", "-"), m.group(2))
        for n in names
        if (m := re.match(rf"{SITE_PACKAGES}/([^/]+)-([^-/]+)\.dist-info/METADATA$", n))
    }
    assert installed == {(name.lower().replace("_", "-"), ver) for name, ver in locked}
    # Linux x86_64 CPython 3.11 binaries, never another platform's.
    binaries = [n for n in names if n.endswith(".so")]
    assert binaries and all("cpython-311-x86_64-linux-gnu" in n or ".abi3." in n for n in binaries), binaries
    top_level = {n.split("/")[3] for n in names if n.startswith(SITE_PACKAGES + "/")} | {
        n.split("/")[0] for n in names
    }
    leaked = [t for t in top_level if t.split("-")[0].split(".")[0].lower() in DEV_ONLY]
    assert not leaked, leaked
    manifest = json.loads(files[MANIFEST])
    assert manifest["version"] == version() and manifest["commit"] == COMMIT
    assert manifest["requirementsLockSha256"] == hashlib.sha256((ROOT / LOCK_FILE).read_bytes()).hexdigest()
    assert manifest["files"] == {n: hashlib.sha256(files[n]).hexdigest() for n in names if n != MANIFEST}


def test_the_lock_pins_every_runtime_requirement_with_hashes() -> None:
    lock = (ROOT / LOCK_FILE).read_text()
    pins = {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"^([\w.-]+)==(\S+)", lock, re.M)
    }
    entries = re.split(r"\n(?=[A-Za-z])", lock.split("\n", 2)[2])
    assert all("--hash=sha256:" in e for e in entries if e.strip() and not e.startswith("#"))
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is in requirements.txt but not in {LOCK_FILE}"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} does not satisfy {req.specifier}"


def test_one_version_everywhere() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == version()


RUN_ONE_TICK = """
import sys
app_root = sys.argv[1]
# What the Functions Python worker does: the app folder and .python_packages/lib/site-packages on sys.path.
sys.path[:0] = [app_root, app_root + "/.python_packages/lib/site-packages"]
import function_app
from azure.functions.timer import TimerRequest
(fn,) = [f for f in function_app.app.get_functions() if f.get_function_name() == "collect"]
trigger = fn.get_trigger().get_dict_repr()
print("indexed", fn.get_function_name(), trigger["type"], trigger["schedule"])
fn.get_user_function()(TimerRequest(past_due=False, schedule_status={}, schedule={}))
print("origin", function_app.__file__, __import__("azure.identity").identity.__file__)
"""


def test_the_unpacked_package_runs_a_tick_in_an_empty_venv(
    package: Path,
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    tmp_path: Path,
) -> None:
    """A fresh venv with nothing installed, the unpacked zip, and the app settings the template sets."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    app = tmp_path / "wwwroot"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(app)
    token = onepassword_sim.issue_token(features=("auditevents",))
    keyvault_sim.set_secret("onepassword-api-token", token)
    audit = onepassword_sim.generate("auditevents", 120, step=timedelta(seconds=30))
    env = {
        # identity_sim / keyvault_sim put the managed-identity endpoint and the vault's CA in os.environ.
        **{
            k: v
            for k, v in os.environ.items()
            if k.startswith(("IDENTITY_", "MSI_", "REQUESTS_CA", "SSL_CERT"))
        },
        "NO_PROXY": "127.0.0.1,localhost",
        "PATH": "/usr/bin:/bin",
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "ONEPASSWORD_EVENT_TYPES": "auditevents",
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "CHECKPOINT_STORE": "file",
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        "RUN_TIME_BUDGET": "1m",
        "TIMER_SCHEDULE": "0 */10 * * * *",
    }
    result = subprocess.run(
        # -I: no PYTHONPATH, no user site, not the repository's cwd: only the venv's stdlib and the zip.
        [str(venv / "bin" / "python"), "-I", "-c", RUN_ONE_TICK, str(app)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "indexed collect timerTrigger 0 */10 * * * *" in result.stdout
    origin = result.stdout.split("origin ", 1)[1].split()
    assert origin[0] == str(app / "function_app.py")
    assert origin[1].startswith(str(app / SITE_PACKAGES))
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in audit)
    assert health(logs_ingestion_sim)["onepassword/auditevents"]["Status"] == "ok"
    assert token not in result.stdout + result.stderr


def test_the_manifest_commit_says_when_the_sources_differ_from_it(tmp_path: Path) -> None:
    from tools.package import git_commit

    assert git_commit(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (tmp_path / "host.json").write_text("{}")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "host.json"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("not packaged")
    assert git_commit(tmp_path) == head
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    assert git_commit(tmp_path) == f"{head}-dirty"
