"""The simulators, proven with the real clients: azure-identity, azure-keyvault-secrets,
azure-monitor-ingestion and requests, over real loopback sockets.

If these pass, a collector test that runs against the simulators exercises the same wire behaviour
(challenges, status codes, error bodies, cursors) it will meet in Azure and at 1Password.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.monitor.ingestion import LogsIngestionClient

from auditsync.tables import ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from simulators.clock import FakeClock
from simulators.identity import ManagedIdentitySim
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from simulators.onepassword_data import EVENT_TYPES, make_events

OP_STREAM = TABLES[ONEPASSWORD_TABLE].stream


class ForgedCredential:
    """A credential whose tokens no simulator issued: what a wrong tenant or a stale token looks like."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("forged-token", int(datetime.now(UTC).timestamp()) + 3600)


# -- managed identity + Key Vault --------------------------------------------------------------------


def test_secret_is_read_through_the_challenge_with_a_managed_identity_token(
    keyvault_sim: KeyVaultSim, identity_sim: ManagedIdentitySim
) -> None:
    keyvault_sim.set_secret("onepassword-api-token", "first")
    latest = keyvault_sim.set_secret("onepassword-api-token", "sëcret-välue")
    client = SecretClient(keyvault_sim.url, DefaultAzureCredential(), verify_challenge_resource=False)

    secret = client.get_secret("onepassword-api-token")

    assert secret.value == "sëcret-välue"
    assert secret.properties.version == latest
    assert identity_sim.requested == ["https://vault.azure.net"]
    first, second = keyvault_sim.requests[:2]
    assert first.header("authorization") is None  # the SDK's challenge probe
    scheme, _, token = (second.header("authorization") or "").partition(" ")
    assert scheme == "Bearer" and identity_sim.valid(token, "https://vault.azure.net")


def test_secret_versions_are_served_by_id(keyvault_sim: KeyVaultSim) -> None:
    old = keyvault_sim.set_secret("keeper-api-token", "old")
    keyvault_sim.set_secret("keeper-api-token", "new")
    client = SecretClient(keyvault_sim.url, DefaultAzureCredential(), verify_challenge_resource=False)

    assert client.get_secret("keeper-api-token", version=old).value == "old"
    assert client.get_secret("keeper-api-token").value == "new"


def test_missing_secret_is_resource_not_found(keyvault_sim: KeyVaultSim) -> None:
    client = SecretClient(keyvault_sim.url, DefaultAzureCredential(), verify_challenge_resource=False)

    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_secret("no-such-secret")

    assert caught.value.error is not None and caught.value.error.code == "SecretNotFound"


@pytest.mark.parametrize(
    ("reason", "inner", "words"),
    [
        ("rbac", "ForbiddenByRbac", "Caller is not authorized"),
        ("access_policy", "AccessDenied", "does not have secrets get permission"),
        ("firewall", "ForbiddenByFirewall", "Client address is not authorized"),
    ],
)
def test_denied_vault_is_a_403_whose_inner_code_names_the_reason(
    keyvault_sim: KeyVaultSim, reason: str, inner: str, words: str
) -> None:
    keyvault_sim.set_secret("onepassword-api-token", "value")
    keyvault_sim.deny(reason=reason)
    client = SecretClient(
        keyvault_sim.url, DefaultAzureCredential(), verify_challenge_resource=False, retry_total=0
    )

    with pytest.raises(HttpResponseError) as caught:
        client.get_secret("onepassword-api-token")

    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "Forbidden"
    assert caught.value.error.innererror == {"code": inner}
    assert words in str(caught.value.message)


def test_vault_refuses_tokens_the_identity_did_not_issue(keyvault_sim: KeyVaultSim) -> None:
    keyvault_sim.set_secret("onepassword-api-token", "value")
    client = SecretClient(
        keyvault_sim.url, ForgedCredential(), verify_challenge_resource=False, retry_total=0
    )

    with pytest.raises(HttpResponseError) as caught:
        client.get_secret("onepassword-api-token")

    assert caught.value.status_code == 401


def test_identity_endpoint_checks_its_header_and_expires_tokens() -> None:
    clock = FakeClock()
    with ManagedIdentitySim(now=clock.now, lifetime=timedelta(minutes=5)) as sim:
        url = sim.env()["IDENTITY_ENDPOINT"]
        params = {"api-version": "2019-08-01", "resource": "https://monitor.azure.com"}
        assert (
            requests.get(url, params=params, headers={"X-IDENTITY-HEADER": "wrong"}, timeout=5).status_code
            == 400
        )
        answer = requests.get(url, params=params, headers={"X-IDENTITY-HEADER": sim.header_value}, timeout=5)

        body = answer.json()
        assert body["token_type"] == "Bearer" and body["resource"] == "https://monitor.azure.com"
        assert int(body["expires_on"]) == int((clock.now() + timedelta(minutes=5)).timestamp())
        assert sim.valid(body["access_token"], "https://monitor.azure.com")
        assert not sim.valid(body["access_token"], "https://vault.azure.net")
        clock.advance(timedelta(minutes=5))
        assert not sim.valid(body["access_token"])


# -- Logs Ingestion ------------------------------------------------------------------------------------


def _onepassword_rows(n: int, event_type: str = "auditevents") -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    events = make_events(event_type, n, now - timedelta(hours=1), timedelta(seconds=1), random.Random(7))
    rows, problems = shape_rows(TABLES[ONEPASSWORD_TABLE], events, now=now, event_type=event_type)
    assert not problems
    return rows


def _ingestion_client(sim: LogsIngestionSim, credential: Any = None, **kwargs: Any) -> LogsIngestionClient:
    return LogsIngestionClient(sim.url, credential or DefaultAzureCredential(), **kwargs)


def test_uploaded_rows_land_in_the_output_table_gzipped_and_typed(
    logs_ingestion_sim: LogsIngestionSim, identity_sim: ManagedIdentitySim
) -> None:
    rows = [*_onepassword_rows(3, "auditevents"), *_onepassword_rows(3, "itemusages")]
    rows += _onepassword_rows(3, "signinattempts")

    _ingestion_client(logs_ingestion_sim).upload(
        logs_ingestion_sim.dcr_id, OP_STREAM, rows, enforce_https=False
    )

    assert logs_ingestion_sim.rows(ONEPASSWORD_TABLE) == json.loads(json.dumps(rows))
    assert logs_ingestion_sim.type_errors == []
    assert logs_ingestion_sim.undeclared == {}
    upload = logs_ingestion_sim.requests[-1]
    assert upload.header("content-encoding") == "gzip"
    assert identity_sim.requested == ["https://monitor.azure.com"]


def test_undeclared_columns_and_mistyped_values_are_recorded(logs_ingestion_sim: LogsIngestionSim) -> None:
    row = _onepassword_rows(1)[0]
    bad = {**row, "uuid": "raw-name-not-declared", "timestamp": "yesterday-ish", "aux_id": "12"}

    _ingestion_client(logs_ingestion_sim).upload(
        logs_ingestion_sim.dcr_id, OP_STREAM, [bad], enforce_https=False
    )

    assert logs_ingestion_sim.undeclared == {ONEPASSWORD_TABLE: {"uuid": 1}}
    assert {(e.column, e.type, e.value) for e in logs_ingestion_sim.type_errors} == {
        ("timestamp", "datetime", "yesterday-ish"),
        ("aux_id", "int", "12"),
    }
    [stored] = logs_ingestion_sim.rows(ONEPASSWORD_TABLE)
    assert "uuid" not in stored and "timestamp" not in stored and "aux_id" not in stored
    assert stored["uuid_s"] == row["uuid_s"]


def test_unknown_stream_and_unknown_rule_are_404(logs_ingestion_sim: LogsIngestionSim) -> None:
    client = _ingestion_client(logs_ingestion_sim, retry_total=0)
    rows = _onepassword_rows(1)

    with pytest.raises(HttpResponseError) as unknown_stream:
        client.upload(logs_ingestion_sim.dcr_id, "Custom-NoSuchStream", rows, enforce_https=False)
    with pytest.raises(HttpResponseError) as unknown_rule:
        client.upload("dcr-" + "0" * 32, OP_STREAM, rows, enforce_https=False)

    assert unknown_stream.value.status_code == 404
    assert unknown_rule.value.status_code == 404
    assert logs_ingestion_sim.rows(ONEPASSWORD_TABLE) == []


def test_single_record_over_one_mebibyte_is_413_after_earlier_chunks_landed(
    logs_ingestion_sim: LogsIngestionSim,
) -> None:
    small = _onepassword_rows(2)
    huge = {**small[0], "aux_info": "x" * (1024 * 1024 + 10)}
    failures: list[Any] = []

    _ingestion_client(logs_ingestion_sim, retry_total=0).upload(
        logs_ingestion_sim.dcr_id, OP_STREAM, [*small, huge], enforce_https=False, on_error=failures.append
    )

    assert [e.error.status_code for e in failures] == [413]
    assert failures[0].failed_logs == [huge]
    assert [r["uuid_s"] for r in logs_ingestion_sim.rows(ONEPASSWORD_TABLE)] == [r["uuid_s"] for r in small]


def test_forged_token_is_401(logs_ingestion_sim: LogsIngestionSim) -> None:
    client = _ingestion_client(logs_ingestion_sim, ForgedCredential(), retry_total=0)

    with pytest.raises(HttpResponseError) as caught:
        client.upload(logs_ingestion_sim.dcr_id, OP_STREAM, _onepassword_rows(1), enforce_https=False)

    assert caught.value.status_code == 401
    assert logs_ingestion_sim.row_counts[ONEPASSWORD_TABLE] == 0


def test_denied_role_is_403(logs_ingestion_sim: LogsIngestionSim) -> None:
    logs_ingestion_sim.deny()

    with pytest.raises(HttpResponseError) as caught:
        _ingestion_client(logs_ingestion_sim, retry_total=0).upload(
            logs_ingestion_sim.dcr_id, OP_STREAM, _onepassword_rows(1), enforce_https=False
        )

    assert caught.value.status_code == 403


def test_injected_503_is_retried_by_the_sdk(logs_ingestion_sim: LogsIngestionSim) -> None:
    logs_ingestion_sim.inject(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}}, times=1)
    rows = _onepassword_rows(2)

    _ingestion_client(logs_ingestion_sim, retry_total=1, retry_backoff_factor=0).upload(
        logs_ingestion_sim.dcr_id, OP_STREAM, rows, enforce_https=False
    )

    assert logs_ingestion_sim.uploads == 2
    assert len(logs_ingestion_sim.rows(ONEPASSWORD_TABLE)) == 2


def _padded_rows(n: int, size: int) -> list[dict[str, Any]]:
    """Rows whose JSON is exactly ``size`` bytes each, so the SDK's chunks stay clear of the 1 MiB line."""
    rows = _onepassword_rows(n)
    for row in rows:
        row["aux_info"] = ""
        row["aux_info"] = "p" * (size - len(json.dumps(row)))
    return rows


def test_nth_chunk_can_be_failed_while_the_others_land(logs_ingestion_sim: LogsIngestionSim) -> None:
    rows = _padded_rows(15, 200_000)  # five rows per chunk: three gzip chunks
    logs_ingestion_sim.inject(
        500,
        {"error": {"code": "InternalServerError", "message": "boom"}},
        when=logs_ingestion_sim.nth_upload(2),
    )
    failures: list[Any] = []

    _ingestion_client(logs_ingestion_sim, retry_total=0).upload(
        logs_ingestion_sim.dcr_id, OP_STREAM, rows, enforce_https=False, on_error=failures.append
    )

    assert logs_ingestion_sim.uploads == 3
    assert [f.error.status_code for f in failures] == [500]
    assert [r["uuid_s"] for r in failures[0].failed_logs] == [r["uuid_s"] for r in rows[5:10]]
    stored = [r["uuid_s"] for r in logs_ingestion_sim.rows(ONEPASSWORD_TABLE)]
    assert stored == [r["uuid_s"] for r in rows[:5] + rows[10:]]


def test_sdk_chunks_of_many_small_rows_overshoot_one_mebibyte(logs_ingestion_sim: LogsIngestionSim) -> None:
    """azure-monitor-ingestion 1.1.0 sums the rows' JSON sizes but not the ", " between them or the
    brackets, so a full chunk of small rows is a few KB over 1 MiB uncompressed: a sink must hand the
    SDK batches that fit with their separators (this is what the simulator, strict like the documented
    limit, makes visible)."""
    rows = _onepassword_rows(1500)
    failures: list[Any] = []

    _ingestion_client(logs_ingestion_sim, retry_total=0).upload(
        logs_ingestion_sim.dcr_id, OP_STREAM, rows, enforce_https=False, on_error=failures.append
    )

    assert failures and {f.error.status_code for f in failures} == {413}
    overshoot = [len(json.dumps(f.failed_logs)) for f in failures]
    assert all(
        size > 1024 * 1024 >= sum(len(json.dumps(r)) for r in f.failed_logs)
        for size, f in zip(overshoot, failures, strict=True)
    )


def test_bodies_that_are_not_a_json_array_of_objects_are_400(logs_ingestion_sim: LogsIngestionSim) -> None:
    token = DefaultAzureCredential().get_token("https://monitor.azure.com/.default").token
    url = f"{logs_ingestion_sim.url}/dataCollectionRules/{logs_ingestion_sim.dcr_id}/streams/{OP_STREAM}"
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }

    def post(body: bytes) -> int:
        answer = requests.post(
            url, params={"api-version": "2023-01-01"}, data=body, headers=headers, timeout=5
        )
        return answer.status_code

    assert post(gzip.compress(b'{"uuid_s": "not in an array"}')) == 400
    assert post(gzip.compress(b"[1, 2]")) == 400
    assert post(gzip.compress(b"[{broken")) == 400
    assert post(b"not gzip at all") == 400
    assert post(gzip.compress(b'[{"uuid_s": "ok"}]')) == 204
    assert logs_ingestion_sim.rows(ONEPASSWORD_TABLE) == [{"uuid_s": "ok"}]


# -- 1Password Events API --------------------------------------------------------------------------------


def _post(sim: OnePasswordSim, token: str, event_type: str, body: Any) -> requests.Response:
    return requests.post(
        f"{sim.url}/api/v2/{event_type}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _signature = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


def test_tokens_are_jwt_shaped_with_audience_and_features(onepassword_sim: OnePasswordSim) -> None:
    header, claims = _claims(onepassword_sim.issue_token(["itemusages"]))
    _, legacy = _claims(onepassword_sim.issue_token(aud=None))
    _, eu = _claims(onepassword_sim.issue_token(aud="events.1password.eu"))

    assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["kid"]
    assert claims["aud"] == ["events.1password.com"]
    assert claims["1password.com/fts"] == ["itemusages"]
    assert claims["1password.com/auuid"] == onepassword_sim.account_uuid
    assert {"sub", "iss", "iat"} <= claims.keys()
    assert legacy["aud"] == ["com.1password.streamingservice"]
    assert eu["aud"] == ["events.1password.eu"]


def test_introspect_reports_features_and_refuses_revoked_tokens(onepassword_sim: OnePasswordSim) -> None:
    token = onepassword_sim.issue_token(["auditevents", "signinattempts"])
    url = f"{onepassword_sim.url}/api/v2/auth/introspect"

    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    onepassword_sim.revoke(token)
    revoked = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    unknown = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)

    assert answer.status_code == 200
    assert answer.json()["features"] == ["auditevents", "signinattempts"]
    assert answer.json()["account_uuid"] == onepassword_sim.account_uuid
    assert answer.json()["uuid"] == _claims(token)[1]["sub"]
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.json() == {"status": 401, "message": "Unauthorized"}
    assert _post(onepassword_sim, token, "auditevents", {}).status_code == 401


def test_token_without_the_feature_is_401_on_that_endpoint_only(onepassword_sim: OnePasswordSim) -> None:
    token = onepassword_sim.issue_token(["signinattempts"])

    assert _post(onepassword_sim, token, "itemusages", {"limit": 10}).status_code == 401
    assert _post(onepassword_sim, token, "signinattempts", {"limit": 10}).status_code == 200


def test_cursor_pages_then_resumes_with_new_and_late_events(
    onepassword_sim: OnePasswordSim, fake_clock: FakeClock
) -> None:
    token = onepassword_sim.issue_token()
    now = fake_clock.now()
    first = onepassword_sim.generate(
        "itemusages", 250, start=now - timedelta(minutes=50), step=timedelta(seconds=10)
    )

    pages = [
        _post(
            onepassword_sim, token, "itemusages", {"limit": 100, "start_time": _iso(now - timedelta(hours=1))}
        )
    ]
    while pages[-1].json()["has_more"]:
        pages.append(_post(onepassword_sim, token, "itemusages", {"cursor": pages[-1].json()["cursor"]}))

    assert [len(p.json()["items"]) for p in pages] == [100, 100, 50]
    assert [i["uuid"] for p in pages for i in p.json()["items"]] == [e["uuid"] for e in first]
    cursor = pages[-1].json()["cursor"]
    assert cursor  # the last page carries the cursor to persist

    idle = _post(onepassword_sim, token, "itemusages", {"cursor": cursor}).json()
    assert idle["items"] == [] and idle["has_more"] is False

    fake_clock.advance(timedelta(minutes=15))
    late = make_events("itemusages", 3, now - timedelta(minutes=45), timedelta(seconds=1), random.Random(3))
    fresh = make_events("itemusages", 2, fake_clock.now() - timedelta(seconds=5), timedelta(seconds=1))
    onepassword_sim.add("itemusages", [late[0], *fresh, late[1], late[2]])

    resumed = _post(onepassword_sim, token, "itemusages", {"cursor": idle["cursor"]}).json()
    assert [i["uuid"] for i in resumed["items"]] == [e["uuid"] for e in (late[0], *fresh, late[1], late[2])]
    assert resumed["has_more"] is False


def test_default_window_is_the_last_hour(onepassword_sim: OnePasswordSim, fake_clock: FakeClock) -> None:
    token = onepassword_sim.issue_token()
    events = onepassword_sim.generate(
        "auditevents", 12, start=fake_clock.now() - timedelta(minutes=115), step=timedelta(minutes=10)
    )

    items = _post(onepassword_sim, token, "auditevents", {}).json()["items"]

    assert [i["uuid"] for i in items] == [e["uuid"] for e in events[6:]]


def test_end_time_is_fixed_in_the_cursor(onepassword_sim: OnePasswordSim, fake_clock: FakeClock) -> None:
    token = onepassword_sim.issue_token()
    now = fake_clock.now()
    events = onepassword_sim.generate(
        "signinattempts", 10, start=now - timedelta(minutes=10), step=timedelta(minutes=1)
    )
    body = {"start_time": _iso(now - timedelta(hours=1)), "end_time": _iso(now - timedelta(minutes=5))}

    page = _post(onepassword_sim, token, "signinattempts", body).json()
    onepassword_sim.generate("signinattempts", 3, start=now)
    later = _post(onepassword_sim, token, "signinattempts", {"cursor": page["cursor"]}).json()

    assert [i["uuid"] for i in page["items"]] == [e["uuid"] for e in events[:5]]
    assert later["items"] == []


def test_only_the_last_120_days_are_served(onepassword_sim: OnePasswordSim, fake_clock: FakeClock) -> None:
    token = onepassword_sim.issue_token()
    now = fake_clock.now()
    too_old, kept = (
        make_events("auditevents", 1, now - timedelta(days=days), rng=random.Random(days))[0]
        for days in (121, 119)
    )
    onepassword_sim.add("auditevents", [too_old, kept])
    body = {"start_time": _iso(now - timedelta(days=400)), "limit": 1000}

    served_now = _post(onepassword_sim, token, "auditevents", body).json()["items"]
    fake_clock.advance(timedelta(days=2))
    served_later = _post(onepassword_sim, token, "auditevents", body).json()["items"]

    assert [i["uuid"] for i in served_now] == [kept["uuid"]]
    assert served_later == []


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 1001},
        {"limit": 0},
        {"limit": "100"},
        {"start_time": "last tuesday"},
        {"start_time": "2026-01-01T00:00:00"},
        {"cursor": "not-a-cursor"},
        {
            "cursor": base64.urlsafe_b64encode(
                b'{"t":"auditevents","p":99,"d":99,"s":0,"e":null,"l":10}'
            ).decode()
        },
        ["not", "an", "object"],
    ],
)
def test_bad_requests_are_400_with_a_message(onepassword_sim: OnePasswordSim, body: Any) -> None:
    answer = _post(onepassword_sim, onepassword_sim.issue_token(), "auditevents", body)

    assert answer.status_code == 400
    assert answer.json()["status"] == 400 and answer.json()["message"]


def test_events_without_a_timestamp_are_refused_when_added(onepassword_sim: OnePasswordSim) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        onepassword_sim.add("auditevents", [{"uuid": "X"}])


def test_cursor_of_another_endpoint_and_invalid_json_are_400(onepassword_sim: OnePasswordSim) -> None:
    token = onepassword_sim.issue_token()
    cursor = _post(onepassword_sim, token, "auditevents", {}).json()["cursor"]

    assert _post(onepassword_sim, token, "itemusages", {"cursor": cursor}).status_code == 400
    raw = requests.post(
        f"{onepassword_sim.url}/api/v2/auditevents",
        data=b"{oops",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert raw.status_code == 400


def test_repeat_cursor_once_returns_the_request_cursor_with_has_more(
    onepassword_sim: OnePasswordSim, fake_clock: FakeClock
) -> None:
    token = onepassword_sim.issue_token()
    onepassword_sim.generate("auditevents", 30, start=fake_clock.now() - timedelta(minutes=30))
    first = _post(onepassword_sim, token, "auditevents", {"limit": 10}).json()
    onepassword_sim.repeat_cursor_once = True

    stuck = _post(onepassword_sim, token, "auditevents", {"cursor": first["cursor"]}).json()
    moving = _post(onepassword_sim, token, "auditevents", {"cursor": stuck["cursor"]}).json()

    assert stuck["cursor"] == first["cursor"] and stuck["has_more"] is True
    assert moving["cursor"] != first["cursor"]
    assert moving["items"] == stuck["items"]


def test_duplicate_at_resume_repeats_the_previous_last_event(
    onepassword_sim: OnePasswordSim, fake_clock: FakeClock
) -> None:
    token = onepassword_sim.issue_token()
    events = onepassword_sim.generate("signinattempts", 20, start=fake_clock.now() - timedelta(minutes=30))
    onepassword_sim.duplicate_at_resume = True

    first = _post(onepassword_sim, token, "signinattempts", {"limit": 10}).json()
    second = _post(onepassword_sim, token, "signinattempts", {"cursor": first["cursor"]}).json()
    third = _post(onepassword_sim, token, "signinattempts", {"cursor": second["cursor"]}).json()

    seen = [i["uuid"] for page in (first, second, third) for i in page["items"]]
    assert second["items"][0]["uuid"] == first["items"][-1]["uuid"]
    assert sorted(set(seen)) == sorted(e["uuid"] for e in events)
    assert len(seen) == len(events) + 2


def test_a_bandwidth_spreads_an_answer_over_its_transfer_time_and_a_key_order_is_kept(
    onepassword_sim: OnePasswordSim,
) -> None:
    token = onepassword_sim.issue_token()
    onepassword_sim.generate("auditevents", 400)
    onepassword_sim.key_order = ("items", "has_more", "cursor")
    onepassword_sim.bandwidth = 1_000_000  # bytes a second

    started = time.monotonic()
    answer = _post(onepassword_sim, token, "auditevents", {"limit": 1000})
    elapsed = time.monotonic() - started

    assert answer.status_code == 200 and len(answer.json()["items"]) == 400
    assert answer.content.startswith(b'{"items": ['), "the cursor comes last when asked to"
    assert elapsed >= 0.8 * len(answer.content) / onepassword_sim.bandwidth, (elapsed, len(answer.content))


def test_rate_limit_answers_429_until_the_window_moves(
    onepassword_sim: OnePasswordSim, fake_clock: FakeClock
) -> None:
    token = onepassword_sim.issue_token()
    onepassword_sim.limit_per_minute = 3

    statuses = [_post(onepassword_sim, token, "auditevents", {}).status_code for _ in range(4)]
    throttled = _post(onepassword_sim, token, "auditevents", {})
    fake_clock.advance(timedelta(seconds=61))
    after = _post(onepassword_sim, token, "auditevents", {})

    assert statuses == [200, 200, 200, 429]
    assert throttled.json() == {"status": 429, "message": "Too Many Requests"}
    assert "Retry-After" not in throttled.headers
    assert after.status_code == 200


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_generated_events_have_the_v2_fields(event_type: str) -> None:
    events = make_events(event_type, 500, datetime(2026, 1, 1, tzinfo=UTC), timedelta(0), random.Random(1))
    required = {
        "auditevents": {
            "uuid",
            "timestamp",
            "actor_uuid",
            "actor_details",
            "actor_type",
            "action",
            "object_type",
            "object_uuid",
            "session",
            "location",
            "account_uuid",
        },
        "itemusages": {
            "uuid",
            "timestamp",
            "used_version",
            "vault_uuid",
            "item_uuid",
            "action",
            "user",
            "client",
            "location",
            "account_uuid",
        },
        "signinattempts": {
            "uuid",
            "session_uuid",
            "timestamp",
            "category",
            "type",
            "country",
            "details",
            "target_user",
            "client",
            "location",
            "account_uuid",
        },
    }[event_type]

    assert all(required <= e.keys() for e in events)
    assert len({e["uuid"] for e in events}) == 500
    assert {e["timestamp"] for e in events} == {"2026-01-01T00:00:00Z"}  # step 0: one shared timestamp
    text = json.dumps(events, ensure_ascii=False)
    assert any(ord(ch) > 127 for ch in text)
    if event_type == "auditevents":
        assert all(isinstance(e["aux_id"], int) for e in events if "aux_id" in e)
        # As the reference says: object_details only for a user object, aux_details only for a user aux.
        assert all(("object_details" in e) == (e["object_type"] == "user") for e in events)
        assert any("aux_details" in e for e in events)
        assert all(e["aux_details"]["uuid"] == e["aux_uuid"] for e in events if "aux_details" in e)
    if event_type == "itemusages":
        assert all(isinstance(e["used_version"], int) for e in events)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
