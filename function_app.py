"""Azure Functions entry point: a thin adapter from the timer trigger to ``auditsync.run_cycle``.

The invocation fails (after every stream ran and the heartbeat was sent) when any stream ended in
error, so the portal's failure count tells the truth. Whatever goes wrong, the invocation ends with
one classified, redacted line (CollectionFailed), never with another exception's traceback; every log
record of the process, the host's included, is redacted from the moment this module is imported.
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

from auditsync.cli import crash_line
from auditsync.config import SETTINGS, Settings
from auditsync.errors import ConfigError
from auditsync.redaction import install_log_redaction
from auditsync.runner import run_cycle
from auditsync.schedule import schedule_problem
from auditsync.telemetry import quiet_sdk_loggers

install_log_redaction()

log = logging.getLogger("auditsync.function")
#: The worker forwards every INFO record to Application Insights: keep the SDKs' header dumps out.
quiet_sdk_loggers()

app = func.FunctionApp()

#: Read once at indexing time: the host builds the trigger from this value. A schedule the host would
#: refuse would keep the function from being indexed at all (it never runs, nothing is logged), so the
#: default is used instead and every run fails with the TIMER_SCHEDULE problem, visible in the portal.
SCHEDULE = " ".join(os.environ.get("TIMER_SCHEDULE", "").split()) or SETTINGS["TIMER_SCHEDULE"][0]
if schedule_problem(SCHEDULE):
    log.error(
        "TIMER_SCHEDULE: %s; running on the default schedule until it is fixed", schedule_problem(SCHEDULE)
    )
    SCHEDULE = SETTINGS["TIMER_SCHEDULE"][0]


class CollectionFailed(RuntimeError):
    """Raised at the end of an invocation in which at least one stream failed."""


@app.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def collect(timer: func.TimerRequest) -> None:
    """Run one collection cycle."""
    try:
        _collect(timer)
    except CollectionFailed:
        raise
    except Exception as error:  # the last resort: one classified, redacted line
        line = crash_line("timer run", error)
        log.error("%s", line)
        raise CollectionFailed(line) from None


def _collect(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("timer is past due: a tick was missed; this run catches up from the checkpoints")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        for problem in error.problems:
            log.error("setting problem: %s", problem)
        raise CollectionFailed(f"{len(error.problems)} setting problem(s); see the log lines above") from None
    report = run_cycle(settings)
    failed = [r for r in report.reports if r.status == "error"]
    if failed or report.heartbeat_error:
        names = ", ".join(f"{r.stream} ({r.error_kind})" for r in failed)
        raise CollectionFailed(
            f"run {report.run_id}: "
            + (f"{len(failed)} stream(s) failed: {names}" if failed else "")
            + (f"; heartbeat not sent: {report.heartbeat_error}" if report.heartbeat_error else "")
        )
