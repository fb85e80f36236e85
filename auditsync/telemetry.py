"""Which library loggers may speak, for the CLI and the Function alike.

At INFO, azure-core's HTTP logging policy writes every request and response header block (one pair
per Logs Ingestion upload, Key Vault read and Table call), and azure-identity logs one WARNING per
credential it tried when none works. Both drown the one line per stream that matters, and in Azure
they cost Application Insights ingestion. Our own errors already summarise them with a next step, so
these loggers are held at WARNING (azure-identity at ERROR) unless the operator asks for ``-v``.
"""

from __future__ import annotations

import logging

#: logger name -> level at default verbosity.
QUIET_LOGGERS: dict[str, int] = {
    "azure.core.pipeline.policies.http_logging_policy": logging.WARNING,
    "azure.core": logging.WARNING,
    "azure.identity": logging.ERROR,
    "azure.monitor.ingestion": logging.WARNING,
    "azure.monitor.opentelemetry.exporter": logging.WARNING,
    "azure.keyvault": logging.WARNING,
    "azure.data.tables": logging.WARNING,
    "msal": logging.WARNING,
    "urllib3": logging.WARNING,
}


def quiet_sdk_loggers(verbose: bool = False) -> None:
    """Hold the SDKs' loggers at WARNING (or let everything through with ``verbose``)."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else level)
