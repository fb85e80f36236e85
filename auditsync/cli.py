"""Command line: the same code the Function runs, for local runs, checks and a first look.

python -m auditsync run      one cycle, per-stream summary; exit 1 if any stream failed
python -m auditsync check    settings, Key Vault, tokens, sink, checkpoint store: what is wrong and how to fix it
python -m auditsync status   per stream: checkpoint age, newest event, totals, last outcome
python -m auditsync demo     the whole flow against the bundled simulators, no account needed

Exit codes: 0 every stream ok; 1 a stream or a check failed (see the output); 2 settings are not
valid; 3 the command itself failed unexpectedly (one classified, redacted line on stderr, no
traceback; checkpoints are never ahead of delivered data); 130 interrupted.

Everything printed goes through the redactor, and ``AZURE_LOG_LEVEL`` (debug, info, warning, error)
sets the log level (``-v`` is info; the default warning).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TextIO, cast

from auditsync import __version__
from auditsync.config import Settings
from auditsync.errors import AuditSyncError, ConfigError
from auditsync.http import HttpClient
from auditsync.model import STATUS_ERROR, Clock, StreamReport
from auditsync.redaction import Redactor, install_log_redaction, redact
from auditsync.runner import CycleReport, run_cycle
from auditsync.secrets import CredentialFactory, Secrets, default_credential

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_CRASHED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

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
    parser.add_argument("-v", "--verbose", action="store_true", help="log every retry and page")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="one collection cycle")
    sub.add_parser("check", help="validate settings and reach every dependency")
    sub.add_parser("status", help="per-stream checkpoint status")
    demo = sub.add_parser("demo", help="run against the bundled simulators with sample data")
    demo.add_argument("--events", type=int, default=300, help="sample events per stream")
    args = parser.parse_args(argv)
    install_log_redaction()
    stream = cast(TextIO, RedactingWriter(out or sys.stdout))
    environ = dict(os.environ if env is None else env)
    level = _LOG_LEVELS.get(environ.get("AZURE_LOG_LEVEL", "").strip().lower())
    logging.basicConfig(
        level=level or (logging.INFO if args.verbose else logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
    if args.command == "demo":
        from auditsync.demo import run_demo

        return run_demo(
            out, events_per_stream=args.events, data_dir=environ.get("AUDITSYNC_DATA_DIR", ".auditsync")
        )
    try:
        settings = Settings.from_env(environ)
    except ConfigError as error:
        print("Settings are not valid:", file=out)
        for problem in error.problems:
            print(f"  x {problem}", file=out)
        return EXIT_CONFIG
    commands: dict[str, Callable[[Settings, TextIO], int]] = {
        "run": cmd_run,
        "check": cmd_check,
        "status": cmd_status,
    }
    return commands[args.command](settings, out)


def cmd_run(settings: Settings, out: TextIO, **kwargs: object) -> int:
    last: dict[str, int] = {}

    def progress(stream: str, events: int) -> None:
        # Long runs print a line every 10,000 events per stream, so a backfill never looks hung.
        if events // 10_000 > last.get(stream, 0) // 10_000:
            print(f"  ... {stream}: {events} events so far", file=sys.stderr, flush=True)
        last[stream] = events

    report = run_cycle(settings, progress=progress, **kwargs)  # type: ignore[arg-type]
    print_summary(report, out)
    return EXIT_FAILED if report.failed else EXIT_OK


def print_summary(report: CycleReport, out: TextIO) -> None:
    seconds = (report.finished - report.started).total_seconds()
    print(f"run {report.run_id} finished in {seconds:.1f}s", file=out)
    for r in report.reports:
        print("  " + _summary_line(r), file=out)
        if r.hint and r.status == STATUS_ERROR:
            print(f"      what to do: {r.hint}", file=out)
    if report.heartbeat_error:
        print(f"  ! health rows were not sent: {report.heartbeat_error}", file=out)


def _summary_line(r: StreamReport) -> str:
    line = f"{r.stream:<28} {r.status:<7} {r.events:>8} events {r.pages:>5} pages"
    if r.lag_seconds is not None:
        line += f"  lag {_age(timedelta(seconds=r.lag_seconds))}"
    extra = {k: v for k, v in r.counters.items() if v}
    if extra:
        line += "  " + " ".join(f"{k}={v}" for k, v in sorted(extra.items()))
    if r.status == STATUS_ERROR:
        line += f"  {r.error_kind}: {r.message}"
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
    """Each dependency in the order a run needs it; every failure says what to do."""
    from auditsync.checkpoints import open_store
    from auditsync.sinks import open_sink
    from auditsync.sources import SourceContext, source_module

    clock = clock or Clock()
    redactor = Redactor(settings.secret_values())
    credential = functools.cache(credential_factory or default_credential)
    http = HttpClient(clock=clock, redactor=redactor, max_attempts=2)
    secrets = Secrets(settings, credential, redactor, retry_total=1)
    failures = 0

    def step(label: str, action: Callable[[], str]) -> None:
        nonlocal failures
        try:
            detail = action()
        except AuditSyncError as error:
            failures += 1
            print(f"  x {label}: {redactor(str(error))}", file=out)
            if error.hint:
                print(f"      what to do: {redactor(error.hint)}", file=out)
            return
        except Exception as error:
            failures += 1
            print(f"  x {label}: unexpected {type(error).__name__}: {redactor(str(error))[:300]}", file=out)
            return
        print(f"  ok {label}: {redactor(detail)}", file=out)

    print("settings: valid", file=out)
    for warning in sink_warnings(settings):
        print(f"  ! {warning}", file=out)
    for source in settings.sources:

        def probe(source: str = source) -> str:
            token = secrets.token(source)
            context = SourceContext(settings, token, http, clock, clock.now())
            return source_module(source).probe(context)

        where = (
            f"Key Vault secret {getattr(settings, source + '_token_secret')}"
            if settings.key_vault_url
            else "environment"
        )
        step(f"{source} token ({where}) and API", probe)
    step(
        "sink " + settings.sink,
        lambda: open_sink(
            settings, credential_factory=credential, secrets=secrets, http=http, clock=clock
        ).probe(),
    )

    def store_probe() -> str:
        store = open_store(settings, credential)
        return f"{settings.checkpoint_store} store holds {len(store.list())} stream checkpoint(s)"

    step("checkpoint store", store_probe)
    print("all checks passed" if not failures else f"{failures} check(s) failed", file=out)
    return EXIT_FAILED if failures else EXIT_OK


def sink_warnings(settings: Settings) -> list[str]:
    """Warnings worth printing before anything runs (e.g. a retired API)."""
    if settings.sink == "data_collector":
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
    credential_factory: CredentialFactory | None = None,
    clock: Clock | None = None,
) -> int:
    from auditsync.checkpoints import open_store

    clock = clock or Clock()
    try:
        store = open_store(settings, functools.cache(credential_factory or default_credential))
        checkpoints = {c.stream: c for c in store.list()}
    except AuditSyncError as error:
        print(f"x checkpoint store: {redact(str(error))}", file=out)
        if error.hint:
            print(f"    what to do: {redact(error.hint)}", file=out)
        return EXIT_FAILED
    from auditsync.sources import source_module

    now = clock.now()
    names = [n for s in settings.sources for n in source_module(s).stream_names(settings)]
    names += sorted(set(checkpoints) - set(names))
    print(f"{'stream':<28} {'last run':<12} {'newest event':<22} {'total':>10}  last outcome", file=out)
    for name in names:
        c = checkpoints.get(name)
        if c is None:
            print(f"{name:<28} {'never':<12} {'-':<22} {0:>10}  -", file=out)
            continue
        outcome = c.last_status or "-"
        if c.last_error_kind:
            outcome += f" ({c.last_error_kind}: {redact(c.last_message)})"
        print(
            f"{name:<28} {_ago(c.last_run, now):<12} {_when(c.newest_event_time):<22} {c.total_events:>10}  {outcome}",
            file=out,
        )
    return EXIT_OK


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
