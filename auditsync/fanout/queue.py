"""The work queue: an Azure Storage queue that the Functions queue trigger reads.

Messages are base64 text, the encoding the Functions queue trigger expects by default
(``extensions.queues.messageEncoding``), so the dispatcher's messages bind in Azure exactly as they do
against Azurite. The host moves a message that failed ``maxDequeueCount`` times to ``<queue>-poison``.
Every call goes through the project's retry policy (``auditsync.retry``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # azure-storage-queue is imported by the first ``open_queue``, not by function indexing
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

    from auditsync.model import Clock

DEFAULT_QUEUE = "auditsync-work"
#: host.json ``extensions.queues.maxDequeueCount``; the local worker applies the same limit.
MAX_DEQUEUE_COUNT = 5

__all__ = ["DEFAULT_QUEUE", "MAX_DEQUEUE_COUNT", "open_queue", "poison_queue_name"]


def poison_queue_name(queue: str) -> str:
    """Where the Functions host (and the local worker) put a message that kept failing."""
    return f"{queue}-poison"


def open_queue(
    name: str,
    *,
    connection_string: str = "",
    account_url: str = "",
    credential: TokenCredential | None = None,
    retry_total: int | None = None,
    clock: Clock | None = None,
    **client_kwargs: Any,
) -> QueueClient:
    """A client for queue ``name``: by connection string (Azurite, local) or account URL + managed identity.

    ``retry_total`` limits the retry policy's retries (0 in error-path tests); its waits go through ``clock``.
    """
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    from auditsync.retry import AZURE_SERVICES, DeadlineRetryPolicy

    options: dict[str, Any] = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
        "retry_policy": DeadlineRetryPolicy(AZURE_SERVICES, clock=clock, retry_total=retry_total),
        **client_kwargs,
    }
    if connection_string:
        return QueueClient.from_connection_string(connection_string, name, **options)
    return QueueClient(account_url, name, credential=credential, **options)
