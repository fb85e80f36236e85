"""The command line of a multi-tenant deployment: ``tenants``, ``dispatch``, ``work`` and the tenant status.

python -m auditsync tenants add NAME --set SETTING=VALUE ...   create or replace a tenant
python -m auditsync tenants list | remove NAME | disable NAME | enable NAME
python -m auditsync dispatch    one timer tick: a work item per (tenant, stream) on WORK_QUEUE
python -m auditsync work        the queue trigger locally: drain WORK_QUEUE (and report its poison queue)
                                until it stays empty; start several to work in parallel

Kept apart from cli.py so the single-tenant commands stay as they are; cli.py only registers these.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import TextIO

from auditsync.config import Settings
from auditsync.errors import AuditSyncError, ConfigError, print_failure
from auditsync.fanout.deployment import (
    dispatch_tick,
    open_registry,
    open_work_queues,
    report_poison,
    visibility_for,
    work_message,
)
from auditsync.fanout.local_worker import drain
from auditsync.fanout.queue import MAX_DEQUEUE_COUNT
from auditsync.fanout.scoped_store import tenant_key
from auditsync.model import Clock
from auditsync.redaction import redact
from auditsync.secrets import CredentialFactory, default_credential
from auditsync.tenants import TENANT_SETTINGS, Tenant, TenantRegistry, settings_for
from auditsync.token_expiry import describe as describe_expiry

log = logging.getLogger(__name__)

COMMANDS = ("tenants", "dispatch", "work")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the CLI's subparsers."""
    tenants = sub.add_parser("tenants", help="manage the tenant registry (TENANT_REGISTRY=file|table)")
    actions = tenants.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create or replace a tenant")
    add.add_argument("name")
    add.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help=f"a tenant setting, any of: {', '.join(TENANT_SETTINGS)}",
    )
    add.add_argument("--disabled", action="store_true", help="add it disabled (not dispatched)")
    actions.add_parser("list", help="every tenant, its state and settings")
    for action, text in (
        ("remove", "remove a tenant (its checkpoints stay)"),
        ("disable", "stop dispatching a tenant"),
        ("enable", "dispatch a tenant again"),
    ):
        actions.add_parser(action, help=text).add_argument("name")
    sub.add_parser("dispatch", help="one tick: enqueue a work item per (tenant, stream)")
    work = sub.add_parser("work", help="work the queue locally until it stays empty")
    work.add_argument("--idle-polls", type=int, default=5, help="stop after this many empty polls")
    work.add_argument("--poll-interval", type=float, default=0.5, help="seconds between empty polls")
    work.add_argument(
        "--max-dequeue-count",
        type=int,
        default=MAX_DEQUEUE_COUNT,
        help="failures before a message moves to the poison queue (host.json maxDequeueCount)",
    )


def run(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    out: TextIO,
    *,
    credential_factory: CredentialFactory | None = None,
) -> int:
    """Run one of COMMANDS with the settings the CLI validated (it reports settings problems, exit 2)."""
    credential = functools.cache(credential_factory or default_credential)
    if not settings.multi_tenant:
        print(
            "x this deployment has no tenant registry (TENANT_REGISTRY=none): it is single-tenant.",
            file=out,
        )
        print("    what to do: set TENANT_REGISTRY=file (local) or table (Function App).", file=out)
        return EXIT_CONFIG
    commands: dict[str, Callable[[], int]] = {
        "tenants": lambda: _tenants(args, settings, env, open_registry(settings.fanout, credential), out),
        "dispatch": lambda: _dispatch(settings, env, credential, out),
        "work": lambda: _work(args, settings, env, credential, out),
    }
    try:
        return commands[args.command]()
    except AuditSyncError as error:
        print_failure(error, out)
        return EXIT_FAILED


def _tenants(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    registry: TenantRegistry,
    out: TextIO,
) -> int:
    if args.action == "list":
        tenants = registry.list()
        for tenant in tenants:
            state = "enabled" if tenant.enabled else "disabled"
            shown = " ".join(f"{k}={v}" for k, v in tenant.settings.items())
            print(f"{tenant.name:<24} {state:<9} {shown}", file=out)
        print(f"{len(tenants)} tenant(s) in {registry!r}", file=out)
        return EXIT_OK
    if args.action == "add":
        values: dict[str, str] = {}
        for pair in args.values:
            key, sep, value = pair.partition("=")
            if not sep:
                print(f"x --set {pair[:40]!r}: write it as SETTING=VALUE", file=out)
                return EXIT_CONFIG
            values[key.strip()] = value.strip()
        try:
            tenant = Tenant(args.name, values, enabled=not args.disabled)
            settings_for(tenant, env)  # refuse a tenant the dispatcher would refuse
        except ConfigError as error:
            print(f"x {error}", file=out)
            return EXIT_CONFIG
        registry.put(tenant)
        print(f"tenant {tenant.name} saved ({'disabled' if args.disabled else 'enabled'})", file=out)
        return EXIT_OK
    existing = registry.get(args.name)
    if existing is None:
        print(f"x no tenant named {args.name!r}; `tenants list` shows them", file=out)
        return EXIT_FAILED
    if args.action == "remove":
        registry.remove(args.name)
        print(
            f"tenant {args.name} removed (its checkpoints under {tenant_key(args.name, '')} stay)", file=out
        )
        return EXIT_OK
    enabled = args.action == "enable"
    registry.put(Tenant(existing.name, existing.settings, enabled=enabled))
    print(f"tenant {args.name} {'enabled' if enabled else 'disabled'}", file=out)
    return EXIT_OK


def _dispatch(settings: Settings, env: Mapping[str, str], credential: CredentialFactory, out: TextIO) -> int:
    run_id = uuid.uuid4().hex[:12]
    report = dispatch_tick(settings, env, now=Clock().now(), run_id=run_id, credential_factory=credential)
    tenants = len({i.tenant for i in report.enqueued})
    print(f"dispatch {run_id}: {len(report.enqueued)} work item(s) for {tenants} tenant(s)", file=out)
    if report.disabled:
        print(f"  disabled: {', '.join(report.disabled)}", file=out)
    for name, error in sorted(report.failed.items()):
        print(f"  x {name}: {error}", file=out)
        if error.hint:
            print(f"      what to do: {error.hint}", file=out)
    return EXIT_FAILED if report.failed else EXIT_OK


def _work(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    credential: CredentialFactory,
    out: TextIO,
) -> int:
    queue, poison = open_work_queues(settings.fanout, credential, create=True)
    registry = open_registry(settings.fanout, credential)

    not_run = 0

    def handle(text: str, dequeue_count: int) -> None:
        nonlocal not_run
        if work_message(text, settings, env, credential_factory=credential, registry=registry) is None:
            not_run += 1

    completed = drain(
        queue,
        poison,
        handle,
        visibility=visibility_for(settings),
        max_dequeue_count=args.max_dequeue_count,
        idle_polls=args.idle_polls,
        poll_interval=args.poll_interval,
    )
    # The poison queue's trigger, locally: report each item, then delete it; one that could not be
    # reported stays on the poison queue (hidden for a minute) for the next `work`.
    reported = unreported = 0
    while messages := list(poison.receive_messages(max_messages=32, visibility_timeout=60)):
        for message in messages:
            try:
                report_poison(
                    str(message.content),
                    args.max_dequeue_count,
                    settings,
                    env,
                    credential_factory=credential,
                    registry=registry,
                )
            except AuditSyncError as error:
                unreported += 1
                print(f"x a poisoned item could not be reported: {error}", file=out)
                continue
            poison.delete_message(message)
            reported += 1
    print(
        f"worked {completed} item(s), {not_run} of them without a run (the stream had caught up since, or "
        f"the tenant is gone); {reported} poisoned item(s) reported as error health rows"
        + (f"; {unreported} left on the poison queue" if unreported else ""),
        file=out,
    )
    return EXIT_FAILED if reported or unreported else EXIT_OK


def tenant_status(
    settings: Settings,
    env: Mapping[str, str],
    out: TextIO,
    *,
    as_json: bool = False,
    credential_factory: CredentialFactory | None = None,
    clock: Clock | None = None,
) -> int:
    """``status`` of a multi-tenant deployment: per tenant and stream, the checkpoint's last outcome."""
    from auditsync.status import read_tenant_status

    credential = functools.cache(credential_factory or default_credential)
    now = (clock or Clock()).now()
    try:
        tenants = read_tenant_status(settings, env, credential, now)
    except AuditSyncError as error:
        if as_json:
            failure = {"kind": error.kind, "message": redact(str(error)), "hint": redact(error.hint)}
            print(json.dumps({"error": failure}), file=out)
        else:
            print(f"x {error}", file=out)
            if error.hint:
                print(f"    what to do: {error.hint}", file=out)
        return EXIT_FAILED
    if as_json:
        print(json.dumps({"tenants": [t.as_json() for t in tenants]}, indent=2), file=out)
        return EXIT_OK
    print(
        f"{'tenant':<24} {'stream':<28} {'last run':<12} {'newest event':<22} {'total':>10}  "
        f"{'token expires':<35}  last outcome",
        file=out,
    )
    for tenant in tenants:
        if tenant.problem:
            print(f"{tenant.name:<24} x {tenant.problem}", file=out)
            continue
        state = "" if tenant.enabled else "  (tenant disabled)"
        for row in tenant.streams:
            if row.backfill is not None:
                continue
            outcome = row.status or "-"
            if row.error_kind:
                outcome += f" ({row.error_kind}: {row.message})"
            last_run = f"{int((now - row.last_run).total_seconds())}s ago" if row.last_run else "never"
            newest = row.newest_event_time.strftime("%Y-%m-%d %H:%M:%SZ") if row.newest_event_time else "-"
            expires = describe_expiry(row.token_expires_on, now) if row.token_expires_on else "-"
            print(
                f"{tenant.name:<24} {row.stream:<28} {last_run:<12} {newest:<22} {row.total_events:>10}  "
                f"{expires:<35}  {outcome}{state}",
                file=out,
            )
    return EXIT_OK
