"""Table checkpoint store specifics on Azurite with the real azure-data-tables SDK: table creation,
entity layout, both ways in (connection string, managed-identity token), and how failures surface.

The behaviour shared with the file store is in test_checkpoint_store_contract.py.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import EdmType, EntityProperty, TableServiceClient

from auditsync.checkpoints import claim, open_store
from auditsync.checkpoints.codec import (
    MAX_KEY_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_POSITION_BYTES,
    MAX_POSITION_PARTS,
    stream_key,
)
from auditsync.checkpoints.table import TableCheckpointStore
from auditsync.config import StoreSettings
from auditsync.errors import AuditSyncError, AuthError, CheckpointError, ConfigError
from auditsync.model import Checkpoint
from tests.fixtures.azurite import (
    EMULATOR_KEY,
    AzuriteOAuth,
    StaticTokenCredential,
    free_port,
    storage_token,
    table_connection_string,
)
from tests.fixtures.checkpoints import run_threads

STREAM = "onepassword/auditevents"
T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
WRONG_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="


def table_names(connection_string: str) -> list[str]:
    return [t.name for t in TableServiceClient.from_connection_string(connection_string).list_tables()]


def no_credential() -> Any:
    raise AssertionError("the credential factory must not be called here")


def test_first_save_creates_the_table_with_one_entity_per_stream(
    azurite_connection_string: str, azurite_table_name: str
) -> None:
    store = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
    assert store.load(STREAM) == Checkpoint(STREAM)  # a missing table reads as "never ran"
    assert store.list() == []
    assert azurite_table_name not in table_names(azurite_connection_string)

    saved = store.save(
        Checkpoint(STREAM, position={"cursor": "c1", "seen": ["x"]}, total_events=12, last_success=T0)
    )

    assert azurite_table_name in table_names(azurite_connection_string)
    raw = (
        TableServiceClient.from_connection_string(azurite_connection_string)
        .get_table_client(azurite_table_name)
        .get_entity("checkpoint", "onepassword~2Fauditevents")
    )
    assert raw["Stream"] == STREAM
    assert json.loads(raw["Position"]) == {"cursor": "c1", "seen": ["x"]}
    assert raw["TotalEvents"] == EntityProperty(12, EdmType.INT64)
    assert raw["LastSuccess"] == T0
    assert "LeaseUntil" not in raw
    assert raw.metadata["etag"] == saved.etag


def test_a_long_position_is_split_over_properties_azure_accepts(
    azurite_connection_string: str, azurite_table_name: str
) -> None:
    """One string property holds 64 KiB as UTF-16 (Azurite refuses more, as Azure does); a longer
    position goes into Position, Position1, ... with the count in PositionParts, and a shorter save
    leaves no stale part behind."""
    store = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
    table = TableServiceClient.from_connection_string(azurite_connection_string).get_table_client(
        azurite_table_name
    )
    saved = store.save(Checkpoint(STREAM))
    with pytest.raises(HttpResponseError):  # what the split avoids
        table.upsert_entity({"PartitionKey": "probe", "RowKey": "one", "Position": "x" * 40_000})

    position = {"fingerprints": "AbC+/=" * 30_000}  # 180,019 characters of JSON: 6 parts
    saved = store.save(replace(saved, position=position))
    raw = table.get_entity("checkpoint", "onepassword~2Fauditevents")
    assert raw["PositionParts"] == 6
    assert [len(raw.get(f"Position{n}", "")) for n in range(1, 7)] == [32_768] * 4 + [180_019 - 5 * 32_768, 0]
    assert store.load(STREAM).position == position

    saved = store.save(replace(saved, position={"n": 2}))
    raw = table.get_entity("checkpoint", "onepassword~2Fauditevents")
    assert "PositionParts" not in raw and "Position1" not in raw
    assert store.load(STREAM) == saved

    damaged = dict(raw, PositionParts=3)  # a count with parts missing is an error, not a silent cut
    table.update_entity(damaged)
    with pytest.raises(CheckpointError, match="some are missing"):
        store.load(STREAM)


def _azure_entity_bytes(entity: dict[str, Any]) -> int:
    """An entity's size as Azure Table Storage counts it against its 1 MiB limit ("Understanding the Table
    service data model"): 4 bytes, the keys as UTF-16, and per property 8 bytes, its name as UTF-16 and
    its value (a string as UTF-16 plus 4 bytes; Int64 and DateTime 8 bytes)."""
    size = 4 + 2 * len(entity["PartitionKey"] + entity["RowKey"])
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        value_bytes = 4 + len(value.encode("utf-16-le")) if isinstance(value, str) else 8
        size += 8 + 2 * len(name) + value_bytes
    return size


def test_the_largest_record_the_store_accepts_fits_an_azure_entity(
    azurite_connection_string: str, azurite_table_name: str
) -> None:
    """A position of MAX_POSITION_PARTS full properties, with every other field at its longest, stays under
    Azure's 1 MiB an entity; one character more is refused by the store with a clear error, before Azure
    would refuse it."""
    store = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
    table = TableServiceClient.from_connection_string(azurite_connection_string).get_table_client(
        azurite_table_name
    )
    stream = "keeper/" + "x" * (MAX_KEY_CHARS - len("keeper~2F"))
    wrapper = len(json.dumps({"f": ""}, separators=(",", ":")))
    largest = {"f": "A" * (MAX_POSITION_BYTES // 2 - wrapper)}
    long_text = "é" * MAX_MESSAGE_CHARS
    checkpoint = Checkpoint(
        stream,
        position=largest,
        total_events=2**62,
        last_status="error",
        last_error_kind="checkpoint",
        last_message=long_text,
        last_hint=long_text,
        lease_owner="host-" + "0" * 64,
        last_success=T0,
        newest_event_time=T0,
        last_run=T0,
        lease_until=T0,
        token_expires_on=T0,
    )
    store.save(checkpoint)
    raw = table.get_entity("checkpoint", stream_key(stream))
    assert raw["PositionParts"] == MAX_POSITION_PARTS
    size = _azure_entity_bytes(dict(raw))
    assert size <= 1024 * 1024, f"{size} bytes: Azure would refuse this record"
    assert store.load(stream).position == largest

    with pytest.raises(CheckpointError, match="over the"):
        store.save(replace(checkpoint, position={"f": largest["f"] + "A"}))
    assert store.load(stream).position == largest


def test_concurrent_first_saves_race_on_creating_the_table(
    azurite_connection_string: str, azurite_table_name: str
) -> None:
    streams = [
        "keeper/events",
        "onepassword/auditevents",
        "onepassword/itemusages",
        "onepassword/signinattempts",
    ]
    start = threading.Barrier(len(streams))

    def first_save(stream: str) -> None:
        store = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
        start.wait()
        store.save(Checkpoint(stream, position={"first": stream}))

    assert run_threads(first_save, streams) == []
    listed = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name).list()
    assert {c.stream: c.position for c in listed} == {s: {"first": s} for s in streams}


def _all_text(caplog: pytest.LogCaptureFixture, errors: list[AuditSyncError]) -> str:
    """Everything our code let out: log lines (any logger, any level) and the full error tracebacks."""
    parts = [record.getMessage() for record in caplog.records]
    for error in errors:
        parts += [str(error), error.hint, repr(error), "".join(traceback.format_exception(error))]
    return "\n".join(parts)


def test_refused_key_is_an_auth_error_naming_the_role_and_never_the_key(
    azurite_port: int, azurite_table_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection_string = table_connection_string(azurite_port, key=WRONG_KEY)
    store = TableCheckpointStore.from_connection_string(connection_string, azurite_table_name, retry_total=0)
    errors: list[AuditSyncError] = []

    for action in (lambda: store.load(STREAM), store.list, lambda: store.save(Checkpoint(STREAM))):
        with pytest.raises(AuthError) as caught:
            action()
        errors.append(caught.value)

    for error in errors:
        assert error.kind == "auth"
        assert "HTTP 403 AuthorizationFailure" in str(error) and azurite_table_name in str(error)
        assert "refused CHECKPOINT_CONNECTION_STRING" in error.hint
    text = _all_text(caplog, errors) + repr(store)
    assert WRONG_KEY not in text
    assert WRONG_KEY[:20] not in text
    assert "AccountKey" not in text


def test_connection_string_key_never_leaves_in_logs_or_errors(
    azurite_connection_string: str, azurite_table_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
    errors: list[AuditSyncError] = []

    leased = claim(store, STREAM, "runner-a", T0, timedelta(minutes=5))
    assert leased is not None
    store.save(Checkpoint("keeper/events"))
    with pytest.raises(AuditSyncError) as conflict:
        store.save(Checkpoint(STREAM))
    errors.append(conflict.value)
    with pytest.raises(AuditSyncError) as too_big:
        store.save(replace(leased, position={"blob": "x" * 600_000}))
    errors.append(too_big.value)
    store.list()

    assert caplog.records, "the SDK's request logging should have produced records to check"
    text = _all_text(caplog, errors) + repr(store)
    assert EMULATOR_KEY not in text
    assert "AccountKey" not in text


def test_unreachable_service_is_a_checkpoint_error(azurite_table_name: str) -> None:
    nobody_listens = table_connection_string(free_port())
    store = TableCheckpointStore.from_connection_string(nobody_listens, azurite_table_name, retry_total=0)

    for action in (lambda: store.load(STREAM), lambda: store.save(Checkpoint(STREAM))):
        with pytest.raises(CheckpointError) as caught:
            action()
        assert "could not be reached: connection refused" in str(caught.value)
        assert EMULATOR_KEY not in str(caught.value)
        assert "CHECKPOINT_TABLE_URL" in caught.value.hint


def test_malformed_connection_string_is_a_config_error_without_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        TableCheckpointStore.from_connection_string(f"AccountKey={WRONG_KEY};this is not it")

    assert "CHECKPOINT_CONNECTION_STRING" in str(caught.value)
    assert WRONG_KEY not in str(caught.value)


def test_token_over_plain_http_is_a_config_error(azurite_port: int) -> None:
    with pytest.raises(ConfigError, match=r"CHECKPOINT_TABLE_URL: .* must use https"):
        TableCheckpointStore.from_url(
            f"http://127.0.0.1:{azurite_port}/devstoreaccount1", StaticTokenCredential(storage_token())
        )


def test_bad_table_name_is_a_config_error(azurite_connection_string: str) -> None:
    with pytest.raises(ConfigError, match="CHECKPOINT_TABLE"):
        TableCheckpointStore.from_connection_string(azurite_connection_string, "no-dashes")


def test_open_store_by_connection_string(
    azurite_connection_string: str, azurite_table_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = StoreSettings(
        kind="table",
        connection_string=azurite_connection_string,
        table_url="https://example.table.core.windows.net",
        table=azurite_table_name,
    )

    store = open_store(settings, no_credential)
    saved = store.save(Checkpoint(STREAM, position={"cursor": "abc"}))

    assert isinstance(store, TableCheckpointStore)
    assert "using the connection string" in caplog.text
    reader = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
    assert reader.load(STREAM) == saved


def test_open_store_by_url_uses_the_managed_identity_token(
    azurite_oauth: AzuriteOAuth, azurite_table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azurite_oauth.ca_path)
    credential = StaticTokenCredential(storage_token())
    calls: list[int] = []

    def credential_factory() -> StaticTokenCredential:
        calls.append(1)
        return credential

    settings = StoreSettings(kind="table", table_url=azurite_oauth.url, table=azurite_table_name)
    store = open_store(settings, credential_factory)
    leased = claim(store, STREAM, "runner-a", T0, timedelta(minutes=5))
    assert leased is not None
    progress = store.save(replace(leased, position={"cursor": "p1"}))

    assert calls == [1]
    assert ("https://storage.azure.com/.default",) in credential.scopes
    assert store.load(STREAM) == progress
    assert [c.stream for c in store.list()] == [STREAM]


@pytest.mark.parametrize(
    "token",
    [storage_token(expires_in=-600), storage_token(audience="https://vault.azure.net")],
    ids=["expired", "wrong-audience"],
)
def test_refused_token_is_an_auth_error_naming_the_role(
    azurite_oauth: AzuriteOAuth, azurite_table_name: str, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = TableCheckpointStore.from_url(
        azurite_oauth.url,
        StaticTokenCredential(token),
        azurite_table_name,
        connection_verify=azurite_oauth.ca_path,
        retry_total=0,
    )

    with pytest.raises(AuthError) as caught:
        store.save(Checkpoint(STREAM))

    assert "Storage Table Data Contributor" in caught.value.hint
    assert "HTTP 403 AuthenticationFailed" in str(caught.value)
    assert azurite_oauth.url in str(caught.value)
    assert token not in _all_text(caplog, [caught.value])


def test_open_store_table_without_a_location_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CHECKPOINT_TABLE_URL: missing"):
        open_store(StoreSettings(kind="table"), no_credential)
