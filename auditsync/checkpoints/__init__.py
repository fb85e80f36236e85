"""Checkpoint stores: where each stream's position survives between runs.

``open_store`` picks the store from the settings' store part: a JSON file per stream under ``AUDITSYNC_DATA_DIR``
(local default) or an Azure table (the Function App). Both give compare-and-swap saves; ``claim`` and
``release`` build the per-stream lease on top of that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from azure.core.credentials import TokenCredential

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.checkpoints.lease import claim, held_by_other, release
from auditsync.config import StoreSettings
from auditsync.errors import ConfigError
from auditsync.model import CheckpointStore, Deadline

log = logging.getLogger(__name__)

__all__ = ["FileCheckpointStore", "claim", "held_by_other", "open_store", "release"]


def open_store(
    settings: StoreSettings,
    credential_factory: Callable[[], TokenCredential],
    deadline: Deadline | None = None,
) -> CheckpointStore:
    """The checkpoint store the settings ask for; a table store bounds its calls by ``deadline``.

    ``credential_factory`` returns the managed identity credential; it is called only for the
    table-URL case, so local runs never touch azure-identity. When both a connection string and a URL
    are set, the connection string wins: the deployment template never sets it, so it is a deliberate
    local override.
    """
    if settings.kind == "file":
        return FileCheckpointStore(settings.directory)
    if settings.kind != "table":
        raise ConfigError(f"CHECKPOINT_STORE: '{settings.kind}' is not one of table, file.")

    from auditsync.checkpoints.table import TableCheckpointStore

    if settings.connection_string:
        if settings.table_url:
            log.warning(
                "both CHECKPOINT_CONNECTION_STRING and CHECKPOINT_TABLE_URL are set; "
                "using the connection string"
            )
        return TableCheckpointStore.from_connection_string(
            settings.connection_string, settings.table, deadline=deadline
        )
    if settings.table_url:
        return TableCheckpointStore.from_url(
            settings.table_url, credential_factory(), settings.table, deadline=deadline
        )
    raise ConfigError(
        "CHECKPOINT_TABLE_URL: missing; set it to https://<account>.table.core.windows.net "
        "(or CHECKPOINT_CONNECTION_STRING for Azurite)."
    )
