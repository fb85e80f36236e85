"""Loopback stand-ins for the services auditsync talks to, used by tests, the demo and the benchmarks.

They behave like the real services, errors included, so the production code paths (real SDKs, real
sockets) run unchanged against them.
"""
