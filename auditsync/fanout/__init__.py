"""Scale-out for many tenants on the engine Azure Functions already has: a Storage queue.

The timer function becomes a dispatcher that enqueues one work item per due (tenant, stream); a
queue-triggered function works one item with the same checkpoint, lease, deadline and heartbeat as a
single-tenant run. Azure Functions scales the queue function out by queue length and moves a message
that keeps failing to ``<queue>-poison``; we write no scheduler or pool of our own.
"""
