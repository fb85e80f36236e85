"""The network the benchmarks put around the simulators: a latency on every request, and 1Password's
published rate limits answered as the Events API answers them. Injected clock and sleep: no waiting.
"""

from __future__ import annotations

from datetime import timedelta

import requests

from simulators.clock import FakeClock
from simulators.onepassword import REQUESTS_PER_HOUR, REQUESTS_PER_MINUTE, OnePasswordSim


def _introspect(sim: OnePasswordSim, token: str) -> requests.Response:
    return requests.get(
        f"{sim.url}/api/v2/auth/introspect", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_every_answer_leaves_no_sooner_than_the_latency_after_its_request(fake_clock: FakeClock) -> None:
    with OnePasswordSim(now=fake_clock.now) as sim:
        sim.latency = 0.3
        sim.sleep = fake_clock.sleep
        token = sim.issue_token()
        assert _introspect(sim, token).status_code == 200
        assert requests.post(f"{sim.url}/api/v2/auditevents", json={}, timeout=10).status_code == 401
        # Answers and errors alike wait out what is left of the 300 ms after the simulator's own work.
        assert len(fake_clock.sleeps) == 2 and all(0.2 < s <= 0.3 for s in fake_clock.sleeps)


def test_no_latency_by_default(fake_clock: FakeClock) -> None:
    with OnePasswordSim(now=fake_clock.now) as sim:
        sim.sleep = fake_clock.sleep
        assert _introspect(sim, sim.issue_token()).status_code == 200
        assert fake_clock.sleeps == []


def test_rate_limit_answers_429_as_the_events_api_does_and_frees_at_the_window_pace(
    fake_clock: FakeClock,
) -> None:
    with OnePasswordSim(now=fake_clock.now) as sim:
        sim.limit_per_minute, sim.limit_per_hour = REQUESTS_PER_MINUTE, REQUESTS_PER_HOUR
        token = sim.issue_token()
        sim.reset_rate_windows(past_requests=REQUESTS_PER_MINUTE)  # the last minute at the limit

        assert _introspect(sim, token).status_code == 200  # the oldest past request just left
        refused = _introspect(sim, token)
        assert refused.status_code == 429
        assert refused.json() == {"status": 429, "message": "Too Many Requests"}
        assert "Retry-After" not in refused.headers  # none documented, none sent
        assert sim.throttled == 1

        # 600 a minute is one every 100 ms once the window is full: the pace of the ceiling.
        fake_clock.advance(0.1)
        assert _introspect(sim, token).status_code == 200
        assert _introspect(sim, token).status_code == 429
        fake_clock.advance(60)
        assert all(_introspect(sim, token).status_code == 200 for _ in range(10))


def test_hourly_limit_binds_once_30000_requests_were_made_within_the_hour(fake_clock: FakeClock) -> None:
    with OnePasswordSim(now=fake_clock.now) as sim:
        sim.limit_per_minute, sim.limit_per_hour = REQUESTS_PER_MINUTE, REQUESTS_PER_HOUR
        token = sim.issue_token()
        # 29,999 requests over the last 58 minutes: about 517 a minute, under the minute's limit.
        sim.reset_rate_windows(past_requests=REQUESTS_PER_HOUR - 1, over=timedelta(minutes=58))
        assert _introspect(sim, token).status_code == 200
        assert _introspect(sim, token).status_code == 429
        assert sim.throttled == 1
