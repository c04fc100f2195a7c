"""Bad inputs to the LLM loop's build (issue #28): each is one `error:` line (exit 2) before
any band is written, never a silently miscounted or differently-banded run."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.pipelines.test_llm_loop_prior import K, _answers, _build, loop  # noqa: F401
from pipelines import export


@pytest.fixture(scope="module")
def two_rounds(loop, tmp_path_factory):  # noqa: F811
    """Round 0's and round 1's results (round 1 with a recorded prior)."""
    root, run0, req0, easy, labels = loop
    tmp = tmp_path_factory.mktemp("faults")
    req0c = tmp / "req0"
    shutil.copytree(req0, req0c)
    res0 = _answers(req0c, labels, easy)
    run1 = tmp / "run1"
    assert _build(run1, "--rollouts", str(res0)) == 0
    req1 = tmp / "req1"
    assert export.main([str(run1), "--to", "requests", "--out", str(req1), "--model", "pol",
                        "--k", str(K)]) == 0
    res1 = _answers(req1, labels, easy)
    return tmp, res0, res1


def _one_error(capsys, rc, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for word in words:
        assert word in err[0], err[0]


@pytest.mark.parametrize("case", ["same_file_twice", "round1_without_round0",
                                  "requests_replaced_by_round0s"])
def test_each_round_is_read_once_and_after_the_rounds_it_was_planned_from(two_rounds, tmp_path,
                                                                          capsys, case):
    """A round's results given twice would count its requests twice (asked 640 of 320); round
    1 without round 0 would band its queries on a part of their samples and ask the next round
    again from sample 0; a results file whose requests.json is another round's reads nothing."""
    tmp, res0, res1 = two_rounds
    if case == "same_file_twice":
        files = [res0, res0]
    elif case == "round1_without_round0":
        files = [res1]
    else:
        swapped = tmp_path / "req1"
        shutil.copytree(res1.parent, swapped)
        shutil.copy(res0.parent / "requests.json", swapped / "requests.json")
        files = [res0, swapped / res1.name]
    capsys.readouterr()
    rc = _build(tmp_path / "run", *[a for f in files for a in ("--rollouts", str(f))])
    _one_error(capsys, rc, "round")
    assert not (tmp_path / "run" / "manifest.json").exists()


def _edit(tmp, res1, tmp_path, edit):
    folder = tmp_path / "req1"
    shutil.copytree(res1.parent, folder)
    record = json.loads((folder / "requests.json").read_text())
    query = sorted(record["prior_mixtures"])[0]
    edit(record, query)
    (folder / "requests.json").write_text(json.dumps(record))
    return folder / res1.name


def _scale_weights(record, query):
    record["prior_mixtures"][query][0][0] *= 3


def _negative_alpha(record, query):
    record["prior_mixtures"][query][0][1] = -1.0


def _zero_weights(record, query):
    for component in record["prior_mixtures"][query]:
        component[0] = 0.0


def _not_components(record, query):
    record["prior_mixtures"][query] = "x"


def _negative_prior(record, query):
    record["priors"][query] = [0.0, 2.0]


@pytest.mark.parametrize("edit", [_scale_weights, _negative_alpha, _zero_weights,
                                  _not_components, _negative_prior])
def test_an_edited_recorded_prior_is_one_error_line(two_rounds, tmp_path, capsys, edit):
    """A recorded prior the planner could not have written (weights not summing to 1, a
    non-positive alpha or beta, not [weight, alpha, beta] rows) is refused, by the build and
    by the next round's export alike, instead of being rescaled or crashing a worker."""
    tmp, res0, res1 = two_rounds
    edited = _edit(tmp, res1, tmp_path, edit)
    capsys.readouterr()
    rc = _build(tmp_path / "run", "--rollouts", str(res0), "--rollouts", str(edited))
    _one_error(capsys, rc, "requests.json")


def _mixed(q: str, sample: int) -> bool:
    """A simulated policy's pass of one sample: crc32-spread per-query pass rates in [0, 1)."""
    import zlib
    return zlib.crc32(f"{q}:{sample}".encode()) % 100 < zlib.crc32(q.encode()) % 100


def test_a_query_decided_before_the_prior_is_fitted_is_never_asked_again(tmp_path):
    """The round that fits the prior (round 1 after a 0.3 reference round) must not re-ask a
    query round 0's build decided under Beta(1, 1): the fitted prior would otherwise move it
    back to undecided (1 of 8 here), and the build after it would band it differently."""
    from tests.pipelines.test_llm_loop import _answer, _ideal_text, _labels, _phase, _requests

    run0 = tmp_path / "run0"
    assert _build(run0, "--policy", "none") == 0
    labels = _labels(run0)
    req0 = tmp_path / "req0"
    assert export.main([str(run0), "--to", "requests", "--out", str(req0), "--model", "pol",
                        "--k", str(K), "--reference-share", "0.3"]) == 0
    _, lines, orders = _requests(req0)
    answers = []
    for x in lines:
        _, _, _, sample, q = x["custom_id"].split(":", 4)
        answers.append(_answer(x["custom_id"], _ideal_text(orders[q], labels[q],
                                                           worst=not _mixed(q, int(sample)))))
    res0 = req0 / "results.jsonl"
    res0.write_text("".join(json.dumps(a) + "\n" for a in answers))
    run1 = tmp_path / "run1"
    assert _build(run1, "--rollouts", str(res0)) == 0
    decided = {r["query_id"] for r in _phase(run1, "difficulty").to_pylist() if r["decided"]}
    assert decided, "round 0 decides some queries under Beta(1, 1)"
    req1 = tmp_path / "req1"
    assert export.main([str(run1), "--to", "requests", "--out", str(req1), "--model", "pol",
                        "--k", str(K)]) == 0
    record = _requests(req1)[0]
    assert record["planner"]["fitted_in_round"] == 1
    assert not decided & {q["query_id"] for q in record["queries"]}
    assert not decided & set(record.get("prior_mixtures", {}))  # their band stays Beta(1, 1)'s


def test_prior_none_after_a_learned_round_is_refused_and_decided_queries_are_not_reasked(
        loop, tmp_path, capsys):  # noqa: F811
    """After a round recorded a learned prior, `--prior none` is one error line (the run's
    bands rest on the prior: planning without it re-asked 12 of 20 queries decided under it,
    and later builds flipped them undecided); the next learned round never re-asks a query the
    build decided; README: "A decided query is never asked again"."""
    from tests.pipelines.test_llm_loop import _phase, _requests
    from tests.pipelines.test_llm_loop_prior import _round1

    root, run0, req0, easy, labels = loop
    res0, run1, req1 = _round1(loop, tmp_path)
    res1 = _answers(req1, labels, easy)
    run2 = tmp_path / "run2"
    assert _build(run2, "--rollouts", str(res0), "--rollouts", str(res1)) == 0
    decided = {r["query_id"] for r in _phase(run2, "difficulty").to_pylist() if r["decided"]}
    assert decided
    req2 = tmp_path / "req2"
    capsys.readouterr()
    assert export.main([str(run2), "--to", "requests", "--out", str(req2), "--model", "pol",
                        "--k", str(K), "--prior", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--prior learned" in err[0]
    assert not req2.exists()
    assert export.main([str(run2), "--to", "requests", "--out", str(req2), "--model", "pol",
                        "--k", str(K)]) == 0
    record = _requests(req2)[0]
    assert record["queries"] and not decided & {q["query_id"] for q in record["queries"]}
