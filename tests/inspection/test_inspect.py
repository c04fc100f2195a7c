"""The inspector: views, named queries that reconcile with the manifest, output formats, refusal of
writes and of files outside the run, the HTML report, and training metrics.

Two runs are built once per module from the real Yahoo LTR sample (skipped without ../shared):
`clean` (the sample as it is: nothing quarantined, so quarantine/ is absent) and `corrupted` (two
lines broken so two queries are quarantined, and replay on so RL stages carry replayed rows).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
from html.parser import HTMLParser

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curricula.ordering import OrderConfig
from data_contracts.schema import (DIFFICULTY_SCHEMA, DROPPED_SCHEMA, IMITATION_SCHEMA,
                                   QUARANTINE_SCHEMA, RL_SCHEMA)
from inspection import cli as ins_mod
from inspection import report as report_mod
from inspection.cli import main
from inspection.inspector import (TRAINING_COLUMNS, QueryError, RefusedError, named_queries,
                                  open_run)
from pipelines.build_curriculum import run as build_run
from pipelines.config import CurriculumConfig

SCHEMAS = {"difficulty": DIFFICULTY_SCHEMA, "imitation": IMITATION_SCHEMA, "rl": RL_SCHEMA,
           "dropped": DROPPED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
NAMED = ("bands", "pass-rates", "stages", "quarantine", "diversity", "dropped", "training")


# --- fixtures -------------------------------------------------------------------------------

def _corrupt_copy(src: str, folder: str) -> str:
    """rank.train with query 0's label out of range and query 1's line unparseable."""
    with open(src, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    lines[0] = "9" + lines[0][1:]  # query 0 has one document: label 9 is outside [0, 4]
    lines[1] = "garbage line here"  # query 1's first document
    path = os.path.join(folder, "rank.train")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    shutil.copy(src + ".query", path + ".query")
    return path


@pytest.fixture(scope="module")
def clean(yahoo_train, tmp_path_factory):
    """(run folder, manifest) of a run built from the Yahoo train sample as it is."""
    out = tmp_path_factory.mktemp("inspect-clean") / "run"
    result = build_run(CurriculumConfig(inputs=[yahoo_train], out=str(out)))
    return result.out, result.manifest


@pytest.fixture(scope="module")
def corrupted(yahoo_train, tmp_path_factory):
    """(run folder, manifest) of a run from a broken copy of the sample, with RL replay on."""
    base = tmp_path_factory.mktemp("inspect-corrupted")
    source = _corrupt_copy(yahoo_train, str(base))
    result = build_run(CurriculumConfig(inputs=[source], out=str(base / "run"),
                                        order=OrderConfig(replay=0.25)))
    return result.out, result.manifest


@pytest.fixture(params=["clean", "corrupted"])
def built(request):
    return request.getfixturevalue(request.param)


@pytest.fixture()
def ins(built):
    with open_run(built[0]) as inspector:
        yield inspector


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def same(a, b) -> bool:
    """Equal, floats to 1e-12 relative (DuckDB's parallel sums may differ in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def snapshot(folder: str) -> dict:
    """Every file under `folder` with its size, mtime and sha256 (to prove nothing was written)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            digest = ""
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            out[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns, digest)
    return out


# --- views ----------------------------------------------------------------------------------

def test_every_view_exists_with_the_contract_columns(ins, built):
    _, manifest = built
    views = {r[0] for r in ins.con.execute("SELECT view_name FROM duckdb_views() "
                                           "WHERE NOT internal").fetchall()}
    assert set(SCHEMAS) | {"files", "counts", "curriculum", "diversity", "training"} <= views
    for phase, schema in SCHEMAS.items():
        described = ins.con.execute(f"DESCRIBE {phase}").fetchall()
        assert [r[0] for r in described] == schema.names, phase
        listed = sum(f["rows"] for f in manifest["files"] if f["phase"] == phase)
        assert ins.count(phase) == listed, phase
    # No training metrics: the view is there, empty, with the known columns.
    assert [r[0] for r in ins.con.execute("DESCRIBE training").fetchall()] == list(
        TRAINING_COLUMNS)
    assert ins.count("training") == 0


def test_empty_quarantine_is_a_typed_empty_view(clean):
    run, manifest = clean
    # No quarantine rows: either no file, or empty files of the schema (the staging may write
    # those so read_parquet over every phase never fails); the view is typed either way.
    assert sum(f["rows"] for f in manifest["files"] if f["phase"] == "quarantine") == 0
    assert manifest["counts"]["quarantined"] == 0
    with open_run(run) as ins:
        types = {r[0]: r[1] for r in ins.con.execute("DESCRIBE quarantine").fetchall()}
        assert list(types) == QUARANTINE_SCHEMA.names
        assert set(types.values()) == {"VARCHAR"}
        assert ins.named("quarantine").num_rows == 0
        # Queries over the empty view still type-check.
        assert ins.query("SELECT count(*) AS n, max(length(raw)) AS m FROM quarantine"
                         ).to_pylist() == [{"n": 0, "m": None}]


def test_files_and_counts_views_are_the_manifest(ins, built):
    _, manifest = built
    files = rows(ins.query("SELECT path, phase, stage, shard, rows, sha256 FROM files"))
    assert files == [{k: f.get(k) for k in ("path", "phase", "stage", "shard", "rows", "sha256")}
                     for f in manifest["files"]]
    counts = {r["name"]: r["value"] for r in rows(ins.query("SELECT * FROM counts"))}
    assert counts == manifest["counts"]


# --- named queries against the manifest -----------------------------------------------------

def test_named_queries_are_package_data_with_descriptions():
    queries = named_queries()
    assert set(queries) == set(NAMED)
    for name, (description, sql) in queries.items():
        assert description, name
        assert sql.strip(), name


def test_bands_match_manifest_counts(ins, built):
    _, manifest = built
    counts = manifest["counts"]
    table = rows(ins.named("bands"))
    assert [r["band"] for r in table] == ["too_hard", "learnable", "too_easy"]
    for r in table:
        assert r["queries"] == counts[r["band"]]
        assert r["imitation"] + r["rl"] + r["dropped"] == r["queries"]
    assert sum(r["queries"] for r in table) == counts["scored"]
    for fate in ("imitation", "rl", "dropped"):
        assert sum(r[fate] for r in table) == counts[fate]
    assert math.isclose(sum(r["percent"] for r in table), 100.0, abs_tol=0.2)


def test_pass_rate_histogram_sums_to_bands(ins, built):
    _, manifest = built
    counts = manifest["counts"]
    table = rows(ins.named("pass-rates"))
    assert len(table) == 10
    assert [r["pass_rate_from"] for r in table] == [round(i / 10, 1) for i in range(10)]
    for band in ("too_hard", "learnable", "too_easy"):
        assert sum(r[band] for r in table) == counts[band]
    assert sum(r["queries"] for r in table) == counts["scored"]


def test_stages_match_manifest_curriculum(ins, built):
    _, manifest = built
    counts = manifest["counts"]
    table = rows(ins.named("stages"))
    curriculum = manifest["curriculum"]
    assert [(r["phase"], r["stage"]) for r in table] == [(c["phase"], c["stage"])
                                                         for c in curriculum]
    for r, c in zip(table, curriculum):
        assert r["files"] == len(c["files"])
        if c["phase"] == "imitation":
            assert r["rows"] == r["queries"] == counts["imitation"]
            continue
        assert r["queries"] == c["queries"]
        assert r["rows"] == c["rows"]
        for key in ("pass_rate_min", "pass_rate_max", "pass_rate_mean"):
            if c[key] is None:
                assert r[key] is None
            else:
                assert math.isclose(r[key], c[key], abs_tol=1e-8), key
    rl = [r for r in table if r["phase"] == "rl"]
    assert sum(r["queries"] for r in rl) == counts["rl"]
    assert sum(r["rows"] for r in rl) == counts["rl_rows"]
    assert sum(r["replayed"] for r in rl) == counts["rl_replayed"]


def test_quarantine_matches_manifest_reasons(ins, built):
    _, manifest = built
    table = rows(ins.named("quarantine"))
    by_reason: dict[str, int] = {}
    for r in table:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["records"]
    assert by_reason == manifest["quarantine_reasons"]
    assert sum(r["records"] for r in table if r["record_kind"] == "query") == \
        manifest["counts"]["quarantined"]


def test_corrupted_run_has_the_quarantine_it_was_given(corrupted):
    run, manifest = corrupted
    assert manifest["counts"]["quarantined"] == 2
    with open_run(run) as ins:
        table = {r["reason"]: r for r in rows(ins.named("quarantine"))}
    assert set(table) == {"label_out_of_range", "unparseable_line"}
    assert table["unparseable_line"]["example_location"].endswith("rank.train:2")
    assert manifest["counts"]["rl_replayed"] > 0  # so the stages test saw replayed rows


def test_dropped_match_manifest_reasons(ins, built):
    _, manifest = built
    table = rows(ins.named("dropped"))
    by_reason: dict[str, int] = {}
    for r in table:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["queries"]
    assert by_reason == manifest["drop_reasons"]
    assert sum(by_reason.values()) == manifest["counts"]["dropped"]


def test_diversity_matches_manifest(ins, built):
    _, manifest = built
    dv = manifest["diversity"]
    table = {r["side"]: r for r in rows(ins.named("diversity"))}
    assert set(table) == {"before", "after"}
    assert table["after"]["source"] == "imitation"  # recomputed from the shards
    for side in ("before", "after"):
        want, got = dv[side], table[side]
        assert got["demonstrations"] == want["demonstrations"]
        assert math.isclose(got["entropy_bits"], want["cluster_entropy_bits"], abs_tol=1e-9)
        assert got["distinct_signatures"] == want["distinct_signatures"]
        clusters = {int(k): v for k, v in want["cluster_counts"].items()}
        assert got["cluster_counts"] == [clusters.get(c, 0) for c in
                                         range(len(got["cluster_counts"]))]
        assert got["clusters_used"] == sum(1 for v in clusters.values() if v)
    assert table["after"]["demonstrations"] == manifest["counts"]["imitation"]


def test_every_named_query_runs_on_the_command_line(built, capsys):
    run, _ = built
    for name in NAMED:
        if name == "training":  # no training metrics given: see test_training_query_without_metrics
            continue
        assert main([run, "--query", name]) == 0, name
        out = capsys.readouterr().out
        lines = out.splitlines()
        header, rule = lines[0], lines[1]
        assert set(rule.replace(" ", "")) <= {"-"}
        segments = [m.span() for m in re.finditer(r"-+", rule)]
        assert len(segments) == len(header.split())  # one rule segment per column
        for line in lines[:-1]:  # aligned: no cell spills past its column's rule
            assert len(line) <= len(rule)
            for (_, end), (start, _) in zip(segments, segments[1:]):
                assert line[end:start].strip() == "", (name, line)
        assert lines[-1].startswith("(") and lines[-1].endswith(")")


# --- output formats -------------------------------------------------------------------------

def test_csv_json_parquet_agree_with_the_query(clean, tmp_path, capsys):
    run, manifest = clean
    with open_run(run) as ins:
        expected = rows(ins.named("stages"))

    assert main([run, "--query", "stages", "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["rows"]) for r in parsed] == [r["rows"] for r in expected]
    assert [r["phase"] for r in parsed] == [r["phase"] for r in expected]
    assert parsed[0]["stage"] == ""  # NULL is an empty field
    assert float(parsed[1]["pass_rate_min"]) == expected[1]["pass_rate_min"]  # full precision

    assert main([run, "--query", "stages", "--format", "json"]) == 0
    assert same(json.loads(capsys.readouterr().out), expected)

    out = tmp_path / "stages.json"
    assert main([run, "--query", "stages", "--format", "json", "--output", str(out)]) == 0
    assert same(json.loads(out.read_text()), expected)

    out = tmp_path / "stages.parquet"
    assert main([run, "--query", "stages", "--format", "parquet", "--output", str(out)]) == 0
    written = pq.read_table(out)
    assert written.column_names == list(expected[0])
    assert same(written.to_pylist(), expected)

    assert main([run, "--query", "stages", "--format", "parquet"]) == 2
    assert "--output" in capsys.readouterr().err


def test_sql_and_list_columns_in_every_format(clean, tmp_path, capsys):
    run, _ = clean
    sql = "SELECT side, cluster_counts, entropy_bits FROM diversity ORDER BY side"
    assert main([run, "--sql", sql, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["side"] for d in data] == ["after", "before"]
    assert all(isinstance(d["cluster_counts"], list) for d in data)
    assert main([run, "--sql", sql, "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(parsed[0]["cluster_counts"]) == data[0]["cluster_counts"]
    assert main([run, "--sql", "SELECT 'nan'::DOUBLE AS x", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"x": None}]  # valid JSON, not NaN
    assert main([run, "--sql", "SELECT * FROM rl", "--max-rows", "5"]) == 0
    text = capsys.readouterr().out
    assert "showing 5" in text and len(text.splitlines()) == 2 + 5 + 1


# --- read only ------------------------------------------------------------------------------

WRITES = [
    "INSERT INTO counts VALUES ('x', 1)",
    "UPDATE counts SET value = 0",
    "DELETE FROM counts",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(a) AS a",
    "DROP VIEW rl",
    "ALTER VIEW rl RENAME TO rl2",
    "COPY (SELECT 1) TO '{target}'",
    "COPY difficulty TO '{target}' (FORMAT parquet)",
    "EXPORT DATABASE '{folder}'",
    "ATTACH '{target}' AS other",
    "DETACH memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET threads = 1",
    "RESET threads",
    "PRAGMA show_tables",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
    "WITH x AS (SELECT 1) INSERT INTO counts SELECT 'x', 1 FROM x",
    "SELECT 1; DROP VIEW rl",
    "PIVOT difficulty ON band USING count(*)",
]


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused(clean, tmp_path, statement):
    run, _ = clean
    target = tmp_path / "written.out"
    sql = statement.format(target=target, folder=tmp_path / "export")
    before = snapshot(run)
    with open_run(run) as ins:
        with pytest.raises(RefusedError):
            ins.query(sql)
        assert ins.count("rl") > 0  # the views are intact
        assert ins.count("counts") == len(ins.manifest["counts"])
    assert not target.exists() and not (tmp_path / "export").exists()
    assert snapshot(run) == before


def test_refusal_is_one_error_line_and_exit_2(clean, capsys):
    run, _ = clean
    assert main([run, "--sql", "DROP VIEW rl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: refused: DROP")


READS = ["SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "FROM counts",
         "VALUES (1), (2)", "DESCRIBE rl", "SHOW TABLES", "SUMMARIZE difficulty",
         "EXPLAIN SELECT * FROM rl", "EXPLAIN ANALYZE SELECT count(*) FROM difficulty",
         "-- a comment\nSELECT 2", "SELECT 1;",
         "SELECT * FROM (PIVOT difficulty ON band IN ('too_hard', 'learnable') USING count(*))"]


@pytest.mark.parametrize("statement", READS)
def test_reads_are_allowed(clean, statement):
    with open_run(clean[0]) as ins:
        assert ins.query(statement).num_rows >= 1


def test_files_outside_the_run_are_refused(clean, tmp_path, capsys):
    run, _ = clean
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"secret": [1, 2, 3]}), outside)
    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{outside}')"
                                    ).fetchall() == [(3,)]  # readable without the inspector
    inside = os.path.join(run, "difficulty", "part-00000.parquet")
    with open_run(run) as ins:
        for sql in (f"SELECT * FROM read_parquet('{outside}')",
                    f"SELECT * FROM '{outside}'",
                    "SELECT * FROM read_parquet('/etc/does-not-matter.parquet')",
                    "SELECT * FROM read_csv('/etc/passwd')",
                    "SELECT * FROM read_text('/etc/hostname')",
                    "SELECT * FROM glob('/etc/*')",
                    f"SELECT * FROM read_parquet('{run}/../{os.path.basename(str(tmp_path))}"
                    f"/outside.parquet')"):
            with pytest.raises(QueryError):
                ins.query(sql)
        # Inside the run, reading is allowed.
        assert ins.query(f"SELECT count(*) AS n FROM read_parquet('{inside}')").num_rows == 1
        settings = dict(ins.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration')").fetchall())
        assert settings == {"enable_external_access": "false", "lock_configuration": "true"}
    assert main([run, "--sql", "SELECT * FROM read_parquet('/etc/x.parquet')"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disabled by configuration" in err[0]


def test_nothing_is_written_to_the_run(clean, tmp_path, capsys):
    run, _ = clean
    before = snapshot(run)
    for name in NAMED:
        assert main([run, "--query", name, "--format", "json"]) == (2 if name == "training"
                                                                    else 0)
    assert main([run, "--report", str(tmp_path / "r.html")]) == 0
    assert main([run]) == 0
    capsys.readouterr()
    assert snapshot(run) == before


# --- errors and listing ---------------------------------------------------------------------

def test_run_without_manifest_is_one_error_line(tmp_path, capsys):
    (tmp_path / "difficulty").mkdir()
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "manifest not found" in err[0]
    assert main([str(tmp_path / "missing"), "--query", "bands"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


@pytest.mark.parametrize("kind", ["trainer", "experiment", "export"])
def test_a_folder_that_is_not_a_run_says_what_it_is(kind, clean, tmp_path, capsys):
    """A trainer's, an experiment's or an export's folder given as RUN is named as such, and a
    trainer's points at `--training` with the run its summary names."""
    run, _ = clean
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "trainer":
        (folder / "metrics.jsonl").write_text("\n".join(_metrics_lines()) + "\n")
        (folder / "summary.json").write_text(json.dumps(
            {"manifest": os.path.join(run, "manifest.json")}))
    else:
        (folder / ("claims.md" if kind == "experiment" else "export.json")).write_text("{}")
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"is an {kind}" in err[0] or f"is a {kind}'s output" in err[0]
    if kind == "trainer":
        assert f"--training {folder}" in err[0] and f"inspect {run} " in err[0]
        # and the advice works as printed
        assert main([run, "--training", str(folder), "--query", "training"]) == 0


def test_training_folder_without_metrics_is_an_error(clean, tmp_path, capsys):
    assert main([clean[0], "--training", str(tmp_path), "--query", "training"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.jsonl" in err[0]


def test_listing_without_a_terminal(clean, capsys):
    run, manifest = clean
    assert main([run]) == 0  # stdin is not a terminal under pytest
    out = capsys.readouterr().out
    for name in list(SCHEMAS) + ["files", "counts", "training"] + list(NAMED):
        assert f"  {name} " in out, name
    assert re.search(rf"\n  difficulty +{manifest['counts']['scored']} rows", out)
    assert re.search(r"\n  quarantine +0 rows", out)


def test_interactive_prompt(clean, monkeypatch, capsys):
    run, manifest = clean
    lines = iter([".query bands", "SELECT count(*) AS n", "FROM rl;", "DROP VIEW rl;",
                  ".stages", ".quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    with open_run(run) as ins:
        assert ins_mod.interactive(ins) == 0
    out = capsys.readouterr().out
    assert "learnable" in out and "error: refused: DROP" in out
    assert f"\n{manifest['counts']['rl_rows']:>3}\n" in out
    assert "imitation" in out and "position" in out


# --- report ---------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Collects figures (id, has a base64 PNG img, caption text) and every external reference."""

    def __init__(self):
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.current: str | None = None
        self.in_caption = False
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.current = attrs.get("id")
            self.figures[self.current] = {"png": None, "caption": ""}
        elif tag == "img" and self.current:
            src = attrs.get("src", "")
            if src.startswith("data:image/png;base64,"):
                self.figures[self.current]["png"] = base64.b64decode(src.split(",", 1)[1])
        elif tag == "figcaption":
            self.in_caption = True
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith("data:"):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag == "figure":
            self.current = None
        elif tag == "figcaption":
            self.in_caption = False

    def handle_data(self, data):
        if self.in_caption and self.current:
            self.figures[self.current]["caption"] += data


def _parse(path) -> _Page:
    page = _Page()
    page.feed(open(path, encoding="utf-8").read())
    page.close()
    return page


def test_report_has_every_figure(built, tmp_path, capsys):
    run, manifest = built
    path = tmp_path / "report.html"
    assert main([run, "--report", str(path)]) == 0  # (speed is not a test: see benchmarks/)
    page = _parse(path)
    assert list(page.figures) == list(report_mod.RUN_FIGURES)  # no training figures
    for fig_id, figure in page.figures.items():
        assert figure["png"] and figure["png"][:8] == b"\x89PNG\r\n\x1a\n", fig_id
        assert figure["caption"].strip(), fig_id
    assert page.external == []  # self-contained
    counts = manifest["counts"]
    assert f"learnable {counts['learnable']}" in page.figures["bands"]["caption"]
    text = path.read_text()
    assert f"read {counts['read']} = quarantined {counts['quarantined']}" in text
    assert "wrote" in capsys.readouterr().err


# --- training metrics -----------------------------------------------------------------------

def _metrics_lines() -> list[str]:
    lines = [{"phase": "diagnostic", "policy": "untrained", "step": 0, "ndcg_at_10": 0.55,
              "pass_rate": 0.5, "informative_fraction": 0.8, "entropy": 30.0,
              "ranking_diversity": 0.99}]
    for step in range(1, 11):
        lines.append({"phase": "bc", "step": step, "epoch": 0, "loss": 2.0 - step / 10})
    lines.append({"phase": "diagnostic", "policy": "bc", "step": 10, "ndcg_at_10": 0.7,
                  "pass_rate": 0.6, "informative_fraction": 0.6, "entropy": 25.0})
    for step in range(11, 71):
        lines.append({"phase": "rl", "step": step, "stage": (step - 11) // 20,
                      "loss": 0.1 if step != 30 else float("nan"),
                      "reward_mean": 0.4 + step / 200, "informative_fraction": 0.7,
                      "entropy": 24.0 - step / 100, "kl": 0.01 * step,
                      "ranking_diversity": 1.0})
        if step % 20 == 0:
            lines.append({"phase": "eval", "step": step, "ndcg_at_10": 0.7 + step / 1000})
    lines.append({"phase": "diagnostic", "policy": "rl", "step": 70, "ndcg_at_10": 0.76,
                  "pass_rate": 0.7, "informative_fraction": 0.5, "entropy": 21.0})
    text = [json.dumps(line) for line in lines]
    text.append('{"phase": "rl", "step": 71, "loss"')  # cut short by a live trainer
    return text


@pytest.fixture()
def training_dir(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("\n".join(_metrics_lines()) + "\n")
    return folder


def test_training_query_and_view(clean, training_dir, capsys):
    run, _ = clean
    with open_run(run, str(training_dir)) as ins:
        assert ins.has_training()
        assert ins.count("training") == len(_metrics_lines()) - 1  # the cut line is skipped
        assert any("skipped" in w for w in ins.warnings)
        types = {r[0]: r[1] for r in ins.con.execute("DESCRIBE training").fetchall()}
        assert {c: types[c] for c in TRAINING_COLUMNS} == TRAINING_COLUMNS
        assert "epoch" in types  # unknown keys are kept
        # Only the metrics file itself is readable outside the run, not its folder.
        (training_dir / "notes.csv").write_text("a\n1\n")
        with pytest.raises(QueryError):
            ins.query(f"SELECT * FROM read_csv('{training_dir / 'notes.csv'}')")
        table = {(r["phase"], r["policy"]): r for r in rows(ins.named("training"))}
    assert table[("bc", None)]["records"] == 10
    assert table[("bc", None)]["loss_first"] == pytest.approx(1.9)
    assert table[("bc", None)]["loss_last"] == pytest.approx(1.0)
    assert table[("rl", None)]["records"] == 60 and table[("rl", None)]["stages"] == 3
    assert table[("rl", None)]["reward_last"] == pytest.approx(0.4 + 70 / 200)
    assert table[("rl", None)]["kl_last"] == pytest.approx(0.7)
    assert table[("eval", None)]["ndcg_at_10_best"] == pytest.approx(0.76)
    assert table[("diagnostic", "rl")]["ndcg_at_10_last"] == pytest.approx(0.76)
    assert [k[0] for k in table][:2] == ["diagnostic", "bc"]  # in step order

    assert main([run, "--training", str(training_dir), "--query", "training",
                 "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == len(table)
    assert "warning:" in captured.err


def test_training_figures_in_report(clean, training_dir, tmp_path, capsys):
    run, _ = clean
    path = tmp_path / "report.html"
    assert main([run, "--training", str(training_dir), "--report", str(path)]) == 0
    page = _parse(path)
    assert list(page.figures) == list(report_mod.RUN_FIGURES) + list(
        report_mod.TRAINING_FIGURES)
    for fig_id in report_mod.TRAINING_FIGURES:
        assert page.figures[fig_id]["png"][:4] == b"\x89PNG", fig_id
    reward = page.figures["training-reward"]["caption"]
    assert "one panel per curriculum stage" in reward
    for stage in range(3):  # 20 steps each, reward 0.4 + step / 200; first and last tenth
        found = re.search(rf"stage {stage}: 20 steps, reward ([0-9.]+) -> ([0-9.]+)", reward)
        first, last = 0.4 + (11 + 20 * stage + 0.5) / 200, 0.4 + (29 + 20 * stage + 0.5) / 200
        assert found and float(found[1]) == pytest.approx(first, abs=1e-3), reward
        assert float(found[2]) == pytest.approx(last, abs=1e-3), reward
    ndcg = page.figures["training-ndcg"]["caption"]  # diagnostics: one value per policy, bars
    assert "per policy: untrained 0.55, bc 0.7, rl 0.76" in ndcg
    assert "eval" in page.figures["training-ndcg"]["caption"]
    capsys.readouterr()


def test_training_found_in_run_folder(clean, training_dir, tmp_path, capsys):
    copy = tmp_path / "run-copy"
    shutil.copytree(clean[0], copy)
    shutil.copytree(training_dir, copy / "training")
    with open_run(str(copy)) as ins:
        assert ins.training_path == str(copy / "training" / "metrics.jsonl")
        assert ins.has_training()
    assert main([str(copy), "--query", "training", "--format", "csv"]) == 0
    assert "diagnostic" in capsys.readouterr().out
