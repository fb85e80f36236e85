"""Checkpoint stores: where each stream's position survives between runs.

``open_store`` picks the store from Settings: a JSON file per stream under ``AUDITSYNC_DATA_DIR``
(local default) or an Azure table (the Function App). Both give compare-and-swap saves; ``claim`` and
``release`` build the per-stream lease on top of that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from azure.core.credentials import TokenCredential

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.checkpoints.lease import claim, held_by_other, release
from auditsync.config import Settings
from auditsync.errors import ConfigError
from auditsync.model import CheckpointStore, Deadline

log = logging.getLogger(__name__)

__all__ = ["FileCheckpointStore", "claim", "held_by_other", "open_store", "release"]


def open_store(
    settings: Settings,
    credential_factory: Callable[[], TokenCredential],
    deadline: Deadline | None = None,
) -> CheckpointStore:
    """The checkpoint store the settings ask for; a table store bounds its calls by ``deadline``.

    ``credential_factory`` returns the managed identity credential; it is called only for the
    table-URL case, so local runs never touch azure-identity. When both a connection string and a URL
    are set, the connection string wins: the deployment template never sets it, so it is a deliberate
    local override.
    """
    if settings.checkpoint_store == "file":
        return FileCheckpointStore(settings.data_dir / "checkpoints")
    if settings.checkpoint_store != "table":
        raise ConfigError(f"CHECKPOINT_STORE: '{settings.checkpoint_store}' is not one of table, file.")

    from auditsync.checkpoints.table import TableCheckpointStore

    if settings.checkpoint_connection_string:
        if settings.checkpoint_table_url:
            log.warning(
                "both CHECKPOINT_CONNECTION_STRING and CHECKPOINT_TABLE_URL are set; "
                "using the connection string"
            )
        return TableCheckpointStore.from_connection_string(
            settings.checkpoint_connection_string, settings.checkpoint_table, deadline=deadline
        )
    if settings.checkpoint_table_url:
        return TableCheckpointStore.from_url(
            settings.checkpoint_table_url, credential_factory(), settings.checkpoint_table, deadline=deadline
        )
    raise ConfigError(
        "CHECKPOINT_TABLE_URL: missing; set it to https://<account>.table.core.windows.net "
        "(or CHECKPOINT_CONNECTION_STRING for Azurite)."
    )
