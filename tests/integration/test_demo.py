"""The demo a newcomer runs first (``./dev run`` with no tenant, ``./dev demo``): the whole flow against the
simulators, the user's settings validated first, everything under ``$AUDITSYNC_DATA_DIR/demo``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from auditsync.cli import main as cli
from simulators.demo import main as demo


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    return demo(argv, env=env, out=out), out.getvalue()


def table_rows(data_dir: Path, table: str) -> list[dict[str, object]]:
    path = data_dir / "demo" / "tables" / f"{table}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_demo_shows_the_whole_flow_with_run_s_summary_and_status_reads_it_afterwards(
    tmp_path: Path,
) -> None:
    code, out = run(["--events", "40"], {"AUDITSYNC_DATA_DIR": str(tmp_path)})

    assert code == 0, out
    assert "undeclared columns or type errors: 0" in out
    kinds = [row["log_source"] for row in table_rows(tmp_path, "OnePasswordEventLogs_CL")]
    assert (kinds.count("itemusages"), kinds.count("auditevents"), kinds.count("healthevents")) == (65, 40, 9)
    assert len(table_rows(tmp_path, "KeeperSecurityEventNewLogs_CL")) == 40
    # The run summary, as `run` prints it: events, pages, lag per stream, for each of the three runs.
    assert out.count("onepassword/auditevents      ok") == 1 and "pages  lag" in out
    assert out.count("run ") >= 3 and all(len(line) <= 200 for line in out.splitlines()), out
    # What the closing lines promise: status over the demo's data dir shows its streams.
    status = io.StringIO()
    assert cli(["status"], env={"AUDITSYNC_DATA_DIR": str(tmp_path / "demo")}, out=status) == 0
    assert "onepassword/itemusages" in status.getvalue() and "idle" in status.getvalue(), status.getvalue()
    assert f"AUDITSYNC_DATA_DIR={tmp_path / 'demo'} ./dev cli status" in out


def test_the_demo_applies_the_collection_settings_it_is_given(tmp_path: Path) -> None:
    code, out = run(
        ["--events", "20"],
        {
            "AUDITSYNC_DATA_DIR": str(tmp_path),
            "SOURCES": "onepassword",
            "ONEPASSWORD_EVENT_TYPES": "signinattempts",
        },
    )
    assert code == 0, out
    assert "keeper/events" not in out and "onepassword/auditevents" not in out
    kinds = {row["log_source"] for row in table_rows(tmp_path, "OnePasswordEventLogs_CL")}
    assert kinds == {"signinattempts", "healthevents"}


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("SOURCES", "foo", "SOURCES: unknown value(s) foo"),
        ("RUN_TIME_BUDGET", "abc", "RUN_TIME_BUDGET: 'abc' is not a duration"),
    ],
)
def test_bad_settings_end_the_demo_before_anything_starts(
    tmp_path: Path, setting: str, value: str, says: str
) -> None:
    code, out = run([], {"AUDITSYNC_DATA_DIR": str(tmp_path), setting: value})
    assert code == 2 and says in out, out
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    "argv", [["--events", "-5"], ["--events", "0"], ["--events", "many"], ["--tenants", "-1"]]
)
def test_nonsense_arguments_are_refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        run(argv, {"AUDITSYNC_DATA_DIR": str(tmp_path)})
    assert caught.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_the_multi_tenant_demo_delivers_each_tenant_into_its_own_dcr(tmp_path: Path) -> None:
    code, text = run(["--tenants", "2", "--events", "20"], {"AUDITSYNC_DATA_DIR": str(tmp_path)})
    assert code == 0, text
    assert "8 work items on the queue" in text and "collected 8 items" in text
    for name in ("customer-1", "customer-2"):
        assert f"{name:<12}    80 events, 4 health rows with Tenant={name} (ok: 4)" in text
    status = [line for line in text.splitlines() if line.startswith("customer-") and "/" in line]
    assert len(status) == 8 and all(line.endswith("ok") for line in status), status

    # The tenants' outcomes as one JSON document, per tenant (what status --json promises).
    out = io.StringIO()
    env = {
        "AUDITSYNC_DATA_DIR": str(tmp_path / "demo-tenants"),
        "TENANT_REGISTRY": "file",
        "KEY_VAULT_URL": "https://demo.vault.azure.net",
        "WORK_QUEUE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    }
    assert cli(["status", "--json"], env=env, out=out) == 0, out.getvalue()
    document = json.loads(out.getvalue())
    assert [t["tenant"] for t in document["tenants"]] == ["customer-1", "customer-2"]
    for tenant in document["tenants"]:
        assert tenant["enabled"] and tenant["problem"] is None
        assert {s["stream"]: s["status"] for s in tenant["streams"]} == {
            "onepassword/auditevents": "ok",
            "onepassword/itemusages": "ok",
            "onepassword/signinattempts": "ok",
            "keeper/events": "ok",
        }
