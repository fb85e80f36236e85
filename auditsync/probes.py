"""``auditsync check``: prove every part a run needs by using it, the way a run would.

Each probe does the real thing on a small scale: read each Key Vault secret and check its shape (and
say when the token expires, warning about one that expires soon or whose expiry nobody recorded), ask
each vendor what the token may read, write one ``AuditSyncHealth_CL`` row (``Status=check``)
through the configured sink, and create, read and delete a probe record in the checkpoint store.
A probe that only fetched a token would pass while the DCR id is wrong, the role is missing or the
endpoint is unreachable; a write is the only proof. Every failure becomes one ``ProbeResult`` with
the hint of the error that caused it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from auditsync.config import SecretRef, Settings, SinkSettings, StoreSettings
from auditsync.errors import AuditSyncError, CheckpointError, ConfigError
from auditsync.heartbeat import health_rows
from auditsync.http import HttpClient, Redactor
from auditsync.model import Checkpoint, CheckpointStore, Clock, Deadline, Sink, StreamReport
from auditsync.schedule import describe_next_runs
from auditsync.secrets import CredentialFactory, Secrets, default_credential
from auditsync.tables import HEALTH_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from auditsync.token_expiry import RENEW_HINTS, WARN_DAYS, TokenExpiry, days_left, refused_after_expiry
from auditsync.token_expiry import describe as describe_expiry
from auditsync.urls import is_loopback_url

#: The Status of the row ``check`` writes: never ok/idle/behind/error, so content can tell it apart.
STATUS_CHECK = "check"
CHECK_STREAM = "auditsync/check"
#: check answers in seconds: one retry at most, never the run's whole backoff schedule.
CHECK_SINK_BUDGET = timedelta(seconds=20)
#: A vendor probe is one small request.
PROBE_BUDGET = timedelta(seconds=60)
_BUG_HINT = "Unexpected: run 'python -m auditsync -v check' and report the output to the maintainers."
_NAMES = {"onepassword": "1Password", "keeper": "Keeper"}


@dataclass(frozen=True)
class ProbeResult:
    """One line of ``check``: ``ok`` with what was proven, or ``x`` with the problem and what to do; a
    ``warning`` (``!``) is worth acting on but fails nothing."""

    part: str
    ok: bool
    detail: str
    hint: str = ""
    skipped: bool = False
    warning: bool = False


def _attempt(part: str, action: Callable[[], str], redactor: Redactor, named: str = "") -> ProbeResult:
    """Run one probe; ``named`` is a setting the part's name already says (not repeated in its message)."""
    try:
        detail = action()
    except AuditSyncError as error:
        message = str(error).removeprefix(f"{named}: ") if named else str(error)
        return ProbeResult(part, False, redactor(message), redactor(error.hint))
    except Exception as error:  # a probe must report, never crash check
        return ProbeResult(
            part, False, f"unexpected {type(error).__name__}: {redactor(str(error))[:300]}", _BUG_HINT
        )
    return ProbeResult(part, True, redactor(detail))


def run_probes(
    settings: Settings,
    *,
    credential_factory: CredentialFactory | None = None,
    clock: Clock | None = None,
) -> Iterator[ProbeResult]:
    """Every probe in the order a run needs the parts; yields as it goes so the CLI prints live."""
    from auditsync.checkpoints import open_store
    from auditsync.sinks import open_sink
    from auditsync.sources import SourceContext, source_module

    clock = clock or Clock()
    redactor = Redactor(settings.secret_values())
    credential = functools.cache(credential_factory or default_credential)
    http = HttpClient(clock=clock, redactor=redactor, max_attempts=2)
    secrets = Secrets(settings.key_vault_url, credential, redactor, retry_total=1)

    yield _attempt(
        f"timer schedule '{settings.timer_schedule}'",
        lambda: "next runs " + describe_next_runs(settings.timer_schedule, clock.now()),
        redactor,
    )

    tokens: dict[str, str] = {}
    expiries: dict[str, TokenExpiry] = {}
    for source in settings.sources:
        ref = settings.source(source).token

        def read(source: str = source, ref: SecretRef = ref) -> str:
            tokens[source] = secrets.token(source, ref)  # reads the secret and checks the token's shape
            expiries[source] = secrets.token_expiry(source, ref)
            expiry = _expiry_text(expiries[source], clock.now())
            return f"readable, shaped like a {_NAMES[source]} token; {expiry}"

        label = (
            ref.setting if ref.value or not settings.key_vault_url else f"Key Vault secret {ref.secret_name}"
        )
        yield _attempt(f"{source} token ({label})", read, redactor, named=label)
        if source in expiries:
            warning = expiry_warning(source, ref, expiries[source], secrets, clock.now())
            if warning is not None:
                yield warning

    key = settings.sink.data_collector.key
    if settings.sink.kind == "data_collector" and not key.value and settings.key_vault_url:

        def read_key() -> str:
            try:
                base64.b64decode(secrets.read(key, what="workspace key"), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"{secrets.where(key)} is not a base64 workspace shared key",
                    hint="Copy the workspace's primary key (Agents page) into the secret again, as it is shown.",
                ) from None
            return "readable, a base64 shared key"

        yield _attempt(f"workspace key (Key Vault secret {key.secret_name})", read_key, redactor)

    for source in settings.sources:
        part = f"{source} API ({_NAMES[source]} {'introspect' if source == 'onepassword' else 'one-event query'})"
        if source not in tokens:
            yield ProbeResult(part, False, "not tried: no usable token (see above)", skipped=True)
            continue

        def call(source: str = source) -> str:
            now = clock.now()
            context = SourceContext(
                settings.source(source), tokens[source], http, clock, now, Deadline.after(clock, PROBE_BUDGET)
            )
            try:
                return source_module(source).probe(context)
            except AuditSyncError as error:
                raise refused_after_expiry(error, source, expiries[source].expires_on, clock.now()) from None

        yield _attempt(part, call, redactor)

    def write_to_sink() -> str:
        sink: Sink
        target = settings.sink.logs_ingestion
        if settings.sink.kind == "logs_ingestion":
            from auditsync.sinks.logs_ingestion import LogsIngestionSink

            # One quick retry: check must answer in seconds, not after the run's backoff schedule.
            sink = LogsIngestionSink(
                target.endpoint,
                target.rule_id,
                credential(),
                audience=target.audience,
                clock=clock,
                max_attempts=2,
            )
        else:
            sink = open_sink(
                settings.sink, credential_factory=credential, secrets=secrets, http=http, clock=clock
            )
        sink.send(HEALTH_TABLE, check_rows(clock.now()), Deadline.after(clock, CHECK_SINK_BUDGET))
        return f"{_sink_target(settings.sink)}: accepted one {HEALTH_TABLE} row (Status={STATUS_CHECK})"

    yield _attempt(f"sink {settings.sink.kind}", write_to_sink, redactor)

    def round_trip() -> str:
        store = open_store(settings.store, credential)
        return probe_store(store, clock.now()) + f" ({_store_target(settings.store)})"

    yield _attempt("checkpoint store", round_trip, redactor)


def _expiry_text(expiry: TokenExpiry, now: datetime) -> str:
    if expiry.expires_on is None:
        return "expiry unknown"
    text = describe_expiry(expiry.expires_on, now)
    return f"{text if expiry.expires_on <= now else 'expires ' + text}, per {expiry.origin}"


def expiry_warning(
    source: str, ref: SecretRef, expiry: TokenExpiry, secrets: Secrets, now: datetime
) -> ProbeResult | None:
    """A ``!`` line for a token that expires within WARN_DAYS (or has), and for a Keeper token whose expiry
    nobody recorded: Keeper's API does not say, so only the secret's expiry can warn before it does."""
    part = f"{source} token expiry"
    if expiry.expires_on is not None:
        if days_left(expiry.expires_on, now) >= WARN_DAYS:
            return None
        detail = describe_expiry(expiry.expires_on, now)
        detail = detail if expiry.expires_on <= now else f"expires {detail}"
        return ProbeResult(part, True, detail, RENEW_HINTS[source], warning=True)
    if source != "keeper":
        return None  # a 1Password token without an exp claim was issued not to expire
    vault = urlsplit(secrets.key_vault_url).hostname or ""
    vault = "<vault>" if not vault or is_loopback_url(secrets.key_vault_url) else vault.split(".")[0]
    if secrets.in_vault(ref):
        return ProbeResult(
            part,
            True,
            f"unknown: the Key Vault secret '{ref.secret_name}' has no expiry date, and Keeper's API does not "
            "say when a token expires, so nothing can warn before it does",
            "Give the secret the token's expiry (Commander's 'public-api-key list' shows it): az keyvault "
            f"secret set-attributes --vault-name {vault} --name {ref.secret_name} --expires "
            "<when it expires, e.g. 2027-01-31T00:00:00Z>. A token created with --expires never needs none.",
            warning=True,
        )
    return ProbeResult(
        part,
        True,
        f"unknown: {ref.setting} is given directly, without an expiry date, and Keeper's API does not say "
        "when a token expires",
        f"Store the token in Key Vault with its expiry: az keyvault secret set --vault-name {vault} --name "
        f"{ref.secret_name or 'keeper-api-token'} --file <token file> --expires <when it expires, e.g. "
        f"2027-01-31T00:00:00Z>; then set KEY_VAULT_URL and {ref.secret_setting} instead of {ref.setting}.",
        warning=True,
    )


def check_rows(now: datetime) -> list[dict[str, object]]:
    """The one health row ``check`` writes, shaped by the table file exactly like a run's heartbeat."""
    report = StreamReport(
        "auditsync", CHECK_STREAM, STATUS_CHECK, message="written by 'auditsync check' to prove the sink"
    )
    rows, _ = shape_rows(
        TABLES[HEALTH_TABLE], health_rows([report], now=now, run_id="check-" + uuid.uuid4().hex[:8]), now=now
    )
    return rows


def probe_store(store: CheckpointStore, now: datetime) -> str:
    """Create, read back and delete a probe record: proves the store is reachable and writable."""
    name = f"auditsync/check-{uuid.uuid4().hex[:12]}"
    created = store.save(Checkpoint(name, position={"probe": True}, last_run=now))
    loaded = store.load(name)
    if loaded.position != {"probe": True} or loaded.etag != created.etag:
        raise CheckpointError(
            f"the probe record {name} read back differently than it was written",
            hint="Another process changes records in this store; check CHECKPOINT_TABLE / AUDITSYNC_DATA_DIR.",
        )
    store.delete(loaded)
    if store.load(name).etag is not None:
        raise CheckpointError(f"the probe record {name} is still there after its deletion")
    return "created, read and deleted a probe record"


def _sink_target(settings: SinkSettings) -> str:
    if settings.kind == "logs_ingestion":
        return f"DCR {settings.logs_ingestion.rule_id}, stream {TABLES[HEALTH_TABLE].stream}"
    if settings.kind == "data_collector":
        return f"workspace {settings.data_collector.workspace_id}, Log-Type {TABLES[HEALTH_TABLE].legacy_log_type}"
    return str(settings.directory)


def _store_target(settings: StoreSettings) -> str:
    if settings.kind == "table":
        return f"table {settings.table}"
    return str(settings.directory)
