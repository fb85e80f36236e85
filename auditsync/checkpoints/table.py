"""Checkpoints in Azure Table Storage, one entity per stream, every save guarded by the entity's ETag.

Layout: PartitionKey ``checkpoint``, RowKey = ``codec.stream_key(stream)`` (``onepassword~2Fauditevents``),
the stream name itself in ``Stream``, the source's position as compact JSON text in ``Position``
(a position longer than one string property holds, 64 KiB as UTF-16, continues in ``Position1``,
``Position2``, ..., and ``PositionParts`` says how many parts there are), datetimes as ``Edm.DateTime`` (UTC), ``TotalEvents`` as ``Edm.Int64``. The table is created on the
first save that finds it missing, so a role scoped to an existing table is enough.

Errors leave this module classified: a lost compare-and-swap is CheckpointConflict, refused
credentials are AuthError (with the role to grant), anything else is CheckpointError. Messages carry
the table, the account endpoint (no query) and the service's status/code, never the connection string,
its key or a SAS token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from auditsync.azure_errors import ExplainedCredential, credential_failure
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
from auditsync.errors import AuditSyncError, AuthError, CheckpointConflict, CheckpointError, ConfigError
from auditsync.http import Redactor, network_failure, redact_url
from auditsync.model import Checkpoint, Deadline

log = logging.getLogger(__name__)

PARTITION = "checkpoint"
DEFAULT_TABLE = "auditsynccheckpoints"
ROLE_HINT = (
    "Give the Function App's managed identity the 'Storage Table Data Contributor' role on the storage "
    "account (role assignments take a few minutes to apply) and check CHECKPOINT_TABLE_URL."
)
KEY_HINT = (
    "The storage account refused CHECKPOINT_CONNECTION_STRING: copy the connection string again from the "
    "account's Access keys page (keys may have been rotated), or use CHECKPOINT_TABLE_URL with the managed "
    "identity and the 'Storage Table Data Contributor' role."
)
UNREACHABLE_HINT = (
    "Check CHECKPOINT_TABLE_URL / CHECKPOINT_CONNECTION_STRING and that the storage account's firewall "
    "lets the Function App in; the next run retries."
)
#: Every checkpoint operation ends within about 20 s whatever the network does (azure-core's defaults
#: are a 300 s read timeout and 10 retries backing off up to 2 minutes).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 8.0
CLIENT_BOUNDS: dict[str, Any] = {
    "connection_timeout": CONNECT_TIMEOUT,
    "read_timeout": READ_TIMEOUT,
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 2,
    "timeout": 20,  # the retry policy's total for one operation; it starts no attempt after it
}
#: Checkpoint calls also happen at and after the run's deadline (the page just sent is saved, the lease
#: freed): near it, one operation gets what is left of the run, but at least this, and no retry.
DEADLINE_GRACE = 5.0
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_DATETIMES = {
    "last_success": "LastSuccess",
    "newest_event_time": "NewestEventTime",
    "last_run": "LastRun",
    "lease_until": "LeaseUntil",
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
        service: TableServiceClient,
        table: str = DEFAULT_TABLE,
        *,
        secrets: tuple[str, ...] = (),
        auth_hint: str = ROLE_HINT,
        deadline: Deadline | None = None,
    ) -> None:
        if not _TABLE_NAME.match(table):
            raise ConfigError(
                f"CHECKPOINT_TABLE: '{table}' must be 3-63 letters and digits, starting with a letter."
            )
        self.service = service
        self.table_name = table
        self.location = redact_url(service.url)
        self._table: TableClient = service.get_table_client(table)
        self._redact = Redactor(secrets)
        self._auth_hint = auth_hint
        self.deadline = deadline

    @classmethod
    def from_url(
        cls,
        url: str,
        credential: TokenCredential,
        table: str = DEFAULT_TABLE,
        *,
        deadline: Deadline | None = None,
        **client_kwargs: Any,
    ) -> TableCheckpointStore:
        """The production path: ``https://<account>.table.core.windows.net`` and the managed identity.

        ``client_kwargs`` go to the SDK client over CLIENT_BOUNDS (e.g. ``retry_total=0`` in tests).
        """
        explained = ExplainedCredential(
            credential,
            f"checkpoint table {table}",
            role="Storage Table Data Contributor",
            scope="storage account",
        )
        try:
            service = TableServiceClient(
                endpoint=url, credential=explained, **{**CLIENT_BOUNDS, **client_kwargs}
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
        return cls(service, table, deadline=deadline)

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        table: str = DEFAULT_TABLE,
        *,
        deadline: Deadline | None = None,
        **client_kwargs: Any,
    ) -> TableCheckpointStore:
        """Local runs and tests (Azurite), or an account key where managed identity is not available."""
        secrets = connection_string_secrets(connection_string)
        try:
            service = TableServiceClient.from_connection_string(
                connection_string, **{**CLIENT_BOUNDS, **client_kwargs}
            )
        except (ValueError, AzureError):
            raise ConfigError(
                "CHECKPOINT_CONNECTION_STRING: not a valid storage connection string.",
                hint="Copy it again from the storage account's Access keys page (or use the Azurite one).",
            ) from None
        return cls(service, table, secrets=secrets, auth_hint=KEY_HINT, deadline=deadline)

    def __repr__(self) -> str:
        return f"TableCheckpointStore({self.location!r}, {self.table_name!r})"

    def load(self, stream: str) -> Checkpoint:
        key = stream_key(stream)
        try:
            entity = self._table.get_entity(PARTITION, key, **self._bounds())
        except ResourceNotFoundError:
            return Checkpoint(stream)  # no entity, or no table yet: the stream never ran
        except AzureError as exc:
            raise self._error(exc, f"Loading the checkpoint of {stream}") from None
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
                    **self._bounds(),
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
            raise self._error(exc, f"Saving the checkpoint of {stream}") from None
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
            results = self._table.submit_transaction(operations, **self._bounds())
        except TableTransactionError as exc:
            if exc.status_code in (404, 409, 412):
                raise CheckpointConflict(
                    f"Checkpoints of {streams}: one was saved, created or removed by someone else since "
                    f"it was loaded (HTTP {exc.status_code}).",
                    hint=CONFLICT_HINT,
                ) from None
            raise self._error(exc, f"Saving the checkpoints of {streams}") from None
        except ResourceNotFoundError:
            raise CheckpointConflict(f"Checkpoints of {streams}: the table does not exist yet.") from None
        except AzureError as exc:
            raise self._error(exc, f"Saving the checkpoints of {streams}") from None
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
                **self._bounds(),
            )
        except ResourceModifiedError:
            raise CheckpointConflict(
                f"Checkpoint of {checkpoint.stream} was saved by someone else since it was loaded.",
                hint=CONFLICT_HINT,
            ) from None
        except AzureError as exc:
            raise self._error(exc, f"Deleting the checkpoint of {checkpoint.stream}") from None

    def list(self, prefix: str = "") -> list[Checkpoint]:
        """A range query on RowKey: keys map stream names character by character, so the streams under
        ``prefix`` are exactly the keys from ``key_prefix(prefix)`` up to its successor."""
        query, parameters = "PartitionKey eq @pk", {"pk": PARTITION}
        if prefix:
            low = key_prefix(prefix)
            query += " and RowKey ge @low and RowKey lt @high"
            parameters |= {"low": low, "high": low[:-1] + chr(ord(low[-1]) + 1)}
        try:
            entities = list(self._table.query_entities(query, parameters=parameters, **self._bounds()))
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._error(exc, "Listing checkpoints") from None
        return sorted((self._checkpoint(e, None) for e in entities), key=lambda c: c.stream)

    def _create(self, entity: dict[str, Any]) -> dict[str, Any]:
        """Create the entity; on a missing table create the table (another runner may race us) and retry."""
        try:
            return self._table.create_entity(entity, **self._bounds())
        except ResourceNotFoundError:
            pass
        try:
            self.service.create_table(self.table_name, **self._bounds())
            log.info("created checkpoint table %s at %s", self.table_name, self.location)
        except ResourceExistsError:
            pass
        return self._table.create_entity(entity, **self._bounds())

    def _bounds(self) -> dict[str, Any]:
        """Per-operation transport options: the client's bounds, cut short near the run's deadline."""
        if self.deadline is None:
            return {}
        budget = max(self.deadline.remaining(), DEADLINE_GRACE)
        if budget >= CLIENT_BOUNDS["timeout"]:
            return {}
        return {
            "connection_timeout": min(CONNECT_TIMEOUT, budget),
            "read_timeout": min(READ_TIMEOUT, budget),
            "retry_total": 1 if budget >= 2 * READ_TIMEOUT else 0,
        }

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
        """Classify an SDK failure; the message names the table and status, nothing that could be a secret."""
        where = f"{action} in checkpoint table {self.table_name} at {self.location}"
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status} {_service_code(exc)}".rstrip() if status else type(exc).__name__
        reason = self._first_line(exc)
        if not reason.startswith("Operation returned an invalid status"):  # adds nothing to the status
            detail = f"{detail}: {reason}"
        if isinstance(exc, ClientAuthenticationError) and status is None:
            return credential_failure(
                exc,
                f"checkpoint table {self.table_name}",
                role="Storage Table Data Contributor",
                scope="storage account",
            )
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return AuthError(f"{where} was refused ({detail}).", hint=self._auth_hint)
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            failure, _hint = network_failure(exc)
            return CheckpointError(
                f"{where} failed: the service is unreachable ({failure}: {reason}).", hint=UNREACHABLE_HINT
            )
        return CheckpointError(f"{where} failed ({detail}).", hint=UNREACHABLE_HINT)

    def _first_line(self, exc: BaseException) -> str:
        """The SDK's own reason, first line only, cut short, URLs reduced and known secrets removed."""
        lines = str(getattr(exc, "message", None) or exc).strip().splitlines()
        line = lines[0] if lines else type(exc).__name__
        line = re.sub(r"https?://\S+", lambda m: redact_url(m.group(0)), line)
        # urllib3 names the path it failed on: 'Max retries exceeded with url: /path?sig=...'
        line = re.sub(r"(url: [^\s?]*)\?\S*", r"\1", line)
        return self._redact(line)[:300]


def _service_code(exc: AzureError) -> str:
    """The storage error code (``AuthorizationFailure``, ...): decoded by the SDK, or its response header."""
    code = getattr(exc, "error_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = response.headers.get("x-ms-error-code") if response is not None else None
    return str(getattr(code, "value", code) or "")


def connection_string_secrets(connection_string: str) -> tuple[str, ...]:
    """The parts of a storage connection string that must never be shown (account key, SAS token)."""
    secrets = []
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value.strip():
            secrets.append(value.strip())
    return tuple(secrets)


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
