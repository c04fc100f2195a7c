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
