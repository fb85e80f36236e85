"""Where a release lives, derived from the two facts written once: the repository (pyproject.toml
``[project.urls] Repository``) and the version (``auditsync/__init__.py``).

Everything that names a release URL (the templates' default ``packageUrl``, the wizard's advanced field, the
README's Deploy to Azure button, the release workflow's asset name) comes from here, so a fork or a version
bump changes one line and ``python tools/build_infra.py`` rewrites the rest.

    python tools/release.py            # prints the derived values as JSON (the release workflow reads it)
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.package import asset_name, version  # noqa: E402

GITHUB = "https://github.com/"


@dataclass(frozen=True)
class Release:
    repository: str  # owner/name
    version: str
    tag: str
    asset: str
    package_url: str
    checksum_url: str
    template_url: str
    ui_definition_url: str
    button_url: str


def repository(root: Path = ROOT) -> str:
    """``owner/name`` from pyproject.toml's ``[project.urls] Repository``."""
    url = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"][
        "Repository"
    ]
    found = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)/?", url)
    if not found:
        raise ValueError(f"pyproject.toml Repository must be https://github.com/<owner>/<name>, not {url}")
    return found.group(1)


def release(root: Path = ROOT) -> Release:
    repo, ver = repository(root), version(root)
    tag = f"v{ver}"
    asset = asset_name(ver)
    download = f"{GITHUB}{repo}/releases/download/{tag}"
    # The portal reads the templates from raw.githubusercontent.com at the release tag: the same commit the
    # package was built from (release assets are served without the CORS headers the portal needs).
    raw = f"https://raw.githubusercontent.com/{repo}/{tag}/infra"
    template_url, ui_url = f"{raw}/azuredeploy.json", f"{raw}/createUiDefinition.json"
    button = (
        "https://portal.azure.com/#create/Microsoft.Template/uri/"
        f"{quote(template_url, safe='')}/createUIDefinitionUri/{quote(ui_url, safe='')}"
    )
    return Release(
        repository=repo,
        version=ver,
        tag=tag,
        asset=asset,
        package_url=f"{download}/{asset}",
        checksum_url=f"{download}/{asset}.sha256",
        template_url=template_url,
        ui_definition_url=ui_url,
        button_url=button,
    )


def main() -> int:
    print(json.dumps(asdict(release()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
