"""Data contracts: Arrow schemas, readers into canonical query batches, validation, manifest."""
from data_contracts.schema import SCHEMA_VERSION  # noqa: F401

__version__ = "0.1.0"
