"""``python -m auditsync tenants ...`` on a file registry: what an MSP types, what it prints, what is saved."""

from __future__ import annotations

import io
from pathlib import Path

from auditsync.cli import main
from auditsync.tenants import FileTenantRegistry


def _cli(tmp_path: Path, *argv: str, **env: str) -> tuple[int, str]:
    out = io.StringIO()
    base = {
        "TENANT_REGISTRY": "file",
        "AUDITSYNC_DATA_DIR": str(tmp_path),
        "KEY_VAULT_URL": "https://msp-vault.vault.azure.net",
        "WORK_QUEUE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    }
    code = main(list(argv), env={**base, **env}, out=out)
    return code, out.getvalue()


def test_add_list_disable_enable_remove(tmp_path: Path) -> None:
    code, text = _cli(
        tmp_path,
        "tenants",
        "add",
        "contoso",
        "--set",
        "SOURCES=onepassword",
        "--set",
        "ONEPASSWORD_TOKEN_SECRET=contoso-op",
        "--set",
        "ONEPASSWORD_BASE_URL=https://events.1password.eu",
    )
    assert code == 0 and "tenant contoso saved (enabled)" in text
    registry = FileTenantRegistry(tmp_path / "tenants.json")
    (tenant,) = registry.list()
    assert dict(tenant.settings) == {
        "ONEPASSWORD_BASE_URL": "https://events.1password.eu",
        "ONEPASSWORD_TOKEN_SECRET": "contoso-op",
        "SOURCES": "onepassword",
    }
    assert _cli(tmp_path, "tenants", "disable", "contoso")[0] == 0
    assert registry.get("contoso").enabled is False  # type: ignore[union-attr]
    code, text = _cli(tmp_path, "tenants", "list")
    assert "contoso" in text and "disabled" in text and "ONEPASSWORD_TOKEN_SECRET=contoso-op" in text
    assert _cli(tmp_path, "tenants", "enable", "contoso")[0] == 0
    assert registry.get("contoso").enabled is True  # type: ignore[union-attr]
    assert _cli(tmp_path, "tenants", "remove", "contoso")[0] == 0
    assert registry.list() == []
    code, text = _cli(tmp_path, "tenants", "remove", "contoso")
    assert code == 1 and "no tenant named 'contoso'" in text


def test_a_tenant_the_dispatcher_would_refuse_is_not_saved(tmp_path: Path) -> None:
    code, text = _cli(tmp_path, "tenants", "add", "acme", "--set", "ONEPASSWORD_TOKEN=op-secret-value-123")
    assert code == 2 and "store the value in Key Vault" in text and "op-secret-value-123" not in text
    code, text = _cli(tmp_path, "tenants", "add", "acme", "--set", "KEEPER_BASE_URL=https://evil.example")
    assert code == 2 and "KEEPER_BASE_URL" in text
    code, text = _cli(tmp_path, "tenants", "add", "Bad_Name")
    assert code == 2 and "name must be" in text
    assert FileTenantRegistry(tmp_path / "tenants.json").list() == []


def test_without_a_registry_the_commands_say_the_deployment_is_single_tenant(tmp_path: Path) -> None:
    code, text = _cli(tmp_path, "tenants", "list", TENANT_REGISTRY="none")
    assert code == 2 and "single-tenant" in text and "TENANT_REGISTRY=file" in text
