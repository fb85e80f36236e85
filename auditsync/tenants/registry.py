"""Where tenants live: a JSON file for local runs, an Azure table for the Function App.

Both keep one record per tenant name. The table layout is PartitionKey ``tenant``, RowKey = the
tenant's name, ``Enabled`` (bool) and ``Settings`` (compact JSON text), so an operator can also read
and edit it in Storage Explorer. Neither store ever holds a token: tenants name Key Vault secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from auditsync.errors import AuditSyncError, ConfigError
from auditsync.failures import TENANT_TABLE, azure_failure, redact_url
from auditsync.retry import AZURE_SERVICES, DeadlineRetryPolicy, around_pipeline
from auditsync.tenants.model import Tenant

PARTITION = "tenant"
DEFAULT_TABLE = "auditsynctenants"


class TenantRegistry(Protocol):
    """The registry's four operations; ``put`` creates or replaces, ``remove`` says whether it existed."""

    def list(self) -> list[Tenant]: ...

    def get(self, name: str) -> Tenant | None: ...

    def put(self, tenant: Tenant) -> None: ...

    def remove(self, name: str) -> bool: ...


def _record(tenant: Tenant) -> dict[str, Any]:
    return {"name": tenant.name, "enabled": tenant.enabled, "settings": dict(tenant.settings)}


def _tenant(record: Any, where: str) -> Tenant:
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise ConfigError(f"{where}: a tenant record has no name.", hint="Fix or remove the record.")
    settings = record.get("settings") or {}
    if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
        raise ConfigError(
            f"{where}: tenant {record['name']!r} has settings that are not text.",
            hint="Every tenant setting is a string, as in the Function App's configuration.",
        )
    return Tenant(record["name"], settings, bool(record.get("enabled", True)))


class FileTenantRegistry:
    """``tenants.json`` under the data directory: readable, diffable, replaced atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"FileTenantRegistry({str(self.path)!r})"

    def list(self) -> list[Tenant]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"tenant registry {self.path}: unreadable ({type(exc).__name__}).",
                hint="Fix the JSON by hand or remove the file and add the tenants again.",
            ) from None
        records = document.get("tenants") if isinstance(document, dict) else None
        if not isinstance(records, list):
            raise ConfigError(
                f'tenant registry {self.path}: expected {{"tenants": [...]}}.',
                hint="Fix the JSON by hand or remove the file and add the tenants again.",
            )
        return sorted((_tenant(r, str(self.path)) for r in records), key=lambda t: t.name)

    def get(self, name: str) -> Tenant | None:
        return next((t for t in self.list() if t.name == name), None)

    def put(self, tenant: Tenant) -> None:
        tenants = {t.name: t for t in self.list()}
        tenants[tenant.name] = tenant
        self._write(tenants.values())

    def remove(self, name: str) -> bool:
        tenants = {t.name: t for t in self.list()}
        if tenants.pop(name, None) is None:
            return False
        self._write(tenants.values())
        return True

    def _write(self, tenants: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"tenants": [_record(t) for t in sorted(tenants, key=lambda t: t.name)]}
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".tenants-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temp, self.path)


class TableTenantRegistry:
    """The registry in an Azure table (same storage account as the checkpoints, its own table)."""

    def __init__(self, table: TableClient) -> None:
        self.table_name = table.table_name
        self.location = redact_url(table.url)
        self._table = table

    @classmethod
    def from_url(
        cls, url: str, credential: TokenCredential, table: str = DEFAULT_TABLE
    ) -> TableTenantRegistry:
        """The Function App's registry: the account's table endpoint and the managed identity."""
        return cls(TableClient(url, table, credential=credential, **_retries()))

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table: str = DEFAULT_TABLE
    ) -> TableTenantRegistry:
        """Local runs and tests (Azurite)."""
        return cls(TableClient.from_connection_string(connection_string, table, **_retries()))

    def __repr__(self) -> str:
        return f"TableTenantRegistry({self.location!r}, {self.table_name!r})"

    def list(self) -> list[Tenant]:
        try:
            entities = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION}))
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._error(exc, "listing tenants") from None
        return sorted((self._from_entity(e) for e in entities), key=lambda t: t.name)

    def get(self, name: str) -> Tenant | None:
        try:
            entity = self._table.get_entity(PARTITION, name)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._error(exc, f"reading tenant {name}") from None
        return self._from_entity(entity)

    def put(self, tenant: Tenant) -> None:
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": tenant.name,
            "Enabled": tenant.enabled,
            "Settings": json.dumps(dict(tenant.settings), sort_keys=True, separators=(",", ":")),
        }
        try:
            try:
                self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):  # another writer created it first
                    self._table.create_table()
                self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise self._error(exc, f"saving tenant {tenant.name}") from None

    def remove(self, name: str) -> bool:
        if self.get(name) is None:
            return False
        try:
            self._table.delete_entity(PARTITION, name)
        except AzureError as exc:
            raise self._error(exc, f"removing tenant {name}") from None
        return True

    def _from_entity(self, entity: Any) -> Tenant:
        where = f"tenant table {self.table_name}"
        try:
            settings = json.loads(entity.get("Settings") or "{}")
        except ValueError:
            raise ConfigError(
                f"{where}: tenant {entity.get('RowKey')!r} has a Settings value that is not JSON.",
                hint="Fix it in Storage Explorer or add the tenant again with `auditsync tenants add`.",
            ) from None
        record = {"name": entity.get("RowKey"), "enabled": entity.get("Enabled", True), "settings": settings}
        return _tenant(record, where)

    def _error(self, exc: AzureError, action: str) -> AuditSyncError:
        return azure_failure(
            TENANT_TABLE, exc, f"tenant table {self.table_name} at {self.location}", action=action
        )


def _retries() -> dict[str, Any]:
    return around_pipeline(DeadlineRetryPolicy(AZURE_SERVICES))
