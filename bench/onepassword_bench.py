"""1Password drain benchmark: a backlog from the 1Password simulator into the Logs Ingestion simulator.

For each backlog size, in a fresh child process each:

- ``drain``: one ``run_cycle`` (SINK=logs_ingestion, file checkpoints in a temp dir, a managed-identity
  token through the real ``DefaultAzureCredential``), all three event types by default, each a stream
  of 1,000-event pages, run concurrently as in production;
- ``sdk``: the same events, shaped into the same rows and already in memory, sent by one bare
  ``LogsIngestionClient.upload`` call: what the SDK alone costs for the same data.

The simulators run in this process, so the children's peak RSS is the pipeline's alone. Every
event is checked to have arrived exactly once. Run: ``python -m bench onepassword [--sizes 50000,200000]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.measure import cpu_seconds, machine, run_child
from bench.onepassword_backlog import Backlog
from bench.onepassword_sims import BenchSims, Tally
from simulators.logs_ingestion import MAX_BODY
from simulators.onepassword_data import EVENT_TYPES

CHILD = "bench.onepassword_child"
#: The bare SDK's 1 MiB chunks overshoot by the separators (2 bytes a row), which the service refuses
#: with 413; during the SDK measurement the simulator lets them through so the SDK has a figure at all.
SDK_MAX_BODY = MAX_BODY + 128 * 1024

TARGET_RATIO = 0.7
TARGET_PEAK_RSS_MB = 150.0
#: Peak RSS of the largest backlog may exceed the smallest's by this much and still count as flat.
RSS_GROWTH_TOLERANCE_MB = 10.0


@dataclass(frozen=True)
class Measurement:
    """One measured run: what the child timed and what the DCE simulator received."""

    events: int
    seconds: float
    cpu_seconds: float
    rss_start_mb: float
    peak_rss_mb: float
    dce_requests: int
    heartbeat_requests: int
    mean_body_bytes: float
    oversize_bodies: int
    delivered: int
    duplicates: int
    missing: int
    sim_cpu_seconds: float
    onepassword_requests: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def exactly_once(self) -> bool:
        return self.duplicates == 0 and self.missing == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_s": self.events_per_s, "exactly_once": self.exactly_once}


@dataclass(frozen=True)
class SizeResult:
    events: int
    event_types: tuple[str, ...]
    drain: Measurement
    sdk: Measurement | None
    drain_report: dict[str, Any]
    repeat: int = 1

    @property
    def ratio(self) -> float | None:
        if self.sdk is None or not self.sdk.events_per_s:
            return None
        return self.drain.events_per_s / self.sdk.events_per_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "event_types": list(self.event_types),
            "drain": self.drain.as_dict(),
            "sdk": self.sdk.as_dict() if self.sdk else None,
            "ratio": self.ratio,
            "repeat": self.repeat,
            "streams": self.drain_report["streams"],
        }


def _measurement(
    child: dict[str, Any], tally: Tally, expected: set[str], sim_cpu: float, **extra: int
) -> Measurement:
    return Measurement(
        events=int(child["events"]),
        seconds=float(child["seconds"]),
        cpu_seconds=float(child["cpu_seconds"]),
        rss_start_mb=float(child["rss_start_mb"]),
        peak_rss_mb=float(child["peak_rss_mb"]),
        dce_requests=tally.data_requests + tally.heartbeat_requests,
        heartbeat_requests=tally.heartbeat_requests,
        mean_body_bytes=tally.mean_body_bytes,
        oversize_bodies=tally.oversize_bodies,
        delivered=tally.rows,
        duplicates=tally.duplicates + len(tally.uuids - expected),  # repeated, or not from the backlog
        missing=len(expected - tally.uuids),
        sim_cpu_seconds=sim_cpu,
        **extra,
    )


def measure_size(
    backlog: Backlog,
    *,
    sdk: bool = True,
    repeat: int = 1,
    keep_rows: bool = False,
    inspect: Callable[[BenchSims], None] | None = None,
) -> SizeResult:
    """Drain ``backlog`` with the pipeline, then (``sdk``) upload the same rows with the bare SDK.

    With ``repeat`` > 1 the pair runs that many times, alternating, and the fastest of each counts
    (the peak RSS is the highest seen): other work on the machine only ever slows a run down.
    ``inspect`` sees the simulators after the first drain, before its tally is reset (tests).
    """
    drains: list[Measurement] = []
    baselines: list[Measurement] = []
    with BenchSims.running(backlog, keep_rows=keep_rows) as sims:
        for attempt in range(repeat):
            report, drain = _drain(backlog, sims)
            drains.append(drain)
            if inspect is not None and attempt == 0:
                inspect(sims)
            if sdk:
                baselines.append(_sdk(backlog, sims))
    best_sdk = _best(baselines) if sdk else None
    return SizeResult(backlog.total, backlog.event_types, _best(drains), best_sdk, report, repeat)


def _drain(backlog: Backlog, sims: BenchSims) -> tuple[dict[str, Any], Measurement]:
    """One fresh collection run (new checkpoint directory: the whole backlog is new to it)."""
    sims.ingestion.max_body = MAX_BODY
    sims.ingestion.reset_tally()
    before = sims.onepassword_requests()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as data:
        cpu = cpu_seconds()  # this process's: the simulators' work while the child ran
        report = run_child(CHILD, ["drain"], sims.drain_env(backlog, Path(data)))
        sim_cpu = cpu_seconds() - cpu
    if report["failed"]:
        raise RuntimeError(f"the drain failed: {json.dumps(report['streams'])} {report['heartbeat_error']}")
    measurement = _measurement(
        report,
        sims.ingestion.reset_tally(),
        sims.expected,
        sim_cpu,
        onepassword_requests=sims.onepassword_requests() - before,
    )
    return report, _delivered(measurement, "drain")


def _sdk(backlog: Backlog, sims: BenchSims) -> Measurement:
    sims.ingestion.max_body = SDK_MAX_BODY
    sims.ingestion.reset_tally()
    args = ["sdk", "--backlog", backlog.to_json(), "--endpoint", sims.ingestion.url]
    cpu = cpu_seconds()
    child = run_child(CHILD, [*args, "--rule-id", sims.ingestion.dcr_id], sims.identity.env())
    measurement = _measurement(child, sims.ingestion.reset_tally(), sims.expected, cpu_seconds() - cpu)
    sims.ingestion.max_body = MAX_BODY
    return _delivered(measurement, "bare SDK upload")


def _delivered(measurement: Measurement, what: str) -> Measurement:
    """A figure for a run that lost or repeated events would be meaningless: refuse it."""
    if not measurement.exactly_once or measurement.delivered != measurement.events:
        raise RuntimeError(
            f"the {what} did not deliver every event exactly once: {measurement.events} sent, "
            f"{measurement.delivered} rows received, {measurement.duplicates} duplicate or unknown, "
            f"{measurement.missing} missing"
        )
    return measurement


def _best(runs: list[Measurement]) -> Measurement:
    """The fastest run, carrying the highest peak RSS of all and the worst delivery check."""
    fastest = min(runs, key=lambda m: m.seconds)
    return replace(
        fastest,
        peak_rss_mb=max(m.peak_rss_mb for m in runs),
        duplicates=max(m.duplicates for m in runs),
        missing=max(m.missing for m in runs),
    )


def _mb(value: float) -> str:
    return f"{value:.0f} MB"


def print_results(results: list[SizeResult]) -> None:
    print(f"1Password drain benchmark: {machine()}")
    print(f"  event types: {', '.join(results[0].event_types)} (split evenly); 1,000-event pages")
    print(f"  fastest of {results[0].repeat} runs per size; peak RSS: the highest of them")
    header = (
        f"  {'events':>8} {'run':<6} {'events/s':>9} {'seconds':>8} {'CPU s':>6} {'sim CPU':>7} {'DCE req':>8} "
        f"{'mean body':>10} {'>1MiB':>5} {'RSS start':>9} {'peak RSS':>9} {'exactly once':>12}"
    )
    print(header)
    for result in results:
        for name, m in (("drain", result.drain), ("sdk", result.sdk)):
            if m is None:
                continue
            print(
                f"  {result.events:>8,} {name:<6} {m.events_per_s:>9,.0f} {m.seconds:>8.1f} {m.cpu_seconds:>6.1f} {m.sim_cpu_seconds:>7.1f} "
                f"{m.dce_requests:>8,} {m.mean_body_bytes / 1024:>7,.0f} KB {m.oversize_bodies:>5} "
                f"{_mb(m.rss_start_mb):>9} {_mb(m.peak_rss_mb):>9} {'yes' if m.exactly_once else 'NO':>12}"
            )
        if result.ratio is not None:
            print(
                f"  {result.events:>8,} drain/sdk throughput ratio: {result.ratio:.2f} (target >= {TARGET_RATIO})"
            )
    print(verdict(results))


def verdict(results: list[SizeResult]) -> str:
    """The three targets, each met or missed, in one line per target."""
    largest = max(results, key=lambda r: r.events)
    smallest = min(results, key=lambda r: r.events)
    lines = []
    if largest.ratio is not None:
        met = largest.ratio >= TARGET_RATIO
        lines.append(f"ratio {largest.ratio:.2f} at {largest.events:,} events: {'met' if met else 'MISSED'}")
    peak = max(r.drain.peak_rss_mb for r in results)
    lines.append(
        f"peak RSS {peak:.0f} MB (< {TARGET_PEAK_RSS_MB:.0f}): {'met' if peak < TARGET_PEAK_RSS_MB else 'MISSED'}"
    )
    if largest is not smallest:
        growth = largest.drain.peak_rss_mb - smallest.drain.peak_rss_mb
        flat = growth <= RSS_GROWTH_TOLERANCE_MB
        lines.append(
            f"peak RSS {smallest.events:,} -> {largest.events:,} events: {growth:+.1f} MB "
            f"(x{largest.drain.peak_rss_mb / smallest.drain.peak_rss_mb:.2f}): {'flat' if flat else 'GROWS'}"
        )
    return "  targets: " + "; ".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench onepassword", description=__doc__)
    parser.add_argument("--sizes", default="50000,200000", help="backlog sizes, comma-separated")
    parser.add_argument(
        "--types", default=",".join(EVENT_TYPES), help="event types, comma-separated (default: all three)"
    )
    parser.add_argument("--no-sdk", action="store_true", help="skip the bare-SDK upload")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest counts (default 3)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    results = [
        measure_size(Backlog.ending_now(n, types), sdk=not args.no_sdk, repeat=args.repeat) for n in sizes
    ]
    print_results(results)
    out = {"machine": machine(), "sizes": [r.as_dict() for r in results], "verdict": verdict(results)}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out
