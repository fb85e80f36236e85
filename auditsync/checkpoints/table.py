"""Checkpoints in Azure Table Storage, one entity per stream, every save guarded by the entity's ETag.

Layout: PartitionKey ``checkpoint``, RowKey = ``codec.stream_key(stream)`` (``onepassword~2Fauditevents``),
the stream name itself in ``Stream``, the source's position as compact JSON text in ``Position``
(a position longer than one string property holds, 64 KiB as UTF-16, continues in ``Position1``,
``Position2``, ..., and ``PositionParts`` says how many parts there are), datetimes as ``Edm.DateTime`` (UTC), ``TotalEvents`` as ``Edm.Int64``. The table is created on the
first save that finds it missing, so a role scoped to an existing table is enough.

Every call goes through the project's retry policy, bounded by the run's deadline (``auditsync.retry``).
Errors leave this module classified: a lost compare-and-swap is CheckpointConflict here, every other
failure is mapped by ``auditsync.failures`` (refused credentials AuthError with the role to grant,
anything else CheckpointError). Messages carry the table, the account endpoint (no query) and the
service's status/code, never the connection string, its key or a SAS token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableTransactionError,
    UpdateMode,
)

from auditsync.checkpoints.codec import (
    CONFLICT_HINT,
    MAX_POSITION_PARTS,
    key_prefix,
    parse_position,
    position_parts,
    prepare,
    stream_key,
    utc,
)
from auditsync.config.parser import TABLE_NAME
from auditsync.errors import AuditSyncError, CheckpointConflict, CheckpointError, ConfigError
from auditsync.failures import CHECKPOINT_TABLE, ExplainedCredential, azure_failure, redact_url
from auditsync.model import Checkpoint, Deadline
from auditsync.redaction import Redactor
from auditsync.retry import AZURE_SERVICES, DeadlineRetryPolicy, around_pipeline
from auditsync.secret_values import connection_string_secrets

log = logging.getLogger(__name__)

PARTITION = "checkpoint"
DEFAULT_TABLE = "auditsynccheckpoints"
KEY_HINT = (
    "The storage account refused CHECKPOINT_CONNECTION_STRING: copy the connection string again from the "
    "account's Access keys page (keys may have been rotated), or use CHECKPOINT_TABLE_URL with the managed "
    "identity and the 'Storage Table Data Contributor' role."
)
_DATETIMES = {
    "last_success": "LastSuccess",
    "newest_event_time": "NewestEventTime",
    "last_run": "LastRun",
    "lease_until": "LeaseUntil",
    "token_expires_on": "TokenExpiresOn",
}
_STRINGS = {
    "last_status": "LastStatus",
    "last_error_kind": "LastErrorKind",
    "last_message": "LastMessage",
    "last_hint": "LastHint",
    "lease_owner": "LeaseOwner",
}


class TableCheckpointStore:
    """CheckpointStore on one Azure table; build it with ``from_url`` or ``from_connection_string``."""

    def __init__(
        self,
        table: TableClient,
        *,
        secrets: tuple[str, ...] = (),
        refused: str = "",
    ) -> None:
        self.table_name = table.table_name
        self.location = redact_url(table.url)
        self._table = table
        self._redact = Redactor(secrets)
        self._refused = refused

    @classmethod
    def from_url(
        cls,
        url: str,
        credential: TokenCredential,
        table: str = DEFAULT_TABLE,
        *,
        deadline: Deadline | None = None,
        retry_total: int | None = None,
        **client_kwargs: Any,
    ) -> TableCheckpointStore:
        """The production path: ``https://<account>.table.core.windows.net`` and the managed identity.

        ``deadline`` bounds every call (``auditsync.retry``); ``retry_total`` limits its retries (0 in
        error-path tests); ``client_kwargs`` go to the SDK client (``connection_verify``...).
        """
        _check_name(table)
        explained = ExplainedCredential(credential, f"checkpoint table {table}", CHECKPOINT_TABLE)
        try:
            client = TableClient(
                url, table, credential=explained, **_bounded(deadline, retry_total), **client_kwargs
            )
        except ValueError as exc:
            https = "HTTPS" in str(exc)
            raise ConfigError(
                f"CHECKPOINT_TABLE_URL: '{redact_url(url)}' "
                + (
                    "must use https to carry a managed identity token."
                    if https
                    else "is not a table service URL."
                ),
                hint="Set it to the account's Table endpoint, https://<account>.table.core.windows.net.",
            ) from None
        return cls(client)

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        table: str = DEFAULT_TABLE,
        *,
        deadline: Deadline | None = None,
        retry_total: int | None = None,
        **client_kwargs: Any,
    ) -> TableCheckpointStore:
        """Local runs and tests (Azurite), or an account key where managed identity is not available."""
        _check_name(table)
        secrets = connection_string_secrets(connection_string)
        try:
            client = TableClient.from_connection_string(
                connection_string, table, **_bounded(deadline, retry_total), **client_kwargs
            )
        except (ValueError, AzureError):
            raise ConfigError(
                "CHECKPOINT_CONNECTION_STRING: not a valid storage connection string.",
                hint="Copy it again from the storage account's Access keys page (or use the Azurite one).",
            ) from None
        return cls(client, secrets=secrets, refused=KEY_HINT)

    def __repr__(self) -> str:
        return f"TableCheckpointStore({self.location!r}, {self.table_name!r})"

    def load(self, stream: str) -> Checkpoint:
        key = stream_key(stream)
        try:
            entity = self._table.get_entity(PARTITION, key)
        except ResourceNotFoundError:
            return Checkpoint(stream)  # no entity, or no table yet: the stream never ran
        except AzureError as exc:
            raise self._error(exc, f"loading the checkpoint of {stream}") from None
        return self._checkpoint(entity, stream)

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        prepared, position = prepare(checkpoint)
        entity = _entity(prepared, position)
        stream = checkpoint.stream
        try:
            if checkpoint.etag is None:
                metadata = self._create(entity)
            else:
                metadata = self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=checkpoint.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceExistsError:
            raise CheckpointConflict(
                f"Checkpoint of {stream} already exists; it was created since it was loaded.",
                hint=CONFLICT_HINT,
            ) from None
        except ResourceModifiedError:
            raise CheckpointConflict(
                f"Checkpoint of {stream} was saved by someone else since it was loaded (stale ETag).",
                hint=CONFLICT_HINT,
            ) from None
        except ResourceNotFoundError:
            raise CheckpointConflict(
                f"Checkpoint of {stream} no longer exists; it was removed since it was loaded.",
                hint=CONFLICT_HINT,
            ) from None
        except AzureError as exc:
            raise self._error(exc, f"saving the checkpoint of {stream}") from None
        log.debug("saved checkpoint of %s to table %s", stream, self.table_name)
        return _with_etag(prepared, metadata)

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        """Save several checkpoints in one request: an entity group transaction, all of them or none.

        The runner claims every stream's lease this way at the start of a run and releases them the
        same way at its end (one request each instead of one per stream). Every entity keeps its own
        compare-and-swap: one stale etag (or an entity created meanwhile) fails the whole transaction
        with CheckpointConflict, and the caller falls back to saving one by one, where each stream
        meets its own conflict. Any other failure is a CheckpointError, as for ``save``.
        """
        operations: list[Any] = []
        prepared_all = []
        for checkpoint in checkpoints:
            prepared, position = prepare(checkpoint)
            entity = _entity(prepared, position)
            if checkpoint.etag is None:
                operations.append(("create", entity))
            else:
                operations.append(
                    (
                        "update",
                        entity,
                        {
                            "mode": UpdateMode.REPLACE,
                            "etag": checkpoint.etag,
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    )
                )
            prepared_all.append(prepared)
        streams = ", ".join(c.stream for c in checkpoints)
        try:
            results = self._table.submit_transaction(operations)
        except TableTransactionError as exc:
            if exc.status_code in (404, 409, 412):
                raise CheckpointConflict(
                    f"Checkpoints of {streams}: one was saved, created or removed by someone else since "
                    f"it was loaded (HTTP {exc.status_code}).",
                    hint=CONFLICT_HINT,
                ) from None
            raise self._error(exc, f"saving the checkpoints of {streams}") from None
        except ResourceNotFoundError:
            raise CheckpointConflict(f"Checkpoints of {streams}: the table does not exist yet.") from None
        except AzureError as exc:
            raise self._error(exc, f"saving the checkpoints of {streams}") from None
        if len(results) != len(prepared_all):
            raise CheckpointError(
                f"Checkpoints of {streams}: the transaction answered {len(results)} results."
            )
        return [
            _with_etag(prepared, metadata) for prepared, metadata in zip(prepared_all, results, strict=True)
        ]

    def delete(self, checkpoint: Checkpoint) -> None:
        """Remove the entity if its etag still matches (used by ``check``'s probe and finished backfills)."""
        try:
            self._table.delete_entity(
                PARTITION,
                stream_key(checkpoint.stream),
                etag=checkpoint.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            raise CheckpointConflict(
                f"Checkpoint of {checkpoint.stream} was saved by someone else since it was loaded.",
                hint=CONFLICT_HINT,
            ) from None
        except AzureError as exc:
            raise self._error(exc, f"deleting the checkpoint of {checkpoint.stream}") from None

    def list(self, prefix: str = "") -> list[Checkpoint]:
        """A range query on RowKey: keys map stream names character by character, so the streams under
        ``prefix`` are exactly the keys from ``key_prefix(prefix)`` up to its successor."""
        query, parameters = "PartitionKey eq @pk", {"pk": PARTITION}
        if prefix:
            low = key_prefix(prefix)
            query += " and RowKey ge @low and RowKey lt @high"
            parameters |= {"low": low, "high": low[:-1] + chr(ord(low[-1]) + 1)}
        try:
            entities = list(self._table.query_entities(query, parameters=parameters))
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._error(exc, "listing checkpoints") from None
        return sorted((self._checkpoint(e, None) for e in entities), key=lambda c: c.stream)

    def _create(self, entity: dict[str, Any]) -> dict[str, Any]:
        """Create the entity; on a missing table create the table (another runner may race us) and retry."""
        try:
            return self._table.create_entity(entity)
        except ResourceNotFoundError:
            pass
        try:
            self._table.create_table()
            log.info("created checkpoint table %s at %s", self.table_name, self.location)
        except ResourceExistsError:
            pass
        return self._table.create_entity(entity)

    def _checkpoint(self, entity: TableEntity, stream: str | None) -> Checkpoint:
        name = str(entity.get("Stream") or stream or entity.get("RowKey"))
        where = f"table {self.table_name}"
        total = entity.get("TotalEvents", 0)
        values: dict[str, Any] = {
            field: utc(entity.get(prop)) if isinstance(entity.get(prop), datetime) else None
            for field, prop in _DATETIMES.items()
        }
        values.update({field: str(entity.get(prop) or "") for field, prop in _STRINGS.items()})
        return Checkpoint(
            stream=name,
            position=parse_position(name, _position_text(entity, where), where),
            total_events=int(total.value if isinstance(total, EntityProperty) else total or 0),
            etag=entity.metadata["etag"],
            **values,
        )

    def _error(self, exc: AzureError, action: str) -> AuditSyncError:
        return azure_failure(
            CHECKPOINT_TABLE,
            exc,
            f"checkpoint table {self.table_name} at {self.location}",
            action=action,
            redactor=self._redact,
            refused=self._refused,
        )


def _check_name(table: str) -> None:
    if not TABLE_NAME.match(table):
        raise ConfigError(
            f"CHECKPOINT_TABLE: '{table}' must be 3-63 letters and digits, starting with a letter."
        )


def _bounded(deadline: Deadline | None, retry_total: int | None) -> dict[str, Any]:
    return around_pipeline(DeadlineRetryPolicy(AZURE_SERVICES, deadline=deadline, retry_total=retry_total))


def _entity(checkpoint: Checkpoint, position: str | None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": stream_key(checkpoint.stream),
        "Stream": checkpoint.stream,
        "TotalEvents": EntityProperty(checkpoint.total_events, EdmType.INT64),
    }
    if position is not None:
        parts = position_parts(position)
        entity["Position"] = parts[0]
        if len(parts) > 1:
            # Every save replaces the whole entity (UpdateMode.REPLACE), so no part of a longer earlier
            # position survives; the count makes a reader independent of that.
            entity["PositionParts"] = len(parts)
            for number, part in enumerate(parts[1:], start=1):
                entity[f"Position{number}"] = part
    for field, prop in _DATETIMES.items():
        value = getattr(checkpoint, field)
        if value is not None:
            entity[prop] = value
    for field, prop in _STRINGS.items():
        entity[prop] = getattr(checkpoint, field)
    return entity


def _position_text(entity: TableEntity, where: str) -> str | None:
    """The position's text: ``Position``, followed by its ``PositionParts - 1`` continuation parts."""
    first = entity.get("Position")
    count = entity.get("PositionParts")
    if first is None or count is None:
        return first  # one part (every position saved before positions could be split, too)
    if not isinstance(count, int) or not 1 <= count <= MAX_POSITION_PARTS:
        raise CheckpointError(
            f"Checkpoint in {where}: PositionParts is {count!r}, not 1 to {MAX_POSITION_PARTS}.",
            hint="Restore the record from a backup or delete it to restart the stream from INITIAL_LOOKBACK.",
        )
    parts = [first] + [entity.get(f"Position{number}") for number in range(1, count)]
    if not all(isinstance(part, str) for part in parts):
        raise CheckpointError(
            f"Checkpoint in {where}: the position has {count} parts but some are missing.",
            hint="Restore the record from a backup or delete it to restart the stream from INITIAL_LOOKBACK.",
        )
    return "".join(parts)


def _with_etag(checkpoint: Checkpoint, metadata: Mapping[str, Any]) -> Checkpoint:
    etag = metadata.get("etag")
    if not etag:
        raise CheckpointError(
            f"Checkpoint of {checkpoint.stream}: the service returned no ETag after the save."
        )
    return replace(checkpoint, etag=str(etag))
