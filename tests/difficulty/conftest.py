"""Fixtures of the difficulty tests: the real LTR sample read and validated once per session."""
from __future__ import annotations

import pyarrow as pa
import pytest

from data_contracts.readers import read_queries
from data_contracts.schema import QUERY_SCHEMA
from data_contracts.validate import ValidationState, validate_queries


def read_valid(path: str) -> pa.Table:
    """Reads `path` and keeps the queries that pass validation (QUERY_SCHEMA, input order).

    Args:
      path: any input `read_queries` understands.

    Returns:
      The valid queries as one table.
    """
    state = ValidationState()
    tables = [validate_queries(batch, state)[0] for batch in read_queries(path)]
    return pa.concat_tables(tables) if tables else QUERY_SCHEMA.empty_table()


@pytest.fixture(scope="session")
def yahoo_train_table(yahoo_train) -> pa.Table:
    """The validated train split of the real sample (skips where the sample is absent)."""
    return read_valid(yahoo_train)

