"""What the Functions host's queue trigger does, for local runs and tests against Azurite.

In Azure the host receives messages, hides each for the run, deletes it when the function returns and
moves it to ``<queue>-poison`` once it has failed ``maxDequeueCount`` times; instances scale out by
queue length. This loop gives one local process the same semantics (no scaling: start more processes),
so the dispatcher and worker are exercised end to end without Functions Core Tools.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from auditsync.fanout.queue import MAX_DEQUEUE_COUNT

if TYPE_CHECKING:  # the queue SDK is imported by the first open_queue (auditsync.fanout.queue)
    from azure.storage.queue import QueueClient, QueueMessage

log = logging.getLogger(__name__)

Handler = Callable[[str, int], None]
"""Called with a message's text and its dequeue count; raising means "retry this message"."""


def drain(
    queue: QueueClient,
    poison: QueueClient,
    handler: Handler,
    *,
    visibility: timedelta,
    max_dequeue_count: int = MAX_DEQUEUE_COUNT,
    idle_polls: int = 3,
    poll_interval: float = 0.2,
) -> int:
    """Work messages until the queue stayed empty for ``idle_polls`` polls; return how many completed.

    ``visibility`` must exceed one run (its budget plus the heartbeat), as the host's lease does, so a
    message is never handed to a second worker while the first still works it.
    """
    completed = 0
    empty = 0
    while empty < idle_polls:
        messages = list(
            queue.receive_messages(max_messages=1, visibility_timeout=int(visibility.total_seconds()))
        )
        if not messages:
            empty += 1
            time.sleep(poll_interval)
            continue
        empty = 0
        for message in messages:
            if _work_one(queue, poison, handler, message, max_dequeue_count):
                completed += 1
    return completed


def _work_one(
    queue: QueueClient, poison: QueueClient, handler: Handler, message: QueueMessage, max_dequeue_count: int
) -> bool:
    count = int(message.dequeue_count or 1)
    try:
        handler(str(message.content), count)
    except Exception as exc:  # the host's behaviour: any failure leaves the message for a retry
        if count >= max_dequeue_count:
            log.error(
                "message failed %d times (%s); moved to %s", count, type(exc).__name__, poison.queue_name
            )
            poison.send_message(str(message.content))
            queue.delete_message(message)
        else:
            log.warning("message failed (%s, attempt %d); it will be retried", type(exc).__name__, count)
            queue.update_message(message, visibility_timeout=0)
        return False
    queue.delete_message(message)
    return True
