"""The demo: the whole flow against the bundled simulators, for a newcomer with no account.

``./dev run`` runs it when no tenant is configured (``./dev demo`` always; ``python -m simulators.demo``).
It lives with the simulators, not in the product package: the deployed app ships neither.

It starts the 1Password, Keeper, Key Vault (TLS), managed identity and Logs Ingestion stand-ins on
loopback, fills them with sample events, and runs the production code path unchanged: tokens read from
the vault with the managed identity, events paged from the vendor APIs, rows sent to the DCE,
checkpoints saved. Then it shows what arrived in which table, adds late events and runs again (only
the new ones arrive), and runs once more with nothing new (the heartbeat says ``idle``).

The settings in the environment are validated as for a real run (a bad one ends the demo with exit 2
before anything starts); the ones that shape collection (SOURCES, ONEPASSWORD_EVENT_TYPES,
RUN_TIME_BUDGET, INITIAL_LOOKBACK, KEEPER_LAG, KEEPER_OVERLAP) apply to the demo too, the ones that name
real services are replaced by the simulators. Everything the demo writes lives under
``$AUDITSYNC_DATA_DIR/demo`` (checkpoints and the rows of each table), so it never mixes with a real
tenant's and ``AUDITSYNC_DATA_DIR=.auditsync/demo ./dev cli status`` shows it afterwards. Rows go to
disk as they arrive, so a backlog of any size runs in bounded memory.

Needs the development requirements (the simulators use trustme for the vault's certificate).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, cast

from auditsync.config import Settings
from auditsync.durations import format_duration
from auditsync.errors import ConfigError
from auditsync.runner import run_cycle
from auditsync.telemetry import quiet_sdk_loggers


@contextmanager
def sdk_environment(values: dict[str, str], clear: tuple[str, ...] = ()) -> Iterator[None]:
    """Set process variables the SDKs read (managed identity endpoint, CA bundle), clear ``clear``,
    and restore everything after."""
    saved = {name: os.environ.get(name) for name in (*values, *clear)}
    for name in clear:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: Settings a user may give the demo: they shape collection, not where it goes.
DEMO_SETTINGS = (
    "SOURCES",
    "ONEPASSWORD_EVENT_TYPES",
    "RUN_TIME_BUDGET",
    "INITIAL_LOOKBACK",
    "KEEPER_LAG",
    "KEEPER_OVERLAP",
)
#: How far back the sample backlog reaches.
HISTORY = timedelta(hours=20)


def run_demo(
    out: TextIO,
    *,
    events_per_stream: int = 300,
    data_dir: str | Path = ".auditsync",
    given: Settings | None = None,
) -> int:
    """The single-tenant demo; ``given`` are the user's (validated) settings, of which DEMO_SETTINGS apply."""
    from auditsync.cli import print_summary, progress_printer
    from simulators.identity import COMPETING_CREDENTIAL_ENV, ManagedIdentitySim
    from simulators.keyvault import KeyVaultSim
    from simulators.logs_ingestion import LogsIngestionSim
    from simulators.onepassword import OnePasswordSim
    from simulators.tls import make_loopback_tls

    given = given or Settings()
    demo_dir = Path(data_dir) / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)  # fresh simulators: old cursors would mean nothing to them
    demo_dir.mkdir(parents=True)
    tables_dir = demo_dir / "tables"
    with ExitStack() as stack:
        tls = make_loopback_tls(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        identity = stack.enter_context(ManagedIdentitySim())
        vault = stack.enter_context(KeyVaultSim(tls.server_context, identity=identity))
        logs = stack.enter_context(LogsIngestionSim(identity=identity, spool=tables_dir))
        onepassword = stack.enter_context(OnePasswordSim())
        # The demo's credential must be the simulated managed identity, whatever the developer is signed in as.
        stack.enter_context(
            sdk_environment(
                {**identity.env(), **tls.env(), "NO_PROXY": "127.0.0.1,localhost"},
                clear=COMPETING_CREDENTIAL_ENV,
            )
        )

        now = datetime.now(UTC)
        step = HISTORY / max(1, events_per_stream)
        env = {
            "SOURCES": ",".join(given.sources),
            "ONEPASSWORD_EVENT_TYPES": ",".join(given.onepassword.event_types),
            "ONEPASSWORD_BASE_URL": onepassword.url,
            "KEY_VAULT_URL": vault.url,
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": logs.url,
            "LOGS_INGESTION_RULE_ID": logs.dcr_id,
            "CHECKPOINT_STORE": "file",
            "AUDITSYNC_DATA_DIR": str(demo_dir),
            "RUN_TIME_BUDGET": format_duration(given.run_time_budget),
            "INITIAL_LOOKBACK": format_duration(given.onepassword.initial_lookback),
            "KEEPER_LAG": format_duration(given.keeper.lag),
            "KEEPER_OVERLAP": format_duration(given.keeper.overlap),
        }
        print("auditsync demo: simulators started on loopback", file=out)
        if "onepassword" in given.sources:
            for event_type in given.onepassword.event_types:
                onepassword.generate(event_type, events_per_stream, start=now - HISTORY, step=step)
            vault.set_secret("onepassword-api-token", onepassword.issue_token())
            print(f"  1Password Events API  {onepassword.url}", file=out)
        if "keeper" in given.sources:
            keeper_url = _start_keeper(stack, vault, events_per_stream, now)
            env["KEEPER_BASE_URL"] = keeper_url
            print(f"  Keeper Admin API      {keeper_url}", file=out)
        settings = Settings.from_env(env)
        print(
            f"  Key Vault (TLS)       {vault.url}   tokens as secrets, read with the managed identity",
            file=out,
        )
        print(f"  Managed identity      {identity.url}", file=out)
        print(f"  Logs Ingestion (DCE)  {logs.url}   DCR {logs.dcr_id}", file=out)
        total = events_per_stream * (
            len(given.onepassword.event_types) * ("onepassword" in given.sources)
            + ("keeper" in given.sources)
        )
        print(
            f"  sample backlog: {events_per_stream} events per stream over {format_duration(HISTORY)}, {total} in all",
            file=out,
        )

        print("\n1) first run: the backlog", file=out)
        reports = [run_cycle(settings, progress=progress_printer(out))]
        print_summary(reports[-1], out)

        if "onepassword" in given.sources and "itemusages" in given.onepassword.event_types:
            print(
                "\n2) late item usages arrive (timestamped an hour ago); the next run picks up only those",
                file=out,
            )
            onepassword.generate("itemusages", 25, start=now - timedelta(hours=1), step=timedelta(seconds=30))
        else:
            print("\n2) a second run", file=out)
        reports.append(run_cycle(settings, progress=progress_printer(out)))
        print_summary(reports[-1], out)

        print("\n3) nothing new: the heartbeat still reports every stream", file=out)
        reports.append(run_cycle(settings))
        print_summary(reports[-1], out)

        _print_tables(logs, tables_dir, out)
        print(f"\neverything the demo wrote is under {demo_dir}:", file=out)
        print(
            f"  AUDITSYNC_DATA_DIR={demo_dir} ./dev cli status   the streams' checkpoints and outcomes",
            file=out,
        )
        print(
            "Next: your own account: set its token (README, 'Your own account'), run ./dev cli check, then ./dev run.",
            file=out,
        )
        return 1 if any(r.failed for r in reports) else 0


def _start_keeper(stack: ExitStack, vault: Any, n: int, now: datetime) -> str:
    """The Keeper simulator with sample events over the history; its token as a vault secret."""
    from simulators.keeper import KeeperSim, sample_events

    token = secrets.token_urlsafe(24)
    keeper = KeeperSim(token=token)
    stack.enter_context(keeper)
    keeper.add(sample_events(n, now - HISTORY, now - timedelta(minutes=10), seed=1))
    vault.set_secret("keeper-api-token", token)
    return keeper.url


def _print_tables(logs: Any, tables_dir: Path, out: TextIO) -> None:
    """Each table's rows by kind, read back from the files the simulator wrote them to."""
    print(
        "\nwhat arrived where (Logs Ingestion simulator, validated against auditsync/tables/*.json):",
        file=out,
    )
    for table in sorted(logs.row_counts):
        path = tables_dir / f"{table}.jsonl"
        kinds: Counter[str] = Counter()
        with open(path, "rb") as handle:
            for line in handle:
                row = json.loads(line)
                kinds[
                    str(row.get("log_source") or row.get("Stream") or row.get("audit_event", "")) or "-"
                ] += 1
        shown = kinds.most_common(5)
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(shown)) + (
            ", ..." if len(kinds) > len(shown) else ""
        )
        print(f"  {table:<32} {logs.row_counts[table]:>7} rows  {path}", file=out)
        print(f"  {'':<32} {detail}", file=out)
    problems = sum(len(v) for v in logs.undeclared.values()) + len(logs.type_errors)
    print(f"  undeclared columns or type errors: {problems}", file=out)


def run_tenants_demo(
    out: TextIO, *, tenants: int = 3, events_per_stream: int = 100, data_dir: str | Path = ".auditsync"
) -> int:
    """``./dev demo --tenants N``: N tenants, each with its own 1Password and Keeper accounts and
    its own DCR, dispatched to Azurite's queue service and worked by the same loop as the queue trigger."""
    from auditsync.fanout.commands import tenant_status
    from auditsync.fanout.deployment import open_registry, open_work_queues, visibility_for, work_message
    from auditsync.fanout.dispatch import dispatch
    from auditsync.fanout.local_worker import drain
    from auditsync.tenants import Tenant
    from simulators.azurite import available, azurite
    from simulators.identity import COMPETING_CREDENTIAL_ENV, ManagedIdentitySim
    from simulators.keeper import KeeperSim, sample_events
    from simulators.keyvault import KeyVaultSim
    from simulators.logs_ingestion import LogsIngestionSim
    from simulators.onepassword import OnePasswordSim
    from simulators.tls import make_loopback_tls

    if not available("queue"):
        print("The multi-tenant demo needs Azurite's queue service: run ./dev setup first.", file=out)
        return 2
    demo_dir = Path(data_dir) / "demo-tenants"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    with ExitStack() as stack:
        tls = make_loopback_tls(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        identity = stack.enter_context(ManagedIdentitySim())
        vault = stack.enter_context(KeyVaultSim(tls.server_context, identity=identity))
        own_dcr = stack.enter_context(LogsIngestionSim(identity=identity))
        queue_conn, _ = stack.enter_context(azurite("queue"))
        stack.enter_context(
            sdk_environment(
                {**identity.env(), **tls.env(), "NO_PROXY": "127.0.0.1,localhost"},
                clear=COMPETING_CREDENTIAL_ENV,
            )
        )
        env = {
            "KEY_VAULT_URL": vault.url,
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": own_dcr.url,
            "LOGS_INGESTION_RULE_ID": own_dcr.dcr_id,
            "CHECKPOINT_STORE": "file",
            "AUDITSYNC_DATA_DIR": str(demo_dir),
            "RUN_TIME_BUDGET": "2m",
            "TENANT_REGISTRY": "file",
            "WORK_QUEUE": "auditsync-demo",
            "WORK_QUEUE_CONNECTION_STRING": queue_conn,
        }
        settings = Settings.from_env(env)
        registry = open_registry(settings.fanout, lambda: None)
        now = datetime.now(UTC)
        dcrs = {}
        print(
            f"auditsync demo: {tenants} tenants, each with its own 1Password and Keeper account and DCR",
            file=out,
        )
        for n in range(tenants):
            name = f"customer-{n + 1}"
            onepassword = stack.enter_context(OnePasswordSim(seed=n))
            for event_type in ("auditevents", "itemusages", "signinattempts"):
                onepassword.generate(event_type, events_per_stream, step=timedelta(minutes=5))
            keeper = stack.enter_context(KeeperSim(token=secrets.token_urlsafe(24), seed=n))
            keeper.add(
                sample_events(
                    events_per_stream, now - timedelta(hours=20), now - timedelta(minutes=10), seed=n
                )
            )
            vault.set_secret(f"{name}-1password", onepassword.issue_token())
            vault.set_secret(f"{name}-keeper", keeper.token)
            dcrs[name] = stack.enter_context(LogsIngestionSim(identity=identity))
            registry.put(
                Tenant(
                    name,
                    {
                        "ONEPASSWORD_BASE_URL": onepassword.url,
                        "ONEPASSWORD_TOKEN_SECRET": f"{name}-1password",
                        "KEEPER_BASE_URL": keeper.url,
                        "KEEPER_TOKEN_SECRET": f"{name}-keeper",
                        "LOGS_INGESTION_ENDPOINT": dcrs[name].url,
                        "LOGS_INGESTION_RULE_ID": dcrs[name].dcr_id,
                    },
                )
            )
            print(
                f"  {name}: 1Password {onepassword.url}, Keeper {keeper.url}, DCR {dcrs[name].dcr_id}",
                file=out,
            )

        queue, poison = open_work_queues(settings.fanout, lambda: None, create=True)
        report = dispatch(registry, env, queue, now=now, run_id="demo")
        print(f"\n1) the timer's dispatch: {len(report.enqueued)} work items on the queue", file=out)

        def handle(text: str, _count: int) -> None:
            work_message(text, settings, env, registry=registry)

        worked = drain(
            queue,
            poison,
            handle,
            visibility=visibility_for(settings),
            idle_polls=1,
            poll_interval=0.1,
        )
        print(f"2) the queue worker collected {worked} items (in Azure: queue-triggered instances)", file=out)
        print("\n3) what each tenant's DCR received:", file=out)
        for name, dcr in dcrs.items():
            health = dcr.rows("AuditSyncHealth_CL")
            events = sum(len(dcr.rows(t)) for t in ("KeeperSecurityEventNewLogs_CL",)) + sum(
                1 for r in dcr.rows("OnePasswordEventLogs_CL") if r.get("log_source") != "healthevents"
            )
            statuses = Counter(f"{r['Status']}" for r in health)
            print(
                f"  {name:<12} {events:>5} events, {len(health)} health rows with Tenant={health[0]['Tenant'] if health else '-'} "
                f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})",
                file=out,
            )
        print("\n4) python -m auditsync status, per tenant:", file=out)
        tenant_status(settings, env, out)
        return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= MAX_EVENTS:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {MAX_EVENTS:,}")
    return value


#: The largest sample backlog per stream (a real account's first day is rarely more).
MAX_EVENTS = 1_000_000
#: The most tenants of the multi-tenant demo (each brings its own simulators).
MAX_TENANTS = 20


def main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    """``python -m simulators.demo [--events N] [--tenants N]``; exit 0 ok, 1 a stream failed, 2 bad input."""
    from auditsync.cli import RedactingWriter, print_problems

    parser = argparse.ArgumentParser(
        prog="./dev demo", description="The whole flow against the bundled simulators, no account needed."
    )
    parser.add_argument(
        "--events", type=_positive, default=300, help="sample events per stream (default 300)"
    )
    parser.add_argument(
        "--tenants",
        type=int,
        choices=range(MAX_TENANTS + 1),
        default=0,
        metavar=f"0-{MAX_TENANTS}",
        help="the multi-tenant demo with this many tenants (default 0: one deployment, one account)",
    )
    args = parser.parse_args(argv)
    stream = cast(TextIO, RedactingWriter(out or sys.stdout))
    environ = dict(os.environ if env is None else env)
    try:
        given = Settings.from_env(environ, require_tokens=False)
    except ConfigError as error:
        print_problems(error, stream)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    quiet_sdk_loggers(False)
    if args.tenants:
        return run_tenants_demo(
            stream, tenants=args.tenants, events_per_stream=args.events, data_dir=given.data_dir
        )
    return run_demo(stream, events_per_stream=args.events, data_dir=given.data_dir, given=given)


if __name__ == "__main__":
    sys.exit(main())
