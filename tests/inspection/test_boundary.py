"""The run folder is a boundary for the inspector, and every error is one line with exit 2.

Each attack of issue 11 is a test here: a symlink out of the run (training metrics and shards),
an outside, absolute or `..` manifest path, DuckDB's temp directory, a data-modifying statement in
a CTE, `--output`/`--report` into the run, a flipped byte; then every usage error as one
`error: ...` line with exit 2, `--help` with defaults, and a gs:// run read through a cache.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, sha256_file
from inspection.cli import main, make_parser
from inspection.inspector import QueryError, RefusedError, open_run
from tests.inspection.conftest import write_metrics
from tests.inspection.test_inspect import same, snapshot

METRICS = [{"phase": "diagnostic", "policy": "untrained", "step": 0, "ndcg_at_10": 0.5},
           {"phase": "rl", "step": 1, "stage": 0, "reward_mean": 0.6},
           {"phase": "rl", "step": 2, "stage": 1, "reward_mean": 0.3}]


def one_error_line(capsys, *needles: str) -> str:
    """The captured stderr, asserted to be exactly one `error: ...` line holding `needles`."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in captured.err and "usage:" not in captured.err
    return lines[0]


def secret_file(tmp_path) -> str:
    path = tmp_path / "secret.jsonl"
    path.write_text('{"phase": "secret", "step": 1}\n')
    return str(path)


# --- symlinks out of the run ----------------------------------------------------------------

def test_training_metrics_symlink_out_of_the_run_is_refused(run_copy, tmp_path, capsys):
    os.makedirs(os.path.join(run_copy, "training"))
    os.symlink(secret_file(tmp_path), os.path.join(run_copy, "training", "metrics.jsonl"))
    with pytest.raises(InputError, match="outside the run"):
        open_run(run_copy)
    assert main([run_copy, "--query", "bands"]) == 2
    one_error_line(capsys, "outside the run")


def test_training_dir_metrics_symlink_out_of_the_dir_is_refused(small_run, tmp_path, capsys):
    folder = tmp_path / "train"
    folder.mkdir()
    os.symlink(secret_file(tmp_path), folder / "metrics.jsonl")
    assert main([small_run, "--training", str(folder), "--query", "training"]) == 2
    one_error_line(capsys, "outside")


def test_shard_symlink_out_of_the_run_is_refused(run_copy, tmp_path, capsys):
    manifest = json.load(open(os.path.join(run_copy, MANIFEST_NAME)))
    victim = os.path.join(run_copy, manifest["files"][0]["path"])
    outside = tmp_path / "outside.parquet"
    os.replace(victim, outside)  # same bytes, same sha256: only the boundary can refuse it
    os.symlink(outside, victim)
    assert main([run_copy, "--no-verify", "--query", "bands"]) == 2
    one_error_line(capsys, "outside the run")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.parquet", "difficulty/../../x",
                                 "difficulty\\..\\..\\x"])
def test_outside_absolute_or_dotdot_manifest_path_is_refused(run_copy, tmp_path, capsys, bad):
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"query_id": ["secret"]}), outside)
    path = os.path.join(run_copy, MANIFEST_NAME)
    manifest = json.load(open(path))
    manifest["files"].append({"path": bad, "phase": "difficulty", "rows": 1,
                              "sha256": sha256_file(str(outside))})
    open(path, "w").write(json.dumps(manifest))
    for flag in ("--verify", "--no-verify"):
        assert main([run_copy, flag, "--query", "bands"]) == 2
        one_error_line(capsys, "manifest refused")


def test_only_listed_files_are_readable_not_directories_or_temp(small_run, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs(".tmp")
    open(".tmp/secret.csv", "w").write("a\n1\n")
    sibling = os.path.join(small_run, "notes.csv")  # inside the run, but not listed
    with open_run(small_run) as ins:
        for sql in ("SELECT * FROM read_csv('.tmp/secret.csv')",
                    f"SELECT * FROM read_csv('{tmp_path}/.tmp/secret.csv')",
                    f"SELECT * FROM read_csv('{sibling}')",
                    f"SELECT * FROM glob('{small_run}/*')"):
            with pytest.raises(QueryError):
                ins.query(sql)
        settings = dict(ins.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('temp_directory', "
            "'allowed_directories', 'enable_external_access', 'lock_configuration')"
        ).fetchall())
        assert settings["temp_directory"] == ""
        assert settings["allowed_directories"] in ("[]", "")
        assert settings["enable_external_access"] == "false"
        assert settings["lock_configuration"] == "true"


# --- writes hidden in a statement -----------------------------------------------------------

HIDDEN_WRITES = [
    "WITH x AS (UPDATE _manifest.counts SET value = 0 RETURNING *) SELECT * FROM x",
    "WITH x AS (INSERT INTO _manifest.counts VALUES ('x', 1) RETURNING *) SELECT * FROM x",
    "WITH x AS (DELETE FROM _manifest.counts RETURNING *) SELECT * FROM x",
    "WITH x AS MATERIALIZED (DELETE FROM _manifest.counts RETURNING *) SELECT count(*) FROM x",
    "SELECT (WITH x AS (DELETE FROM _manifest.counts RETURNING *) SELECT count(*) FROM x)",
    "SELECT * FROM counts WHERE value IN (WITH d AS (UPDATE _manifest.counts SET value = 1 "
    "RETURNING value) SELECT value FROM d)",
    "EXPLAIN WITH x AS (DELETE FROM _manifest.counts RETURNING *) SELECT * FROM x",
    "SELECT 1 UNION ALL (WITH x AS (DELETE FROM _manifest.counts RETURNING 1) SELECT * FROM x)",
    "WITH x AS (COPY counts TO '/tmp/x.csv') SELECT 1",
    "WITH x AS (ATTACH '/tmp/x.db' AS y) SELECT 1",
    "WITH x AS (CREATE TABLE y AS SELECT 1) SELECT 1",
    "SELECT * FROM query('DELETE FROM _manifest.counts RETURNING *')",
]


@pytest.mark.parametrize("sql", HIDDEN_WRITES)
def test_data_modifying_statement_anywhere_is_refused(small_run, sql, capsys):
    with open_run(small_run) as ins:
        before = ins.query("SELECT * FROM counts ORDER BY name").to_pylist()
        with pytest.raises((RefusedError, QueryError)):
            ins.query(sql)
        assert ins.query("SELECT * FROM counts ORDER BY name").to_pylist() == before
    assert main([small_run, "--sql", sql]) == 2
    one_error_line(capsys)


def test_the_cte_write_is_refused_by_the_parse_tree(small_run):
    with open_run(small_run) as ins:
        with pytest.raises(RefusedError, match="data-modifying statement \\(UPDATE\\)"):
            ins.query("WITH x AS (UPDATE _manifest.counts SET value = 0 RETURNING *) "
                      "SELECT * FROM x")


# --- outputs never land inside the run ------------------------------------------------------

def test_output_and_report_inside_the_run_are_refused(run_copy, tmp_path, capsys):
    before = snapshot(run_copy)
    manifest = json.load(open(os.path.join(run_copy, MANIFEST_NAME)))
    shard = os.path.join(run_copy, manifest["files"][0]["path"])
    link = tmp_path / "link-to-run"
    os.symlink(run_copy, link)
    for target in (os.path.join(run_copy, MANIFEST_NAME), shard,
                   os.path.join(run_copy, "new.csv"), str(link / MANIFEST_NAME),
                   os.path.join(run_copy, "difficulty", "..", "x.html")):
        assert main([run_copy, "--query", "bands", "--format", "csv", "--output", target]) == 2
        one_error_line(capsys, "inside the run")
        assert main([run_copy, "--report", target]) == 2
        one_error_line(capsys, "inside the run")
    assert snapshot(run_copy) == before
    assert main([run_copy, "--report", str(tmp_path / "ok.html")]) == 0  # outside: fine
    capsys.readouterr()


def test_output_over_the_training_metrics_is_refused(small_run, tmp_path, capsys):
    folder = write_metrics(tmp_path / "train", METRICS)
    target = os.path.join(folder, "metrics.jsonl")
    assert main([small_run, "--training", folder, "--query", "bands", "--output", target]) == 2
    one_error_line(capsys, "training file")


# --- hashes ---------------------------------------------------------------------------------

def test_flipped_byte_is_refused_by_default(run_copy, capsys):
    manifest = json.load(open(os.path.join(run_copy, MANIFEST_NAME)))
    victim = os.path.join(run_copy, manifest["files"][0]["path"])
    data = bytearray(open(victim, "rb").read())
    data[4] ^= 0x01  # inside the first page header: the file stays readable to DuckDB
    open(victim, "wb").write(bytes(data))
    assert main([run_copy, "--query", "bands"]) == 2
    one_error_line(capsys, "sha256 does not match", manifest["files"][0]["path"])
    assert main([run_copy, "--no-verify", "--sql", "SELECT 1 AS x"]) == 0  # skipped on request
    capsys.readouterr()


def test_verify_says_it_passed(small_run, capsys):
    assert main([small_run, "--verify"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("verified: ") and "every sha256 matches" in err


# --- one clear line every time --------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    ([], "RUN"),
    (["{run}", "--no-such-option"], "unrecognized arguments"),
    (["{run}", "--query", "nope"], "invalid choice"),
    (["{run}", "--format", "xml"], "invalid choice"),
    (["{run}", "--max-rows", "many"], "invalid int"),
    (["{run}", "--max-rows", "-1"], "--max-rows"),
    (["{run}", "--query", "bands", "--sql", "SELECT 1"], "not allowed with"),
    (["{run}", "--verify", "--no-verify"], "not allowed with"),
    (["{run}", "--query", "bands", "--format", "parquet"], "--output"),
    (["{run}", "--output", "x.csv"], "--output needs"),
    (["{run}", "--sql", "SELEC 1"], "syntax error"),
    (["{run}", "--sql", "DROP VIEW rl"], "refused"),
    (["{run}", "--sql", "SELECT * FROM nope"], "nope"),
    (["{run}", "--query", "training"], "no training metrics"),
    (["{run}", "--training", "{tmp}/missing", "--query", "bands"], "training folder not found"),
    (["{run}", "--training", "{tmp}", "--query", "bands"], "metrics.jsonl"),
    (["{tmp}/not-a-run"], "manifest not found"),
    (["{tmp}/nul\x00run"], ""),
    (["{run}", "--query", "bands", "--output", "{tmp}/no-such-dir-file/x\x00y"], ""),
])
def test_every_usage_error_is_one_line_and_exit_2(small_run, tmp_path, capsys, argv, needle):
    argv = [a.format(run=small_run, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    one_error_line(capsys, needle)


def test_empty_training_metrics_say_so(small_run, tmp_path, capsys):
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("")
    assert main([small_run, "--training", str(folder), "--query", "training"]) == 2
    one_error_line(capsys, "no metric lines")


def test_help_describes_every_option_with_its_default(capsys):
    parser = make_parser()
    for action in parser._actions:
        if action.dest == "help" or not action.option_strings:
            continue
        assert action.help and "default" in action.help, action.option_strings
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--no-verify" in capsys.readouterr().out


def test_the_command_name_runs_through_the_shim(small_run):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    ok = subprocess.run([sys.executable, "-m", "pipelines.inspect", small_run, "--query", "bands"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "learnable" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "pipelines.inspect", small_run, "--bogus"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


# --- a run on an object store ---------------------------------------------------------------

def _upload(local: str, url: str) -> None:
    for path in fs.list_files(local):
        fs.copy(path, fs.join(url, os.path.relpath(path, local).replace(os.sep, "/")))


def test_gs_run_is_read_through_a_verified_private_cache(small_run, gcs_emulator, tmp_path,
                                                         capsys):
    url = f"{gcs_emulator}/runs/small"
    _upload(small_run, url)
    training = f"{gcs_emulator}/train/small"
    fs.write_bytes(f"{training}/metrics.jsonl",
                   "".join(json.dumps(m) + "\n" for m in METRICS).encode())
    with open_run(small_run) as local:
        expected = {n: local.named(n).to_pylist() for n in ("bands", "stages", "dropped")}
    with open_run(url, training) as ins:
        cache = ins.local_root
        assert ins.root == url and cache.startswith(os.path.realpath(os.sep))
        assert ins.verified["files"] == len(ins.manifest["files"])
        for name, rows in expected.items():
            assert same(ins.named(name).to_pylist(), rows), name
        assert ins.count("training") == len(METRICS)
        assert oct(os.stat(os.path.dirname(cache)).st_mode & 0o777) == "0o700"
    assert not os.path.exists(cache)  # the cache goes with the inspector
    assert main([url, "--query", "bands", "--format", "json"]) == 0
    assert same(json.loads(capsys.readouterr().out), expected["bands"])
    # A changed object is refused like a changed local file.
    shard = json.loads(fs.read_bytes(f"{url}/{MANIFEST_NAME}"))["files"][0]["path"]
    fs.write_bytes(f"{url}/{shard}", fs.read_bytes(f"{url}/{shard}") + b"x")
    assert main([url, "--query", "bands"]) == 2
    one_error_line(capsys, "sha256 does not match")
    assert main([url, "--report", f"{url}/report.html"]) == 2
    one_error_line(capsys, "inside the run")
    fs.delete([f"{url}/{shard}"])  # a listed object missing
    assert main([url, "--no-verify", "--query", "bands"]) == 2
    one_error_line(capsys, "could not be copied")
