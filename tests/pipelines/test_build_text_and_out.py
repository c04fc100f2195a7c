"""The build's command line on text inputs and output folders: the readers' counts summed into
the manifest and the summary, text `--column-map` keys, log rewards without qrels, the text
feature space, why a run has nothing to train on, repeated and zero-valued options, help
defaults, run folders nested in either direction and a run folder given as --input."""
from __future__ import annotations

import json

import pytest

from data_contracts.errors import InputError
from data_contracts.manifest import check_out_outside_runs
from data_contracts.text_features import TEXT_FEATURE_NAMES
from data_contracts.usable import unusable_reason
from pipelines.build_curriculum import main, make_parser
from pipelines.config import CurriculumConfig
from pipelines.manifest import PIPELINE_COUNTS, reader_count_lines

JUDGED = [f"q{i}" for i in range(1, 7)]
UNJUDGED = [f"u{i}" for i in range(1, 11)]  # more than --max-quarantine would allow, if counted
DOCS = 5
WORDS = ["apple", "river", "stone", "cloud", "maple", "tiger", "ocean", "piano"]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _beir(root, qrels=True, text_key="full_text"):
    """A BEIR folder whose corpus holds its passages under `text_key` (one passage empty),
    judging JUDGED (graded, varied) and not UNJUDGED; a run over both."""
    folder = root / "beir"
    docs = [(f"{q}-d{j}", " ".join(WORDS[(i + j + k) % len(WORDS)] for k in range(6)))
            for i, q in enumerate(JUDGED + UNJUDGED) for j in range(DOCS)]
    docs[1] = (docs[1][0], "")  # one empty passage
    _write(folder / "corpus.jsonl", "".join(json.dumps({"_id": d, "title": "", text_key: t})
                                            + "\n" for d, t in docs))
    _write(folder / "queries.jsonl", "".join(
        json.dumps({"_id": q, "text": f"{WORDS[i % 8]} {WORDS[(i + 3) % 8]}"}) + "\n"
        for i, q in enumerate(JUDGED + UNJUDGED)))
    if qrels:
        _write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n" + "".join(
            f"{q}\t{q}-d{j}\t{(i + j) % 3}\n" for i, q in enumerate(JUDGED) for j in range(DOCS)))
    run = _write(root / "run.txt", "".join(f"{q} Q0 {q}-d{j} {j + 1} {10 - j} bm25\n"
                                           for q in JUDGED + UNJUDGED for j in range(DOCS)))
    return str(folder), run


def _manifest(out):
    with open(out / "manifest.json") as f:
        return json.load(f)


def test_text_counts_reach_the_manifest_and_one_summary_line(tmp_path, capsys):
    folder, run = _beir(tmp_path)
    out = tmp_path / "run"
    assert main(["--input", folder, "--input-format", "beir", "--candidates", run,
                 "--column-map", "doc_text=full_text", "--k", "4", "--no-adaptive",
                 "--out", str(out)]) == 0
    m = _manifest(out)
    c = m["counts"]
    assert c["unjudged"] == len(UNJUDGED)  # skipped and counted, never quarantined
    assert c["read"] == len(JUDGED) and c["quarantined"] == 0
    # the passages came from `full_text`: only the one empty passage is empty (without the
    # column map every passage of the judged queries would be)
    assert c["empty_passages"] == 1
    assert c["read"] == c["quarantined"] + c["scored"]  # reconciles as ever
    stdout = capsys.readouterr().out
    assert "  text: 10 unjudged queries skipped (not in the qrels), 1 empty passages\n" in stdout
    fs_ = m["feature_space"]
    assert fs_["names"] == list(TEXT_FEATURE_NAMES) and fs_["width"] == len(TEXT_FEATURE_NAMES)
    assert "drop reasons: " in stdout or not m["drop_reasons"]


def test_pass_two_does_not_count_twice(tmp_path):
    """Pass 2 re-reads every split; the reader's counts are pass 1's only."""
    folder, run = _beir(tmp_path)
    out = tmp_path / "run"
    assert main(["--input", folder, "--input-format", "beir", "--candidates", run,
                 "--column-map", "doc_text=full_text", "--k", "4", "--no-adaptive",
                 "--batch-size", "2", "--out", str(out)]) == 0
    c = _manifest(out)["counts"]
    assert (c["unjudged"], c["empty_passages"]) == (len(UNJUDGED), 1)


def test_without_the_column_map_the_passages_are_counted_empty(tmp_path, capsys):
    folder, run = _beir(tmp_path)
    out = tmp_path / "run"
    code = main(["--input", folder, "--input-format", "beir", "--candidates", run,
                 "--k", "4", "--no-adaptive", "--out", str(out)])
    if code == 0:
        assert _manifest(out)["counts"]["empty_passages"] == len(JUDGED) * DOCS
    else:  # the reader may refuse a corpus with no known text key: one line naming it
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_no_judged_query_is_refused_in_one_line(tmp_path, capsys):
    folder, run = _beir(tmp_path)
    other = _write(tmp_path / "other.txt", "".join(f"x{i} Q0 x{i}-d0 1 1 t\n" for i in range(3)))
    assert main(["--input", folder, "--input-format", "beir", "--candidates", other,
                 "--column-map", "doc_text=full_text", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "judged" in err
    assert not (tmp_path / "run").exists()


def test_log_reward_over_a_beir_folder_without_qrels_is_not_refused(tmp_path):
    folder, run = _beir(tmp_path, qrels=False)
    log = tmp_path / "rollouts.jsonl"
    rows = [{"query_id": q, "rollout_id": f"{q}-{i}", "reward": (i * 0.3 + n * 0.1) % 1,
             "policy_id": "ext"} for n, q in enumerate(JUDGED + UNJUDGED) for i in range(4)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert not CurriculumConfig(reward="log").text_options().require_qrels
    assert CurriculumConfig().text_options().require_qrels
    out = tmp_path / "run"
    assert main(["--input", folder, "--input-format", "beir", "--candidates", run,
                 "--column-map", "doc_text=full_text", "--reward", "log", "--rollouts",
                 str(log), "--teacher", "none", "--out", str(out)]) == 0
    c = _manifest(out)["counts"]
    assert c["read"] == len(JUDGED + UNJUDGED) and "unjudged" not in c  # no qrels: all kept


def test_summary_names_quarantine_and_drop_reasons(tmp_path, capsys):
    lines = []
    for q in range(40):
        for d in range(5):
            label = 9 if q < 3 and d == 0 else (q * 7 + d * 3) % 5  # 3 queries out of range
            feats = " ".join(f"{f}:{((q * 31 + d * 17 + f * 13) % 97) / 97:.3f}"
                             for f in range(1, 6))
            lines.append(f"{label} qid:{q} {feats}")
    data = _write(tmp_path / "train.svm", "\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main(["--input", data, "--teacher", "none", "--hard-below", "0.6",  # drops
                 "--easy-above", "0.7", "--out", str(out)]) == 0
    m = _manifest(out)
    stdout = capsys.readouterr().out
    assert m["quarantine_reasons"] == {"label_out_of_range": 3}
    assert "\n  quarantine reasons: label_out_of_range 3\n" in stdout
    assert m["drop_reasons"]
    line = next(x for x in stdout.splitlines() if x.startswith("  drop reasons: "))
    for reason, n in m["drop_reasons"].items():
        assert f"{reason} {n}" in line


def test_nothing_to_train_on_names_the_drop_reasons():
    counts = {"read": 2, "quarantined": 0, "scored": 2, "too_hard": 0, "learnable": 2,
              "too_easy": 0, "imitation": 0, "rl": 0, "dropped": 2}
    line = unusable_reason(counts, {}, 0.5, drop_reasons={"zero_variance_group": 2})
    assert "dropped 2: zero_variance_group 2 (" in line and "1 rollout per query" in line
    assert "GRPO needs at least 2" in line and "--k" in line
    assert "learnable 2" in line


def test_one_rollout_per_query_is_refused_saying_why(tmp_path, capsys):
    """A rollout log with one rollout per query: every group zero-variance."""
    folder, run = _beir(tmp_path)
    log = tmp_path / "rollouts.jsonl"
    log.write_text("".join(json.dumps({"query_id": q, "rollout_id": "r0", "reward": 0.5,
                                       "policy_id": "ext"}) + "\n" for q in JUDGED))
    out = tmp_path / "run"
    assert main(["--input", folder, "--input-format", "beir", "--candidates", run,
                 "--column-map", "doc_text=full_text", "--reward", "log", "--rollouts",
                 str(log), "--teacher", "none", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to train on" in err
    assert "zero_variance_group" in err and "GRPO needs at least 2" in err


def test_reader_counts_lines():
    assert reader_count_lines({n: 3 for n in PIPELINE_COUNTS}) == []
    assert reader_count_lines({"read": 1, "unjudged": 142, "empty_passages": 3}) == [
        "text: 142 unjudged queries skipped (not in the qrels), 3 empty passages"]


@pytest.mark.parametrize("option", ["--qrels", "--candidates", "--teacher-run"])
def test_a_path_option_given_twice_is_one_error_line(option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main([option, "a", option, "b", "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "twice" in err


def test_candidate_depth_zero_is_refused(capsys, tmp_path):
    assert main(["--candidate-depth", "0", "--out", str(tmp_path / "run")]) == 2
    assert "candidate-depth must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["pipelines.build_curriculum", "pipelines.export"])
def test_help_shows_every_default(module):
    if module == "pipelines.export":
        from pipelines.export import make_parser as parser_of
    else:
        parser_of = make_parser
    parser = parser_of()
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.__class__.__name__ in ("_HelpAction",
                                                                      "_StoreFalseAction"):
            continue
        text = formatter._get_help_string(action)
        assert "default" in text or action.required or "required" in text, \
            (action.option_strings, text)
    assert "(default: )" not in parser.format_help()


def test_out_inside_a_run_or_holding_one_is_refused_both_ways(tmp_path, capsys):
    outer = tmp_path / "runs" / "a"
    assert main(["--synthetic-queries", "20", "--k", "2", "--no-adaptive",
                 "--out", str(outer)]) == 0
    capsys.readouterr()
    assert main(["--synthetic-queries", "20", "--out", str(outer / "inner")]) == 2
    err = capsys.readouterr().err
    assert f"inside the run folder {outer}" in err and err.count("\n") == 1
    assert main(["--synthetic-queries", "20", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"holds the run folder {outer}" in err and err.count("\n") == 1
    # the run being replaced is no nesting: a rebuild of the same --out goes on
    check_out_outside_runs(str(outer), may_be_run=True)
    with pytest.raises(InputError, match="is a run folder"):
        check_out_outside_runs(str(outer))  # another command's --out may not be a run
    check_out_outside_runs(str(tmp_path / "elsewhere"))


def test_a_run_folder_given_as_input_says_what_to_do_with_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--synthetic-queries", "20", "--k", "2", "--no-adaptive",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    for given in (run, run / "manifest.json"):
        assert main(["--input", str(given), "--out", str(tmp_path / "other")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a query input" in err
        assert "trainers.train --manifest" in err and "pipelines.export" in err
        assert "was not created" not in err
