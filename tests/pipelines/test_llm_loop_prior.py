"""The learned prior in the LLM loop (issue #28): a reference round, a prior fitted once on it
and kept in requests.json, samples still deciding every band, decided queries never asked
again, and the same run and options giving the same bytes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data_contracts.manifest import load_manifest
from difficulty.prior import query_summaries
from difficulty.scoring import PRIOR_RULE
from exports.requests import SUMMARY_COLUMNS, in_reference
from exports.source import text_queries
from pipelines import export
from tests.pipelines.test_llm_loop import _answer, _ideal_text, _labels, _phase, _requests

N = 80
K = 4
BASE = ["--synthetic", "text", "--synthetic-queries", str(N), "--stages", "2", "--k-max", "16"]


def _build(out, *args) -> int:
    from pipelines import build_curriculum
    return build_curriculum.main([*BASE, "--out", str(out), *args])


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """Round 0 on a reference half; answers that pass exactly where a cheap query summary (the
    first-stage top-1 gap) is above its median, so a prior can learn it."""
    root = tmp_path_factory.mktemp("prior")
    run0 = root / "run0"
    assert _build(run0, "--policy", "none") == 0
    req0 = root / "req0"
    assert export.main([str(run0), "--to", "requests", "--out", str(req0), "--model", "pol",
                        "--k", str(K), "--reference-share", "0.5"]) == 0
    table = text_queries(load_manifest(str(run0)), str(run0), SUMMARY_COLUMNS)
    x, names = query_summaries(table)
    gap = x[:, names.index("first_stage_gap_1_2")]
    easy = {q for q, g in zip(table.column("query_id").to_pylist(), gap) if g > np.median(gap)}
    return root, run0, req0, easy, _labels(run0)


def _answers(folder, labels, easy, name="results.jsonl"):
    record, lines, orders = _requests(folder)
    out = [_answer(x["custom_id"], _ideal_text(orders[q], labels[q], worst=q not in easy))
           for x in lines for q in [x["custom_id"].split(":", 4)[4]]]
    path = folder / name
    path.write_text("".join(json.dumps(a) + "\n" for a in out))
    return path


def test_round0_asks_the_reference_set_only(loop):
    root, run0, req0, easy, labels = loop
    record, lines, _ = _requests(req0)
    asked = {q["query_id"] for q in record["queries"]}
    ids = _labels(run0).keys()
    assert asked == {q for q in ids if in_reference(q, 0.5)} and 0 < len(asked) < N
    assert record["planner"]["reference_share"] == 0.5 and "priors" not in record


def _round1(loop, tmp_path, *options):
    """Round 0's answers, the run built from them (with `options`) and round 1's requests
    (where the prior is fitted): (results path, run, requests folder)."""
    root, run0, req0, easy, labels = loop
    res0 = _answers(req0, labels, easy)
    run1 = tmp_path / "run1"
    assert _build(run1, "--rollouts", str(res0), *options) == 0
    req1 = tmp_path / "req1"
    assert export.main([str(run1), "--to", "requests", "--out", str(req1), "--model", "pol",
                        "--k", str(K)]) == 0
    return res0, run1, req1


def test_prior_is_fitted_once_kept_and_never_decides_alone(loop, tmp_path):
    root, run0, req0, easy, labels = loop
    res0, run1, req1 = _round1(loop, tmp_path)
    record1, lines1, _ = _requests(req1)
    planner = record1["planner"]
    assert planner["fitted_in_round"] == 1 and planner["measured_queries"] > 10
    assert record1["priors"], "a summary that predicts passing gives informative priors"
    # the prior learned the rule: easy queries' prior means above the others'
    means = {q: a / (a + b) for q, (a, b) in record1["priors"].items()}
    unmeasured = [q for q in _labels(run0) if not in_reference(q, 0.5)]
    assert np.mean([means.get(q, .5) for q in unmeasured if q in easy]) > \
        np.mean([means.get(q, .5) for q in unmeasured if q not in easy]) + 0.2
    asked = {q["query_id"]: len(q["samples"]) for q in record1["queries"]}
    # never a band from the prior alone: every unmeasured query is asked, at most k0
    assert set(unmeasured) <= set(asked) and all(1 <= asked[q] <= K for q in unmeasured)
    decided1 = {r["query_id"] for r in _phase(run1, "difficulty").to_pylist() if r["decided"]}
    assert not decided1 & set(asked)
    # the same run and options: the same bytes
    again = tmp_path / "req1-again"
    assert export.main([str(run1), "--to", "requests", "--out", str(again), "--model", "pol",
                        "--k", str(K)]) == 0
    for name in ("requests.json", "requests.jsonl"):
        assert (again / name).read_bytes() == (req1 / name).read_bytes()
    # round 2: the priors are read back (not refitted); round-1 decisions stay decided
    res1 = _answers(req1, labels, easy)
    run2 = tmp_path / "run2"
    assert _build(run2, "--rollouts", str(res0), "--rollouts", str(res1)) == 0
    req2 = tmp_path / "req2"
    assert export.main([str(run2), "--to", "requests", "--out", str(req2), "--model", "pol",
                        "--k", str(K)]) == 0
    record2, _, _ = _requests(req2)  # all-pass after a few samples is not yet too_easy: open
    assert record2["planner"]["fitted_in_round"] == "earlier"
    assert record2["priors"] == record1["priors"]
    # the empirical-Bayes mixture the planner used is recorded and read back unchanged
    mixtures = record1["prior_mixtures"]
    assert mixtures and record2["prior_mixtures"] == mixtures
    assert all(abs(sum(c[0] for c in rows) - 1.0) < 1e-6 and all(len(c) == 3 for c in rows)
               for rows in mixtures.values())
    assert any(len(rows) > 1 for rows in mixtures.values())
    assert record1["planner"]["mixture_bins"]
    not_asked_in_1 = set(_labels(run0)) - set(asked)
    assert not {q["query_id"] for q in record2["queries"]} & not_asked_in_1


def test_skip_predicted_lists_what_the_prior_alone_decided(loop, tmp_path):
    root, run0, req0, easy, labels = loop
    res0 = _answers(req0, labels, easy, "results-skip.jsonl")
    run1 = tmp_path / "run1"
    assert _build(run1, "--rollouts", str(res0), "--confidence", "0.6") == 0
    req1 = tmp_path / "req1"
    assert export.main([str(run1), "--to", "requests", "--out", str(req1), "--model", "pol",
                        "--k", str(K), "--skip-predicted"]) == 0
    record, _, _ = _requests(req1)
    predicted = record.get("predicted", {})
    asked = {q["query_id"] for q in record["queries"]}
    assert predicted and not set(predicted) & asked
    assert all(not in_reference(q, 0.5) for q in predicted)  # only unsampled queries
    assert set(predicted.values()) <= {"too_hard", "learnable", "too_easy"}


def test_prior_none_and_bad_share_options(loop, tmp_path, capsys):
    root, run0, req0, easy, labels = loop
    assert export.main([str(run0), "--to", "requests", "--out", str(tmp_path / "r"),
                        "--model", "pol", "--reference-share", "0"]) == 2
    assert "--reference-share" in capsys.readouterr().err


def test_results_gone_is_one_error_line_not_a_silent_refit(loop, tmp_path, capsys):
    root, run0, req0, easy, labels = loop
    folder = tmp_path / "req0"
    folder.mkdir()
    for name in ("requests.json", "requests.jsonl"):
        (folder / name).write_text((req0 / name).read_text())
    res0 = _answers(folder, labels, easy)
    run1 = tmp_path / "run1"
    assert _build(run1, "--rollouts", str(res0)) == 0
    res0.unlink()
    capsys.readouterr()
    assert export.main([str(run1), "--to", "requests", "--out", str(tmp_path / "r1"),
                        "--model", "pol", "--k", str(K)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--prior none" in err[0]
    assert export.main([str(run1), "--to", "requests", "--out", str(tmp_path / "r1"),
                        "--model", "pol", "--k", str(K), "--prior", "none"]) == 0


def test_a_requests_file_without_mixtures_reads_as_single_beta_priors():
    from data_contracts.readers.recorded_priors import RecordedPriors

    old = RecordedPriors(1, {"a": [2.0, 5.0]}, None)
    assert old.rows("a") == [[1.0, 2.0, 5.0]]
    assert old.rows("b") == [[1.0, 1.0, 1.0]] and old.informative_rows("b") is None
    new = RecordedPriors(1, {}, {"a": [[0.25, 1.0, 64.0], [0.75, 1.0, 1.0]]})
    assert new.rows("a") == [[0.25, 1.0, 64.0], [0.75, 1.0, 1.0]]
    assert new.rows("b") == [[1.0, 1.0, 1.0]] and new.query_ids() == ["a"]


def _tallies(run, ids):
    """(successes [N], trials [N], {query id: difficulty row}) of a build, 0 where unscored."""
    rows = {r["query_id"]: r for r in _phase(run, "difficulty").to_pylist()}
    s = np.array([rows[q]["successes"] if q in rows else 0 for q in ids], np.int64)
    t = np.array([rows[q]["trials"] if q in rows else 0 for q in ids], np.int64)
    return s, t, rows


def _planner_table(run, record, ids, round_):
    """The plan `--to requests` makes from a build: plan_round on its tallies under the prior
    `record` (a requests.json) recorded."""
    from data_contracts.readers.recorded_priors import RecordedPriors
    from difficulty.estimate import BandConfig
    from difficulty.planner import MixturePrior, PlanConfig, plan_round

    recorded = RecordedPriors(record["round"], record["priors"], record.get("prior_mixtures"))
    s, t, _ = _tallies(run, ids)
    manifest = load_manifest(str(run))
    return plan_round(ids, s, t, BandConfig(**manifest["config"]["bands"]),
                      PlanConfig(k0=K, k_max=16), round_,
                      prior=MixturePrior.from_rows([recorded.rows(q) for q in ids]))


def _export(run, out) -> dict:
    assert export.main([str(run), "--to", "requests", "--out", str(out), "--model", "pol",
                        "--k", str(K)]) == 0
    return _requests(out)[0] if (out / "requests.json").exists() else None


def test_build_from_results_bands_every_query_as_the_planner_does(loop, tmp_path):
    """Issue #28: a query the planner stops asking (decided under the recorded prior) is
    written decided, with the planner's band, by the build that reads the results; the loop
    ends with a fully decided build whose next requests are empty, with the diversity quota on
    (an undecided query it thins stays pending, so a later round asks it; at confidence 0.9,
    16 of 16 passes can stay undecided under the robust prior, hence 0.8)."""
    from difficulty.estimate import BandConfig, decide

    root, run0, req0, easy, labels = loop
    ids = sorted(_labels(run0))
    options = ("--confidence", "0.8")
    res0, run, req1 = _round1(loop, tmp_path, *options)
    results = [res0]
    record = prior_record = _requests(req1)[0]
    for round_ in range(2, 12):
        results.append(_answers(tmp_path / f"req{round_ - 1}", labels, easy))
        run = tmp_path / f"run{round_}"
        assert _build(run, *[a for r in results for a in ("--rollouts", str(r))],
                      *options) == 0
        plan = _planner_table(run, prior_record, ids, round_).to_pylist()
        s, t, rows = _tallies(run, ids)
        for p in plan:  # the build's band is the planner's, decided exactly where it stops
            row = rows[p["query_id"]]
            assert (row["band"], row["decided"], row["band_confidence"]) == \
                (p["band"], p["status"] == "decided", p["band_probability"]), p
            assert f"{PRIOR_RULE} {prior_record['round']}" in row["rule"]
        # some queries are decided by the samples under the prior, not under Beta(1, 1)
        beta11 = decide(s, t, BandConfig(**load_manifest(str(run))["config"]["bands"]))[2]
        assert round_ > 2 or any(rows[q]["decided"] and not d for q, d in zip(ids, beta11))
        rounds = load_manifest(str(run))["rollouts"]["rounds"]
        assert sum(r.get("decided", 0) for r in rounds) == sum(r["decided"] for r in
                                                               rows.values())
        record = _export(run, tmp_path / f"req{round_}")
        if record is not None:  # the prior is kept, each round recording it again
            assert record["prior_mixtures"] == prior_record["prior_mixtures"]
            prior_record = record
        asked = set() if record is None else {q["query_id"] for q in record["queries"]}
        assert asked == {p["query_id"] for p in plan if p["status"] == "open"}
        if record is None:
            break
    assert record is None and round_ >= 3, "the loop ends after more than one prior round"
    assert all(r["decided"] for r in rows.values()) and len(rows) == len(ids)
    assert not (tmp_path / f"req{round_}" / "requests.jsonl").exists()


def test_a_query_without_an_informative_prior_keeps_the_beta11_band(loop, tmp_path):
    from difficulty.estimate import BAND_NAMES, BandConfig, decide

    root, run0, req0, easy, labels = loop
    res0, run1, req1 = _round1(loop, tmp_path)
    record = _requests(req1)[0]
    gone = sorted(record["prior_mixtures"])[:3]  # as if the prior left them uninformative
    for q in gone:
        del record["prior_mixtures"][q]
    (req1 / "requests.json").write_text(json.dumps(record))
    res1 = _answers(req1, labels, easy)
    run2 = tmp_path / "run2"
    assert _build(run2, "--rollouts", str(res0), "--rollouts", str(res1)) == 0
    s, t, rows = _tallies(run2, gone)
    band, prob, decided = decide(s, t, BandConfig(**load_manifest(str(run2))["config"]["bands"]))
    for i, q in enumerate(gone):
        assert (rows[q]["band"], rows[q]["band_confidence"], rows[q]["decided"]) == \
            (BAND_NAMES[band[i]], prob[i], decided[i])
        assert PRIOR_RULE not in rows[q]["rule"]
    assert sum(f"{PRIOR_RULE} 1" in r["rule"] for r in rows.values()) == \
        len(rows) - len(gone)


def test_the_latest_round_with_priors_among_batch_output_files_holds_the_prior(tmp_path):
    """latest_recorded_priors: the highest round whose requests.json has `priors`, among the
    files that are batch output; a plain log (even beside a requests.json) has none; a batch
    output file without its requests.json is one InputError."""
    from data_contracts.errors import InputError
    from data_contracts.readers.batch_results import REQUESTS_KIND, REQUESTS_VERSION
    from data_contracts.readers.recorded_priors import latest_recorded_priors

    def folder(name, round_, **extra):
        path = tmp_path / name
        path.mkdir()
        record = {"kind": REQUESTS_KIND, "version": REQUESTS_VERSION, "run": {"tag": "t"},
                  "round": round_, "requests": 0, "queries": [], **extra}
        (path / "requests.json").write_text(json.dumps(record))
        return path

    line = json.dumps({"custom_id": "rc:t:0:0:a", "error": {"message": "x"}}) + "\n"
    sources = []
    for name, round_, extra in (("r0", 0, {}), ("r2", 2, {"priors": {"a": [2.0, 3.0]}}),
                                ("r1", 1, {"priors": {"a": [5.0, 1.0]},
                                           "prior_mixtures": {"a": [[1.0, 5.0, 1.0]]}})):
        (folder(name, round_, **extra) / "results.jsonl").write_text(line)
        sources.append((str(tmp_path / name / "results.jsonl"), None))
    found = latest_recorded_priors(sources)
    assert found.round == 2 and found.mixtures is None and found.rows("a") == [[1.0, 2.0, 3.0]]
    log = folder("log", 5, priors={"a": [9.0, 9.0]}) / "log.jsonl"
    log.write_text(json.dumps({"query_id": "a", "rollout_id": "1", "generation": "[1]"}) + "\n")
    assert latest_recorded_priors(sources + [(str(log), None)]).round == 2
    assert latest_recorded_priors([(str(log), None)]) is None
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "results.jsonl").write_text(line)
    with pytest.raises(InputError, match="requests.json"):
        latest_recorded_priors([(str(lone / "results.jsonl"), None)])
