"""One retry policy for every call a run makes: what is retried, for how long, never past the deadline.

The engine is azure-core's ``RetryPolicy``. Every Azure SDK client gets ``DeadlineRetryPolicy`` as its
retry policy, and ``HttpClient`` sends the vendor APIs' and the Data Collector's requests through an
azure-core pipeline with the same policy, so one table decides for all of them:

- **what is retried**: an answer with a status in RETRY_STATUSES or one the caller calls throttling
  (Keeper's 403), and transport failures: a request that never reached the service (DNS, refused, TLS)
  always, one whose answer was lost (reset, read timeout, cut short) for idempotent methods and where
  sending it twice is harmless (``RetryRule.repeat_sent``: the sinks deliver at least once, the vendor
  APIs only read);
- **for how long**: RULES, one row per kind of service: attempts, backoff (jittered, doubling, capped;
  its own first wait after throttling), per-attempt connection and read timeouts, and the budget of an
  operation no run deadline bounds;
- **never past the deadline**: a wait (the server's ``Retry-After``/``retry-after-ms``, else the backoff)
  is taken only when it ends DEADLINE_MARGIN before the operation's deadline, every attempt's timeouts
  are cut to the time left, and waits go through the injected Clock (tests never sleep).

A subclass, because azure-core's own settings cannot express this: its RetryPolicy sleeps a server's
whole Retry-After whatever its ``timeout`` says, caps only the connection timeout by that ``timeout``
(the read timeout stays 300 s), never retries a POST whose connection dropped after sending, and sleeps
in real time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy

from auditsync.failures import network_failure, redact_url
from auditsync.model import Clock, Deadline

log = logging.getLogger(__name__)

#: Statuses worth another attempt, whoever answers them (Azure documents 429 and 503 with Retry-After).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: A retry starts only when its wait ends at least this long before the deadline: the page in hand must
#: still be saved, and an attempt needs time to be worth sending.
DEADLINE_MARGIN = 5.0
#: Methods a server may receive twice without harm (azure-core's own list).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class RetryRule:
    """How long one kind of service is retried. Times in seconds."""

    #: Attempts in all, the first included.
    attempts: int
    #: Ceiling of the first wait without Retry-After (drawn from [half, all] of it), doubling each time.
    backoff: float
    backoff_cap: float
    connect_timeout: float
    read_timeout: float
    #: An operation without a run deadline ends within this; with one, it is cut to the time left.
    budget: float | None
    #: An operation started at (or after) its deadline still gets this long: one attempt, no retry.
    floor: float
    #: Send again a request whose answer was lost after it was sent (a non-idempotent POST included).
    repeat_sent: bool
    #: Ceiling of the first wait after a throttling answer without Retry-After.
    throttle_backoff: float = 1.0

    def sdk_options(self) -> dict[str, Any]:
        """The rule as azure-core's own keyword settings, for a client that takes no retry policy object."""
        return {
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retry_total": self.attempts - 1,
            "retry_backoff_factor": self.backoff,
            "retry_backoff_max": self.backoff_cap,
        }


#: The vendor APIs (Keeper, 1Password): only reads, so an answer lost is asked for again.
VENDOR_APIS = RetryRule(
    attempts=6,
    backoff=1.0,
    backoff_cap=60.0,
    connect_timeout=10.0,
    read_timeout=60.0,
    budget=None,
    floor=1.0,
    repeat_sent=True,
)
#: 1Password's limit frees a request every 100 ms (600 a minute) and its 429 names no Retry-After: a fifth
#: of a second, doubling, finds room; the generic second would idle a stream five times longer.
ONEPASSWORD_EVENTS = replace(VENDOR_APIS, throttle_backoff=0.2)
#: Log Analytics (Logs Ingestion, Data Collector): delivery is at least once, so a body whose answer was
#: lost is sent again (the alternative, failing the page, resends it on the next run anyway).
LOG_ANALYTICS = replace(VENDOR_APIS, backoff_cap=30.0, budget=180.0)
#: Table Storage, Storage queues and Key Vault: every operation ends within about 20 s whatever the
#: network does (azure-core's defaults are a 300 s read timeout and 10 retries backing off to 2 minutes).
#: Near the run's deadline (a checkpoint saved after the last page, leases freed) one attempt gets what
#: is left, but at least the floor. A POST whose answer was lost is not repeated: a create or an entity
#: group transaction sent twice would meet its own first write as a conflict.
AZURE_SERVICES = RetryRule(
    attempts=3,
    backoff=0.5,
    backoff_cap=2.0,
    connect_timeout=5.0,
    read_timeout=8.0,
    budget=20.0,
    floor=5.0,
    repeat_sent=False,
)
#: The managed identity's token endpoint: a token request ends within about 10 s.
MANAGED_IDENTITY = replace(
    AZURE_SERVICES, attempts=2, connect_timeout=4.0, read_timeout=4.0, budget=10.0, floor=4.0
)

#: Azure Resource Manager, for ``auditsync sentinel`` (an operator waits at a prompt): each call ends within
#: about a minute and a half. Its writes are PUTs of whole resources, sent again harmlessly.
RESOURCE_MANAGER = replace(
    AZURE_SERVICES,
    attempts=5,
    backoff=0.8,
    backoff_cap=10.0,
    connect_timeout=10.0,
    read_timeout=30.0,
    budget=90.0,
    floor=10.0,
)

#: The table, by name (docs and tests read it from here).
RULES: dict[str, RetryRule] = {
    "vendor API": VENDOR_APIS,
    "1Password Events API": ONEPASSWORD_EVENTS,
    "Log Analytics (Logs Ingestion, Data Collector)": LOG_ANALYTICS,
    "Azure Storage (tables, queues) and Key Vault": AZURE_SERVICES,
    "managed identity": MANAGED_IDENTITY,
    "Azure Resource Manager (the sentinel command)": RESOURCE_MANAGER,
}

Throttled = Callable[[Any], bool]
"""Whether an answer (the ``requests.Response`` under azure-core's response) is the service throttling."""


@dataclass(frozen=True)
class _Operation:
    """One logical request: its rule, its deadline and how it tells throttling."""

    rule: RetryRule
    clock: Clock
    ends: datetime
    throttled: Throttled | None

    def left(self) -> float:
        return max(0.0, (self.ends - self.clock.now()).total_seconds())


_OPERATION = "auditsync_retry_operation"
_WAIT = "auditsync_wait"
_FAILURES = "auditsync_failures"
#: Options the storage SDKs' StorageHosts policy leaves for their own retry policy (secondary-region
#: retries, which we never make); taken here so they do not reach the transport as keyword arguments.
_STORAGE_OPTIONS = ("hosts", "location_mode", "retry_to_secondary")


class DeadlineRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy deciding and waiting by a RetryRule and a deadline.

    ``deadline`` bounds every operation of the client; an operation may bring its own with the keyword
    ``retry_deadline`` (a sink send, bounded by the run). Time is the deadline's clock (the run's), else
    ``clock``. ``retry_total`` (azure-core's keyword, on the client or per call) still limits retries,
    e.g. to 0 in error-path tests. ``throttled`` tells a throttling answer that is not a 429.
    """

    def __init__(
        self,
        rule: RetryRule,
        *,
        clock: Clock | None = None,
        deadline: Deadline | None = None,
        throttled: Throttled | None = None,
        retry_total: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        total = rule.attempts - 1 if retry_total is None else retry_total
        super().__init__(retry_total=total, retry_connect=total, retry_read=total, retry_status=total)
        self.rule = rule
        self.clock = clock or (deadline.clock if deadline is not None else Clock())
        self.deadline = deadline
        self.throttled = throttled
        self._random = rng or random.Random()

    # -- one operation ---------------------------------------------------------------------------------
    def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        options = request.context.options
        for key in _STORAGE_OPTIONS:
            options.pop(key, None)
        request.context[_OPERATION] = self._operation(options.pop("retry_deadline", None))
        return super().send(request)

    def _operation(self, deadline: Deadline | None) -> _Operation:
        rule = self.rule
        deadline = deadline or self.deadline
        clock = deadline.clock if deadline is not None else self.clock
        seconds = deadline.remaining() if deadline is not None else (rule.budget or 0.0)
        if rule.budget is not None:
            seconds = min(seconds, rule.budget)
        seconds = max(seconds, rule.floor)
        return _Operation(rule, clock, clock.now() + timedelta(seconds=seconds), self.throttled)

    # -- azure-core's hooks ----------------------------------------------------------------------------
    def _configure_timeout(
        self, request: PipelineRequest[Any], absolute_timeout: float, is_response_error: bool
    ) -> None:
        """Each attempt's connection and read timeouts: the rule's, cut to the time the operation has left."""
        operation: _Operation = request.context[_OPERATION]
        left = max(operation.left(), 0.5)
        request.context.options["connection_timeout"] = min(operation.rule.connect_timeout, left)
        request.context.options["read_timeout"] = min(operation.rule.read_timeout, left)

    def _is_method_retryable(self, settings: dict[str, Any], request: Any, response: Any = None) -> bool:
        return True  # ``increment`` decides, with the failure in hand (azure-core's check cannot see it)

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        return response.http_response.status_code in RETRY_STATUSES or self._is_throttled(response)

    def increment(
        self,
        settings: dict[str, Any],
        response: PipelineRequest[Any] | PipelineResponse[Any, Any] | None = None,
        error: Exception | None = None,
    ) -> bool:
        """Whether to try again, and the wait before it (kept for ``sleep``)."""
        if response is None:
            return False
        operation: _Operation = response.context[_OPERATION]
        request = response.http_request
        answer = response if isinstance(response, PipelineResponse) else None
        if error is not None and not _repeatable(error, request.method, operation.rule):
            return False
        failures = settings.get(_FAILURES, 0) + 1
        wait = self._wait(operation, answer, failures)
        if wait > operation.left() - DEADLINE_MARGIN:
            return False  # the wait would end too close to the deadline, or past it
        if not super().increment(settings, response=response, error=error):
            return False  # out of attempts, or a body that cannot be rewound
        settings[_FAILURES], settings[_WAIT], settings[_OPERATION] = failures, wait, operation
        if answer is not None:
            what = str(answer.http_response.status_code)
        else:
            what = network_failure(error) if error is not None else "?"
        log.warning(
            "%s %s failed (%s); retry %d in %.1fs",
            request.method,
            redact_url(request.url),
            what,
            failures,
            wait,
            extra={"status": what, "attempt": failures},
        )
        return True

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        settings[_OPERATION].clock.sleep(settings.pop(_WAIT))

    # -- the decisions ---------------------------------------------------------------------------------
    def _wait(self, operation: _Operation, answer: PipelineResponse[Any, Any] | None, attempt: int) -> float:
        """The server's Retry-After (or retry-after-ms) if it sent one, else the backoff for ``attempt``."""
        if answer is not None:
            hinted = self.get_retry_after(answer)
            if hinted is not None:
                return max(0.0, hinted)
            if self._is_throttled(answer):
                return self._backoff(attempt, operation.rule.throttle_backoff, operation.rule.backoff_cap)
        return self._backoff(attempt, operation.rule.backoff, operation.rule.backoff_cap)

    def _backoff(self, attempt: int, base: float, cap: float) -> float:
        ceiling = min(cap, base * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    def _is_throttled(self, response: PipelineResponse[Any, Any]) -> bool:
        answer = response.http_response
        if answer.status_code == 429:
            return True
        predicate = response.context[_OPERATION].throttled
        return predicate is not None and predicate(getattr(answer, "internal_response", answer))


def _repeatable(error: Exception, method: str, rule: RetryRule) -> bool:
    """A transport failure worth another attempt: the request never left, or sending it twice is fine."""
    if isinstance(error, ServiceRequestError):
        return True
    lost = isinstance(error, ServiceResponseError) or (
        isinstance(error, HttpResponseError) and error.status_code is None
    )
    return lost and (rule.repeat_sent or method.upper() in IDEMPOTENT_METHODS)


def around_pipeline(policy: DeadlineRetryPolicy) -> dict[str, Any]:
    """Client keywords that put ``policy`` around an SDK client's whole pipeline.

    For azure-data-tables, which builds its own TablesRetryPolicy and takes no ``retry_policy``: ours
    goes first (azure-core's ``per_call_policies``) and the SDK's makes a single attempt.
    """
    return {"per_call_policies": [policy], "retry_total": 0}
