"""The run folder is a boundary: manifest paths relative and normalised, symlinks resolved first,
hashes verified by default (data_contracts/manifest.py read side)."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.errors import InputError
from data_contracts.manifest import (MANIFEST_NAME, check_relative, files_of, load_manifest,
                                     resolve_in_run, sha256_file)
from data_contracts.schema import SCHEMA_VERSION


def make_run(folder, files=None) -> str:
    """A minimal run: one imitation shard and a manifest listing it (plus `files` entries)."""
    os.makedirs(folder / "imitation", exist_ok=True)
    shard = folder / "imitation" / "part-00000.parquet"
    pq.write_table(pa.table({"query_id": ["q1", "q2"]}), shard)
    entries = [{"path": "imitation/part-00000.parquet", "phase": "imitation", "rows": 2,
                "sha256": sha256_file(str(shard))}] + list(files or [])
    (folder / MANIFEST_NAME).write_text(json.dumps(
        {"schema_version": SCHEMA_VERSION, "files": entries}))
    return str(folder)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.parquet", "imitation/../../x",
                                 "imitation/../imitation/part-00000.parquet", "./imitation/x",
                                 "imitation//x", "imitation/", "", "imitation\\..\\..\\x",
                                 "C:/x", "gs://bucket/x", "a\x00b", ".", ".."])
def test_unnormalised_or_absolute_paths_are_refused(bad):
    with pytest.raises(ValueError):
        check_relative(bad)
    with pytest.raises(InputError):
        resolve_in_run("/tmp/run", bad)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.parquet", "rl/../../outside.parquet"])
def test_manifest_with_an_outside_path_is_refused_whole(tmp_path, bad):
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"query_id": ["secret"]}), outside)
    run = make_run(tmp_path / "run", [{"path": bad, "phase": "imitation", "rows": 1,
                                        "sha256": sha256_file(str(outside))}])
    for verify in (True, False):
        with pytest.raises(InputError, match="manifest refused") as info:
            load_manifest(run, verify_files=verify)
        assert "\n" not in str(info.value)


def test_symlink_leaving_the_run_is_refused(tmp_path):
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"query_id": ["secret"]}), outside)
    run = make_run(tmp_path / "run", [{"path": "imitation/part-00001.parquet",
                                        "phase": "imitation", "rows": 1,
                                        "sha256": sha256_file(str(outside))}])
    os.symlink(outside, tmp_path / "run" / "imitation" / "part-00001.parquet")
    with pytest.raises(InputError, match="outside the run"):
        load_manifest(run)
    # A folder symlink leaving the run is refused the same way.
    os.remove(tmp_path / "run" / "imitation" / "part-00001.parquet")
    os.makedirs(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", tmp_path / "run" / "rl")
    with pytest.raises(InputError, match="outside the run"):
        resolve_in_run(run, "rl/part-00000.parquet")


def test_manifest_json_itself_may_not_be_a_link_out(tmp_path):
    real = make_run(tmp_path / "real")
    os.makedirs(tmp_path / "run")
    os.symlink(os.path.join(real, MANIFEST_NAME), tmp_path / "run" / MANIFEST_NAME)
    with pytest.raises(InputError, match="outside the run"):
        load_manifest(str(tmp_path / "run"))


def test_symlink_inside_the_run_is_followed_and_resolved(tmp_path):
    run = make_run(tmp_path / "run")
    os.symlink("imitation", tmp_path / "run" / "alias")
    path = resolve_in_run(run, "alias/part-00000.parquet")
    assert path == os.path.realpath(tmp_path / "run" / "imitation" / "part-00000.parquet")


def test_hashes_are_verified_by_default(tmp_path):
    run = make_run(tmp_path / "run")
    manifest = load_manifest(run)
    assert manifest["_verified"]["files"] == 1 and manifest["_verified"]["bytes"] > 0
    (shard,) = files_of(manifest, "imitation")
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    open(shard, "wb").write(bytes(data))
    with pytest.raises(InputError, match="sha256 does not match"):
        load_manifest(run)
    assert load_manifest(run, verify_files=False)["_verified"] is None


def test_files_of_resolves_every_path(tmp_path):
    run = make_run(tmp_path / "run")
    manifest = load_manifest(run)
    assert files_of(manifest, "imitation") == [
        os.path.realpath(tmp_path / "run" / "imitation" / "part-00000.parquet")]
    manifest["files"].append({"path": "../x", "phase": "rl"})  # edited by hand after loading
    with pytest.raises(InputError):
        files_of(manifest, "rl")


def test_path_listed_twice_and_non_object_manifest(tmp_path):
    run = make_run(tmp_path / "run", [{"path": "imitation/part-00000.parquet",
                                        "phase": "imitation", "sha256": "x"}])
    with pytest.raises(InputError, match="listed twice"):
        load_manifest(run)
    (tmp_path / "run" / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(InputError, match="not a JSON object"):
        load_manifest(run)


def test_is_inside_compares_resolved_paths(tmp_path):
    from data_contracts.manifest import is_inside

    run = make_run(tmp_path / "run")
    os.symlink(run, tmp_path / "alias")
    assert is_inside(os.path.join(run, "x.html"), run)
    assert is_inside(str(tmp_path / "alias" / "manifest.json"), run)  # through a symlink
    assert is_inside(os.path.join(run, "imitation", "..", "y"), run)
    assert not is_inside(str(tmp_path / "runs-next-door"), run)  # a prefix is not a parent
    assert not is_inside(str(tmp_path / "train"), run)
    assert is_inside("gs://b/run/out.csv", "gs://b/run/")
    assert not is_inside("gs://b/run2", "gs://b/run")
    assert not is_inside("gs://b/run/x", run)


def test_hash_cost_benchmark_runs():
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "benchmarks", "bench_verify.py")
    out = subprocess.run([sys.executable, script, "--mib", "4", "--repeats", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MB/s" in out.stdout and "extrapolated to a 1 GB run" in out.stdout


def _edited(folder, edit) -> str:
    run = make_run(folder)
    path = folder / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["curriculum"] = [{"phase": "imitation", "stage": None,
                               "files": ["imitation/part-00000.parquet"]}]
    edit(manifest)
    path.write_text(json.dumps(manifest))
    return run


def _set(key, value):
    def edit(manifest):
        manifest["files"][0][key] = value
    return edit


def _curriculum(parts):
    def edit(manifest):
        manifest["curriculum"] = parts
    return edit


def _rl_without_stage(manifest):
    manifest["files"][0]["phase"] = "rl"
    manifest["files"][0]["stage"] = 0  # an RL file...
    manifest["curriculum"] = [{"phase": "rl", "stage": 1, "files": []}]  # ...in no stage


@pytest.mark.parametrize("edit,words", [
    (_set("phase", "training"), "phase 'training'"),
    (_set("phase", None), "phase None"),
    (_set("sha256", None), "no sha256"),
    (_set("stage", "0"), "stage '0'"),
    (_set("rows", -1), "rows -1"),
    (_curriculum("all"), "'curriculum' is not a list"),
    (_curriculum([{"phase": "rl", "stage": "first", "files": []}]), "RL stage"),
    (_curriculum([{"phase": "imitation", "files": ["imitation/other.parquet"]}]),
     "not a listed imitation file"),
    (_curriculum([{"phase": "imitation", "files": "imitation/part-00000.parquet"}]),
     "not a list of paths"),
    (_rl_without_stage, "in no curriculum stage"),
    (_curriculum([{"phase": "imitation", "files": ["imitation/part-00000.parquet"]}] * 2),
     "named by two curriculum parts"),
    (_curriculum([{"phase": "rl", "stage": 0, "files": []}] * 2), "appears twice"),
    (_curriculum([{"phase": "rl", "stage": 0, "files": [], "rows": 5}]), "rows 5"),
    (_curriculum([{"phase": "rl", "stage": 0, "files": [], "rows": -5}]), "rows -5"),
])
def test_an_edited_manifest_is_refused_with_one_line(tmp_path, edit, words):
    """What readers rely on (each file's phase, stage and hash; a curriculum naming listed
    files, every RL file in a stage) is checked on load: an edit is refused, never a KeyError
    or a silent run that trains on nothing."""
    run = _edited(tmp_path / "run", edit)
    with pytest.raises(InputError) as info:
        load_manifest(run)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_deeply_nested_manifest_is_refused_not_a_recursion_error(tmp_path):
    run = make_run(tmp_path / "run")
    (tmp_path / "run" / MANIFEST_NAME).write_text('{"schema_version": ' + "[" * 100_000 +
                                                  "]" * 100_000 + "}")
    with pytest.raises(InputError, match="nested too deeply"):
        load_manifest(run)


def test_the_unedited_curriculum_loads(tmp_path):
    assert load_manifest(_edited(tmp_path / "run", lambda m: None))["curriculum"]


@pytest.mark.parametrize("key,value,words", [
    ("counts", "x", "'counts'"), ("counts", {"read": -1}, "'counts'"),
    ("feature_space", "x", "'feature_space'"), ("feature_space", {"width": 10**12}, "width"),
    ("feature_space", {"width": -1}, "width"), ("feature_space", {"width": 5, "base": 7}, "base")])
def test_tampered_counts_or_feature_space_are_refused(tmp_path, key, value, words):
    run = _edited(tmp_path / "run", lambda m: m.update({key: value}))
    with pytest.raises(InputError, match="manifest refused") as info:
        load_manifest(run)
    assert words in str(info.value)
