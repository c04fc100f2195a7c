"""Beam pipelines and command lines: build_curriculum; inspect (a shim over inspection/)."""
import logging


class _QuietOptionalGcp(logging.Filter):
    """Beam warns at import that GCP client libraries are absent; irrelevant to local runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_QuietOptionalGcp())
