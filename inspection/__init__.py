"""Inspection of curriculum runs: DuckDB views over a run (read only, confined to the run), named
queries, output formats, the HTML report.

Modules, imports one way: `inspector` (the connection, views, read-only checks) and `output`
(writers) know nothing of `report`; `report` draws from an `Inspector`; `cli` is the command line
(`python -m pipelines.inspect`). Depends on data_contracts only.
"""
