"""1Password drain benchmark with a real tenant's network: latency and the vendor's rate limits.

The same paired drain/baseline runs as ``python -m bench onepassword``, with the simulators answering
each 1Password request after ``--page-latency`` (default 300 ms) and each Logs Ingestion request after
``--ingest-latency`` (default 100 ms), and 1Password enforcing its published 600 requests/min and
30,000/h per account (429, no Retry-After). The minute before each run is already at the limit, as
for an account in the middle of a backlog, so a short run gets no first-minute burst. The figure that
matters is the drain against the ceiling those limits allow: 600/min x 1,000 events = 10,000 events/s.
Run: ``python -m bench onepassword_wan [--sizes 150000] [--repeat 2]``.
"""

from __future__ import annotations

from typing import Any

from bench.onepassword_bench import SizeResult, parser, run
from bench.onepassword_sims import Network

#: Issue 13's target: at least this share of the ceiling.
TARGET_CEILING_SHARE = 0.9


def wan_targets(results: list[SizeResult]) -> str:
    lines = []
    for result in results:
        if result.ceiling_ratios is None:
            continue
        share = result.ceiling_ratios.median
        lines.append(
            f"drain/ceiling {share:.2f} at {result.events:,} events (>= {TARGET_CEILING_SHARE}): "
            f"{'met' if share >= TARGET_CEILING_SHARE else 'MISSED'}"
        )
    return "  targets: " + ("; ".join(lines) or "no rate limits, no ceiling")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("python -m bench onepassword_wan", __doc__, "150000", 2)
    p.add_argument("--page-latency", type=float, default=0.3, help="seconds per 1Password request")
    p.add_argument("--ingest-latency", type=float, default=0.1, help="seconds per Logs Ingestion request")
    p.add_argument("--no-rate-limits", action="store_true", help="leave 1Password's rate limits off")
    p.add_argument(
        "--page-bandwidth",
        type=float,
        default=0.0,
        help="bytes/s a 1Password answer arrives at (0: loopback)",
    )
    p.add_argument(
        "--cursor-last",
        action="store_true",
        help="1Password answers with the cursor last: the same code without the head start it gives",
    )
    args = p.parse_args(argv)
    network = Network(
        args.page_latency,
        args.ingest_latency,
        rate_limits=not args.no_rate_limits,
        page_bandwidth=args.page_bandwidth,
        cursor_last=args.cursor_last,
    )
    return run(args, network, wan_targets)
