"""``auditsync demo``: the whole flow against the bundled simulators, for a newcomer with no account.

It starts the 1Password, Keeper, Key Vault (TLS), managed identity and Logs Ingestion stand-ins on
loopback, fills them with sample events, and runs the production code path unchanged: tokens read from
the vault with the managed identity, events paged from the vendor APIs, rows sent to the DCE,
checkpoints saved. Then it shows what arrived in which table, adds late events and runs again (only
the new ones arrive), and runs once more with nothing new (the heartbeat says ``idle``).

Needs the development requirements (the simulators use trustme for the vault's certificate).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from auditsync.config import Settings
from auditsync.runner import CycleReport, run_cycle


@contextmanager
def _environment(values: dict[str, str], clear: tuple[str, ...] = ()) -> Iterator[None]:
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


def run_demo(out: TextIO, *, events_per_stream: int = 300, data_dir: str | Path = ".auditsync") -> int:
    from simulators.identity import COMPETING_CREDENTIAL_ENV, ManagedIdentitySim
    from simulators.keyvault import KeyVaultSim
    from simulators.logs_ingestion import LogsIngestionSim
    from simulators.onepassword import OnePasswordSim
    from simulators.tls import make_loopback_tls

    demo_dir = Path(data_dir) / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)  # fresh simulators: old cursors would mean nothing to them
    demo_dir.mkdir(parents=True)
    with ExitStack() as stack:
        tls = make_loopback_tls(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        identity = stack.enter_context(ManagedIdentitySim())
        vault = stack.enter_context(KeyVaultSim(tls.server_context, identity=identity))
        logs = stack.enter_context(LogsIngestionSim(identity=identity))
        onepassword = stack.enter_context(OnePasswordSim())
        # The demo's credential must be the simulated managed identity, whatever the developer is signed in as.
        stack.enter_context(
            _environment(
                {**identity.env(), **tls.env(), "NO_PROXY": "127.0.0.1,localhost"},
                clear=COMPETING_CREDENTIAL_ENV,
            )
        )

        now = datetime.now(UTC)
        step = timedelta(hours=20) / max(1, events_per_stream)
        for event_type in ("auditevents", "itemusages", "signinattempts"):
            onepassword.generate(event_type, events_per_stream, start=now - timedelta(hours=20), step=step)
        vault.set_secret("onepassword-api-token", onepassword.issue_token())
        sources = ["onepassword"]
        env = {
            "SOURCES": ",".join(sources),
            "ONEPASSWORD_BASE_URL": onepassword.url,
            "KEY_VAULT_URL": vault.url,
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": logs.url,
            "LOGS_INGESTION_RULE_ID": logs.dcr_id,
            "CHECKPOINT_STORE": "file",
            "AUDITSYNC_DATA_DIR": str(demo_dir),
            "RUN_TIME_BUDGET": "2m",
        }
        _extend_with_keeper(stack, env, vault, events_per_stream, now)
        settings = Settings.from_env(env)

        print("auditsync demo: simulators started on loopback", file=out)
        print(f"  1Password Events API  {onepassword.url}", file=out)
        if "KEEPER_BASE_URL" in env:
            print(f"  Keeper Admin API      {env['KEEPER_BASE_URL']}", file=out)
        print(
            f"  Key Vault (TLS)       {vault.url}   tokens as secrets, read with the managed identity",
            file=out,
        )
        print(f"  Managed identity      {identity.url}", file=out)
        print(f"  Logs Ingestion (DCE)  {logs.url}   DCR {logs.dcr_id}", file=out)

        print("\n1) first run: the backlog", file=out)
        reports = [run_cycle(settings)]
        _print_run(reports[-1], out)

        print(
            "\n2) late item usages arrive (timestamped an hour ago) and the next run picks up only those",
            file=out,
        )
        onepassword.generate("itemusages", 25, start=now - timedelta(hours=1), step=timedelta(seconds=30))
        reports.append(run_cycle(settings))
        _print_run(reports[-1], out)

        print("\n3) nothing new: the heartbeat still reports every stream", file=out)
        reports.append(run_cycle(settings))
        _print_run(reports[-1], out)

        _print_tables(logs, demo_dir, out)
        print(f"\ncheckpoints: {demo_dir / 'checkpoints'}", file=out)
        print(
            "Next: `python -m auditsync check` with your own tokens (see README), then `./dev run`.", file=out
        )
        return 1 if any(r.failed for r in reports) else 0


def _extend_with_keeper(stack: ExitStack, env: dict[str, str], vault: Any, n: int, now: datetime) -> None:
    """Add the Keeper simulator: sample events over the last 20 hours, its token as a vault secret."""
    try:
        from simulators.keeper import KeeperSim, sample_events
    except ImportError:
        return
    token = secrets.token_urlsafe(24)
    keeper = KeeperSim(token=token)
    stack.enter_context(keeper)
    keeper.add(sample_events(n, now - timedelta(hours=20), now - timedelta(minutes=10), seed=1))
    vault.set_secret("keeper-api-token", token)
    env["SOURCES"] = ",".join([*env["SOURCES"].split(","), "keeper"])
    env["KEEPER_BASE_URL"] = keeper.url


def _print_run(report: CycleReport, out: TextIO) -> None:
    for r in report.reports:
        line = f"   {r.stream:<28} {r.status:<6} {r.events:>6} events"
        if r.error_kind:
            line += f"  {r.error_kind}: {r.message}"
        print(line, file=out)


def _print_tables(logs: Any, demo_dir: Path, out: TextIO) -> None:
    print(
        "\nwhat arrived where (Logs Ingestion simulator, validated against auditsync/tables/*.json):",
        file=out,
    )
    for table in sorted(logs.row_counts):
        rows = logs.rows(table)
        path = demo_dir / f"{table}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        kinds = Counter(str(r.get("log_source") or r.get("Stream") or r.get("audit_event", "")) for r in rows)
        shown = kinds.most_common(6)
        detail = ", ".join(f"{k or '-'}: {v}" for k, v in sorted(shown)) + (
            ", ..." if len(kinds) > len(shown) else ""
        )
        print(f"  {table:<32} {len(rows):>6} rows   ({detail})   -> {path}", file=out)
    problems = sum(len(v) for v in logs.undeclared.values()) + len(logs.type_errors)
    print(f"  undeclared columns or type errors: {problems}", file=out)


def run_tenants_demo(
    out: TextIO, *, tenants: int = 3, events_per_stream: int = 100, data_dir: str | Path = ".auditsync"
) -> int:
    """``auditsync demo --tenants N``: N tenants, each with its own 1Password and Keeper accounts and
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
            _environment(
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
