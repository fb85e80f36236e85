"""Every setting the code reads is documented in the README and the sample local settings, and nothing more."""

from __future__ import annotations

import json
import re
from pathlib import Path

from auditsync.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
HOST_SETTINGS = {"AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME"}


def test_readme_settings_table_matches_the_code() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- settings-table", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE)
    assert names == list(SETTINGS)


def test_readme_defaults_match_the_code() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, (default, _) in SETTINGS.items():
        row = re.search(rf"^\| `{name}` \| (.+?) \|", text, flags=re.MULTILINE)
        assert row is not None, name
        if default and name != "DATA_COLLECTOR_URL":
            assert row.group(1) == f"`{default}`", name


def test_sample_local_settings_cover_every_setting() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    assert set(sample) - HOST_SETTINGS == set(SETTINGS)
    for name in ("KEEPER_TOKEN", "ONEPASSWORD_TOKEN", "WORKSPACE_KEY", "CHECKPOINT_CONNECTION_STRING"):
        assert sample[name] == "", f"{name} must not hold a sample secret"


def test_function_timeout_leaves_room_for_the_run_budget() -> None:
    from auditsync.durations import parse_duration

    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    hours, minutes, seconds = (int(p) for p in host["functionTimeout"].split(":"))
    timeout = hours * 3600 + minutes * 60 + seconds
    budget = parse_duration(SETTINGS["RUN_TIME_BUDGET"][0]).total_seconds()
    assert budget + 60 <= timeout, "the run must stop by itself well before the host kills it"
