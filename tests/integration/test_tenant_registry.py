"""The tenant registry contract, on a file and on Azure Table Storage (Azurite, the real SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auditsync.errors import ConfigError
from auditsync.tenants import FileTenantRegistry, TableTenantRegistry, Tenant, TenantRegistry


@pytest.fixture(params=["file", "table"])
def registry(
    request: pytest.FixtureRequest, tmp_path: Path, azurite_connection_string: str, azurite_table_name: str
) -> Iterator[TenantRegistry]:
    if request.param == "file":
        yield FileTenantRegistry(tmp_path / "tenants.json")
    else:
        yield TableTenantRegistry.from_connection_string(azurite_connection_string, azurite_table_name)


ACME = Tenant(
    "acme",
    {
        "SOURCES": "onepassword",
        "ONEPASSWORD_TOKEN_SECRET": "acme-1password",
        "ONEPASSWORD_BASE_URL": "https://events.1password.eu",
    },
)
GLOBEX = Tenant("globex", {"SOURCES": "keeper", "KEEPER_TOKEN_SECRET": "globex-keeper"}, enabled=False)


def test_an_empty_registry_lists_nothing(registry: TenantRegistry) -> None:
    assert registry.list() == []
    assert registry.get("acme") is None
    assert registry.remove("acme") is False


def test_put_get_list_replace_remove(registry: TenantRegistry) -> None:
    registry.put(GLOBEX)
    registry.put(ACME)
    assert registry.list() == [ACME, GLOBEX]  # sorted by name, settings and flag kept
    assert registry.get("globex") == GLOBEX
    assert registry.get("globex").enabled is False  # type: ignore[union-attr]

    renamed_secret = Tenant("acme", {**ACME.settings, "ONEPASSWORD_TOKEN_SECRET": "acme-1password-v2"})
    registry.put(renamed_secret)
    assert registry.get("acme") == renamed_secret
    assert len(registry.list()) == 2

    assert registry.remove("acme") is True
    assert registry.list() == [GLOBEX]


def test_a_hand_edited_file_with_a_forbidden_setting_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text('{"tenants": [{"name": "acme", "settings": {"ONEPASSWORD_TOKEN": "eyJabc"}}]}')
    with pytest.raises(ConfigError) as caught:
        FileTenantRegistry(path).list()
    assert "ONEPASSWORD_TOKEN cannot be a tenant setting" in str(caught.value)
    assert "eyJabc" not in str(caught.value)


def test_a_broken_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        FileTenantRegistry(path).list()
