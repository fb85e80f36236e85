"""``python -m auditsync demo --tenants N``: the multi-tenant flow a newcomer sees, against the simulators."""

from __future__ import annotations

import io
from pathlib import Path

from auditsync.cli import main


def test_the_multi_tenant_demo_delivers_each_tenant_into_its_own_dcr(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(
        ["demo", "--tenants", "2", "--events", "20"], env={"AUDITSYNC_DATA_DIR": str(tmp_path)}, out=out
    )
    text = out.getvalue()
    assert code == 0, text
    assert "8 work items on the queue" in text and "collected 8 items" in text
    for name in ("customer-1", "customer-2"):
        assert f"{name:<12}    80 events, 4 health rows with Tenant={name} (ok: 4)" in text
    status = [line for line in text.splitlines() if line.startswith("customer-") and "/" in line]
    assert len(status) == 8 and all(line.endswith("ok") for line in status), status
