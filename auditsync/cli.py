"""Command line: the same code the Function runs, for local runs, checks and a first look.

python -m auditsync run      one cycle, per-stream summary; exit 1 if any stream failed
python -m auditsync check    settings, Key Vault, tokens, sink, checkpoint store: what is wrong and how to fix it
python -m auditsync status   per stream: last run, newest event, totals, last outcome (no tokens needed)
python -m auditsync backfill re-send a past range of one stream without moving its checkpoint

Exit codes: 0 every stream ok; 1 a stream or a check failed (see the output); 2 settings are not
valid; 3 the command itself failed unexpectedly (one classified, redacted line on stderr, no
traceback; checkpoints are never ahead of delivered data); 4 a backfill stopped at its deadline (run it
again to resume); 130 interrupted.

Everything printed goes through the redactor, and ``AZURE_LOG_LEVEL`` (debug, info, warning, error)
sets the log level (``-v`` is info; the default warning).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TextIO, cast

from auditsync import __version__
from auditsync.config import Settings
from auditsync.content import commands as sentinel_commands
from auditsync.errors import AuditSyncError, ConfigError, print_failure
from auditsync.fanout import commands as fanout_commands
from auditsync.model import STATUS_ERROR, Clock, StreamReport
from auditsync.redaction import install_log_redaction, redact
from auditsync.runner import OUTCOME, CycleReport, run_cycle
from auditsync.secrets import CredentialFactory, default_credential
from auditsync.telemetry import quiet_sdk_loggers
from auditsync.token_expiry import describe as describe_expiry

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_CRASHED, EXIT_UNFINISHED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

log = logging.getLogger("auditsync.cli")

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    parser = argparse.ArgumentParser(
        prog="auditsync", description="Keeper and 1Password audit events into Sentinel."
    )
    parser.add_argument("--version", action="version", version=f"auditsync {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every retry and page, and the Azure SDKs' HTTP requests",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="one collection cycle")
    sub.add_parser(
        "check", help="prove every part works: Key Vault, tokens, sink (one row), checkpoint store"
    )
    status = sub.add_parser("status", help="per-stream outcome of the last run, from the checkpoints")
    status.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    backfill = sub.add_parser(
        "backfill", help="re-send a past range of one stream to the sink (the live checkpoint stays put)"
    )
    backfill.add_argument("--stream", required=True, help="e.g. onepassword/auditevents or keeper/events")
    backfill.add_argument(
        "--since", required=True, help="range start: 2026-11-01T00:00:00Z, a date, or an age (3d)"
    )
    backfill.add_argument("--until", help="range end (exclusive; default: now)")
    fanout_commands.register(sub)
    sentinel_commands.register(sub)
    args = parser.parse_args(argv)
    install_log_redaction()
    stream = cast(TextIO, RedactingWriter(out or sys.stdout))
    environ = dict(os.environ if env is None else env)
    level = _LOG_LEVELS.get(environ.get("AZURE_LOG_LEVEL", "").strip().lower())
    configured = bool(logging.getLogger().handlers)
    logging.basicConfig(
        level=level or (logging.INFO if args.verbose else logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not configured and not args.verbose and level is None:
        # Each stream's outcome is in the summary printed on stdout: not a second time on stderr.
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: not getattr(record, OUTCOME, False))
    try:
        return _command(args, environ, stream)
    except KeyboardInterrupt:
        log.error("auditsync %s: interrupted; the next run resumes from the checkpoints", args.command)
        return EXIT_INTERRUPTED
    except Exception as error:  # the last resort: one classified line, never a traceback
        log.error("%s", crash_line(args.command, error))
        log.debug("traceback of the failure above", exc_info=error)
        return EXIT_CONFIG if isinstance(error, ConfigError) else EXIT_CRASHED


def crash_line(command: str, error: BaseException) -> str:
    """One redacted line that says what kind of failure ended a command and what to do."""
    text = " ".join(str(error).split())
    if isinstance(error, AuditSyncError):
        what = f"{error.kind} error: {text}" + (f" ({error.hint})" if error.hint else "")
    elif isinstance(error, OSError):
        what = (
            f"local {type(error).__name__}: {text}; check AUDITSYNC_DATA_DIR and the disk "
            "(the checkpoints are never ahead of the delivered data)"
        )
    else:
        what = (
            f"unexpected {type(error).__name__}: {text}; this is a bug in auditsync, report it with "
            "this line (AZURE_LOG_LEVEL=debug adds the redacted traceback)"
        )
    return redact(f"auditsync {command} failed: " + " ".join(what.split()))[:1000]


class RedactingWriter:
    """The CLI's output stream: every write is redacted (the summary, check results, status lines)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(redact(text))

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _command(args: argparse.Namespace, environ: dict[str, str], out: TextIO) -> int:
    # AZURE_LOG_LEVEL=debug asks for everything, the SDKs' HTTP logging included (still redacted).
    quiet_sdk_loggers(args.verbose or environ.get("AZURE_LOG_LEVEL", "").strip().lower() == "debug")
    if (
        args.command == sentinel_commands.COMMAND
    ):  # works on a workspace, needs none of the collector's settings
        return sentinel_commands.run(args, environ, out)
    try:
        # status only reads checkpoints, and the tenant registry is edited without calling a vendor:
        # neither needs the deployment's own tokens.
        settings = Settings.from_env(environ, require_tokens=args.command not in ("status", "tenants"))
    except ConfigError as error:
        print_problems(error, out)
        return EXIT_CONFIG
    if args.command in fanout_commands.COMMANDS:
        return fanout_commands.run(args, settings, environ, out)
    if args.command == "status" and settings.multi_tenant:
        return fanout_commands.tenant_status(settings, environ, out, as_json=args.json)
    if args.command == "status":
        return cmd_status(settings, out, as_json=args.json)
    if args.command == "backfill":
        return cmd_backfill(settings, out, stream=args.stream, since=args.since, until=args.until)
    commands: dict[str, Callable[[Settings, TextIO], int]] = {"run": cmd_run, "check": cmd_check}
    return commands[args.command](settings, out)


def print_problems(error: ConfigError, out: TextIO) -> None:
    """Every settings problem, one per line."""
    print("Settings are not valid:", file=out)
    for problem in error.problems:
        print(f"  x {problem}", file=out)


#: A long run prints a line per stream every this many events, so it never looks hung.
PROGRESS_EVERY = 10_000


def progress_printer(out: TextIO | None = None) -> Callable[[str, int], None]:
    """A run's progress callback: ``... stream: N events so far`` every PROGRESS_EVERY events (stderr)."""
    last: dict[str, int] = {}

    def progress(stream: str, events: int) -> None:
        if events // PROGRESS_EVERY > last.get(stream, 0) // PROGRESS_EVERY:
            print(f"  ... {stream}: {events} events so far", file=out or sys.stderr, flush=True)
        last[stream] = events

    return progress


def cmd_run(settings: Settings, out: TextIO, **kwargs: object) -> int:
    report = run_cycle(settings, progress=progress_printer(), **kwargs)  # type: ignore[arg-type]
    print_summary(report, out)
    return EXIT_FAILED if report.failed else EXIT_OK


def print_summary(report: CycleReport, out: TextIO) -> None:
    """One line per stream; then each failure once, with what to do, naming the streams it stopped (a
    refused token stops every stream of its source with the same words)."""
    seconds = (report.finished - report.started).total_seconds()
    print(f"run {report.run_id} finished in {seconds:.1f}s", file=out)
    failures: dict[tuple[str, str, str], list[str]] = {}
    for r in report.reports:
        print("  " + _summary_line(r), file=out)
        if r.status == STATUS_ERROR:
            failures.setdefault((r.error_kind, r.message, r.hint), []).append(r.stream)
    for (kind, message, hint), streams in failures.items():
        print(f"  x {', '.join(streams)}: {kind}: {message}", file=out)
        if hint:
            print(f"      what to do: {hint}", file=out)
    if report.heartbeat_error:
        print(f"  ! health rows were not sent: {report.heartbeat_error}", file=out)


def _summary_line(r: StreamReport) -> str:
    line = f"{r.stream:<28} {r.status:<7} {r.events:>8} events {r.pages:>5} pages"
    if r.lag_seconds is not None:
        line += f"  lag {_age(timedelta(seconds=r.lag_seconds))}"
    line += f"  {r.duration_ms / 1000:.1f}s"
    extra = {k: v for k, v in r.counters.items() if v}
    if extra:
        line += "  " + " ".join(f"{k}={v}" for k, v in sorted(extra.items()))
    if r.status == STATUS_ERROR:
        line += f"  ({r.error_kind})"
    elif r.message:
        line += f"  ({r.message})"
    return line


def cmd_check(
    settings: Settings,
    out: TextIO,
    *,
    credential_factory: CredentialFactory | None = None,
    clock: Clock | None = None,
) -> int:
    """Every part in the order a run needs it, each proven by use; every failure says what to do."""
    from auditsync.probes import run_probes

    print("settings: valid", file=out)
    for warning in sink_warnings(settings):
        print(f"  ! {warning}", file=out)
    failures = 0
    for result in run_probes(settings, credential_factory=credential_factory, clock=clock):
        if result.warning:
            print(f"  ! {result.part}: {result.detail}", file=out, flush=True)
            if result.hint:
                print(f"      what to do: {result.hint}", file=out, flush=True)
            continue
        if result.ok:
            print(f"  ok {result.part}: {result.detail}", file=out, flush=True)
            continue
        if result.skipped:
            print(f"  - {result.part}: {result.detail}", file=out, flush=True)
            continue
        failures += 1
        print(f"  x {result.part}: {result.detail}", file=out, flush=True)
        if result.hint:
            print(f"      what to do: {result.hint}", file=out, flush=True)
    print("all checks passed" if not failures else f"{failures} check(s) failed", file=out)
    return EXIT_FAILED if failures else EXIT_OK


def sink_warnings(settings: Settings) -> list[str]:
    """Warnings worth printing before anything runs (e.g. a retired API)."""
    if settings.sink.kind == "data_collector":
        try:
            from auditsync.sinks.data_collector import RETIREMENT_WARNING
        except ImportError:  # pragma: no cover - the module ships with the package
            return []
        return [RETIREMENT_WARNING]
    return []


def cmd_status(
    settings: Settings,
    out: TextIO,
    *,
    as_json: bool = False,
    credential_factory: CredentialFactory | None = None,
    clock: Clock | None = None,
) -> int:
    """The last outcome of every stream, read from the checkpoints only (no vendor token needed)."""
    from auditsync.status import read_status

    clock = clock or Clock()
    try:
        rows = read_status(settings, functools.cache(credential_factory or default_credential), clock.now())
    except AuditSyncError as error:
        if as_json:
            print(
                json.dumps(
                    {"error": {"kind": error.kind, "message": redact(str(error)), "hint": redact(error.hint)}}
                ),
                file=out,
            )
        else:
            print_failure(error, out, "checkpoint store: ")
        return EXIT_FAILED
    if as_json:
        print(json.dumps({"streams": [r.as_json() for r in rows]}, indent=2), file=out)
        return EXIT_OK
    now = clock.now()
    if settings.store.kind == "file" and not settings.store.directory.is_dir():
        print(
            f"No checkpoints in {settings.store.directory}: nothing has run with AUDITSYNC_DATA_DIR="
            f"{settings.data_dir} yet (./dev run; the demo keeps its own under {settings.data_dir / 'demo'}).",
            file=out,
        )
        return EXIT_OK
    print(
        f"{'stream':<28} {'last run':<10} {'newest event':<21} {'total':>9}  {'token expires':<35}  last outcome",
        file=out,
    )
    backfills = [r for r in rows if r.backfill is not None]
    for r in rows:
        if r.backfill is not None:
            continue
        expires = describe_expiry(r.token_expires_on, now) if r.token_expires_on else "-"
        print(
            f"{r.stream:<28} {_ago(r.last_run, now):<10} {_when(r.newest_event_time):<21} {r.total_events:>9}  "
            f"{expires:<35}  {r.outcome}",
            file=out,
        )
        if r.message and r.status in (STATUS_ERROR, "behind"):
            print(f"{'':<30}{r.message}", file=out)
        if r.hint and r.status == STATUS_ERROR:
            print(f"{'':<30}what to do: {r.hint}", file=out)
    if backfills:
        print(
            "backfills (their own progress records; the live checkpoints above are not moved by them):",
            file=out,
        )
    for r in backfills:
        info = r.backfill or {}
        state = "complete" if info.get("done") else r.status or "started"
        if r.error_kind:
            state += f" ({r.error_kind}: {r.message})"
        print(
            f"  {r.stream.removeprefix('auditsync/backfill/'):<26} {info.get('since')} .. {info.get('until')}  "
            f"{info.get('eventsSent', 0)} events sent, {state}, {_ago(r.last_run, now)}",
            file=out,
        )
    return EXIT_OK


def cmd_backfill(
    settings: Settings,
    out: TextIO,
    *,
    stream: str,
    since: str,
    until: str | None,
    credential_factory: CredentialFactory | None = None,
    clock: Clock | None = None,
) -> int:
    """Re-send ``[since, until)`` of one stream; exit 4 when the deadline stopped it (run it again)."""
    from auditsync.backfill import parse_when, plan, run_backfill

    clock = clock or Clock()
    now = clock.now()
    try:
        backfill = plan(
            settings, stream, parse_when(since, now), parse_when(until, now) if until else None, now
        )
    except ConfigError as error:
        print_failure(error, out, "backfill refused: ")
        return EXIT_CONFIG
    try:
        report = run_backfill(
            settings,
            backfill,
            clock=clock,
            credential_factory=credential_factory,
            progress=lambda line: print(line, file=out, flush=True),
        )
    except AuditSyncError as error:
        print_failure(error, out, f"backfill of {stream} failed ({error.kind}): ")
        print("    progress so far is kept: run the same command again to resume", file=out)
        return EXIT_FAILED
    if report.done:
        print(f"backfill of {stream} complete: {report.events} events sent", file=out)
        return EXIT_OK
    print(
        f"backfill of {stream} stopped at the run's deadline after {report.events} events: "
        "run the same command again to continue",
        file=out,
    )
    return EXIT_UNFINISHED


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _ago(value: datetime | None, now: datetime) -> str:
    return _age(now - value) + " ago" if value else "never"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
