"""The LLM arm (trainers/llm, `python -m trainers.llm_experiment`): the report's arithmetic, the
untrained policy's outputs as the build counts them, a --quick run end to end (twice: the same
results.jsonl bytes), and one cell of the committed full run rerun (drift). Needs the `[llm]`
extra; skipped without it."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("trl", reason="the [llm] extra (trl, transformers) is not installed")
pytest.importorskip("datasets", reason="datasets is not installed")

from trainers import llm_experiment  # noqa: E402
from trainers.llm import measure as M  # noqa: E402
from trainers.llm import report  # noqa: E402
from trainers.llm.experiment import (RL, choose_setting, equal_compute_budget,  # noqa: E402
                                     sweep_settings)
from trainers.llm.phases import converged_step  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMITTED = os.path.join(REPO, "docs", "llm-arm", "results.jsonl")


def _rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_spearman_matches_scipy_with_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = [0.3, 0.1, 0.1, 0.9, 0.5, 0.5, 0.2]
    y = [1.0, 0.0, 0.2, 0.7, 0.7, 0.1, 0.3]
    assert report.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y)[0], abs=1e-12)
    assert report.spearman([1, 1, 1], [1, 2, 3]) is None  # a constant side has no rank order


def test_converged_step_is_the_first_within_tolerance_of_the_minimum():
    curve = [(0, 6.0), (20, 1.0), (40, 0.75), (60, 0.74), (80, 0.72), (100, 0.9)]
    assert converged_step(curve, tolerance=0.02) == 80  # 0.74 > 0.72 * 1.02
    assert converged_step(curve, tolerance=0.05) == 40  # 0.75 <= 0.72 * 1.05
    assert converged_step(curve, tolerance=0.0) == 80


def test_the_sweep_is_the_base_and_one_factor_at_a_time():
    base = RL(lr=3e-4, beta=0.0, reward="pass")
    names = [r.name for r in sweep_settings(base)]
    assert names == ["lr=0.0003,beta=0,reward=pass", "lr=0.0001,beta=0,reward=pass",
                     "lr=0.0009,beta=0,reward=pass", "lr=0.0003,beta=0.04,reward=pass",
                     "lr=0.0003,beta=0,reward=value", "lr=0.0003,beta=0,reward=pass,steps=x4"]
    assert [r.grpo_steps(40) for r in sweep_settings(base)] == [40] * 5 + [160]


@pytest.mark.parametrize("text,want", [
    ("0.0003,0,pass", RL(3e-4, 0.0, "pass")),
    ("0.0009,0.04,value,x4", RL(9e-4, 0.04, "value", 4.0)),
])
def test_an_rl_setting_reads_back_from_its_name_values(text, want):
    assert RL.parse(text) == want
    assert RL.parse(",".join(p.split("=")[1] for p in want.name.split(","))) == want


@pytest.mark.parametrize("text", ["0.0003,0", "0.0003,0,ndcg", "0.0003,0,pass,4",
                                  "0.0003,0,pass,x0", "fast,0,pass", "0.0003,0,pass,x4,1"])
def test_a_bad_rl_setting_is_refused(text):
    with pytest.raises(ValueError):
        RL.parse(text)


def test_the_sweep_chooses_on_the_mean_over_seeds_ties_to_the_earlier():
    settings = sweep_settings(RL())
    rows = [{"setting": rl.name, "seed": seed, "val_pass_rate": 0.1}
            for rl in settings for seed in (0, 1, 2)]
    assert choose_setting(settings, rows) == settings[0]  # all tied: the base
    rows[3 * 5 + 0]["val_pass_rate"] = 0.4  # x4 steps: mean 0.2, from seed 0 alone
    rows[3 * 2 + 1]["val_pass_rate"] = 0.2  # lr x3: better at two seeds, mean 0.167
    rows[3 * 2 + 2]["val_pass_rate"] = 0.2
    assert choose_setting(settings, rows) == settings[5]
    rows[3 * 5 + 0]["val_pass_rate"] = 0.2  # x4: mean 0.133
    assert choose_setting(settings, rows) == settings[2]
    with pytest.raises(ValueError, match="no sweep row"):
        choose_setting(settings, rows[:-3])


def test_verdicts_need_every_seed():
    rows = [{"kind": "arm", "seed": s, "arm": a, "pass_rate": p, "informative": i}
            for s, values in enumerate([(0.1, 0.3, 0.5), (0.1, 0.3, 0.2)])
            for a, p, i in zip(("grpo", "sft@converged", "sft@converged+grpo"), values,
                               (0, 0, 0))]
    rows += [{"kind": "arm", "seed": s, "arm": "untrained", "pass_rate": 0.0,
              "informative": 0.0} for s in (0, 1)]
    v = report.verdicts(rows)
    assert v["sft_then_rl_margin"] == pytest.approx(np.mean([0.2, -0.1]))
    assert not v["sft_then_rl_holds"]  # seed 1's margin is negative
    assert v["informative_margin"] == 0.0 and not v["informative_holds"]


def test_equal_compute_gives_every_side_the_same_rollouts():
    budget = equal_compute_budget({"filtered": 37, "unfiltered": 400}, 40, 2, 8)
    assert budget["filtered"]["rl_rollouts"] == budget["unfiltered"]["rl_rollouts"] == 40 * 2 * 8
    assert budget["filtered"]["rl_steps"] == budget["unfiltered"]["rl_steps"] == 40
    assert (budget["filtered"]["rl_prompts"], budget["unfiltered"]["rl_prompts"]) == (37, 400)
    empty = equal_compute_budget({"filtered": 0, "unfiltered": 400}, 40, 2, 8)
    assert all(side["rl_rollouts"] == 0 for side in empty.values())  # nothing to compare
    with pytest.raises(ValueError):
        equal_compute_budget({"filtered": 3, "unfiltered": 4}, 0, 2, 8)


def test_equal_compute_verdict_needs_every_seed():
    def rows(margins):
        return [{"kind": "equal", "seed": s, "side": side,
                 "pass_rate": 0.5 + (m if side == "filtered" else 0.0)}
                for s, m in enumerate(margins) for side in ("filtered", "unfiltered")]

    assert report.equal_compute_verdict(rows([0.1, 0.2]))["verdict"] == "holds"
    assert report.equal_compute_verdict(rows([0.1, -0.05]))["verdict"] == "not reproduced"
    assert report.equal_compute_verdict(rows([-0.1, -0.05]))["verdict"] == "contradicted"
    v = report.equal_compute_verdict(rows([0.1, -0.05]))
    assert v["margins"] == pytest.approx([0.1, -0.05]) and v["margin"] == pytest.approx(0.025)
    assert report.equal_compute_verdict([])["verdict"] == "not measured"


@pytest.mark.slow
def test_filtered_and_unfiltered_exports_differ_exactly_by_the_too_hard_queries(tmp_path):
    """One results file (every sample of a third of the queries unparseable, the rest random
    rankings) built twice: the unfiltered export's RL prompts are the filtered one's plus the
    build's too_hard queries (less those the export holds out as validation, by query id), and
    nothing else."""
    import zlib

    from trainers.llm.experiment import _rl_rows
    from trainers.llm.policy import _requests, _result_line

    task = M.Task(train_queries=60, heldout_queries=4)
    log = str(tmp_path / "log")
    prepared = M.prepare(str(tmp_path / "work"), task, log)
    requests = M.export_requests(prepared, task, str(tmp_path / "req"), 8, 16, 0, log,
                                 run="train_pending")
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / "requests.json").write_bytes((tmp_path / "req" / "requests.json").read_bytes())
    rng = np.random.default_rng(0)
    lines = []
    for i, request in enumerate(_requests(requests)):
        query = request["body"]["messages"][-1]["content"]
        if zlib.crc32(query.encode()) % 3 == 0:
            text = "no ranking here"
        else:
            text = " > ".join(f"[{d}]" for d in rng.permutation(task.depth) + 1)
        lines.append(_result_line(i, request, text, "stop", 10, 10))
    (folder / "results.jsonl").write_text("".join(lines), encoding="utf-8")
    cur = M.curricula_from_results(prepared, task, str(folder / "results.jsonl"),
                                   str(tmp_path / "cur"), log)
    assert cur["bands"].get("too_hard", 0) > 0 and cur["bands"].get("learnable", 0) > 0
    from curricula.hashing import is_validation
    from data_contracts.manifest import load_manifest
    from exports.source import read_phase

    filtered = {r["query_id"] for r in _rl_rows(cur["filtered"])}
    unfiltered = {r["query_id"] for r in _rl_rows(cur["unfiltered"])}
    table = read_phase(load_manifest(str(tmp_path / "cur" / "filtered")), "difficulty")
    hard = {q for q, b in zip(table.column("query_id").to_pylist(),
                              table.column("band").to_pylist()) if b == "too_hard"}
    # the export holds a fraction of every phase's queries out as validation, by query id
    fraction = M.read_json(os.path.join(cur["unfiltered"], "export.json"))["val_fraction"]
    held = {q for q, v in zip(sorted(hard), is_validation(sorted(hard), fraction)) if v}
    assert hard - held
    assert filtered and not filtered & hard
    assert unfiltered - filtered == hard - held and filtered <= unfiltered


def test_an_unknown_arm_is_one_error_line(tmp_path, capsys):
    assert llm_experiment.main(["--out", str(tmp_path / "o"), "--arms", "sft@deep"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --arms: unknown arm(s) sft@deep") and err.count("\n") == 1
    assert llm_experiment.main(["--out", str(tmp_path / "o"), "--rl", "fast,0,pass"]) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_untrained_policy_writes_what_the_build_counts_malformed(tmp_path):
    """The fresh model's samples go through requests -> results -> build and every rollout is
    counted malformed (truncated or no ranking) and failed."""
    from trainers.llm.phases import load_rows
    from trainers.llm.policy import build_model, set_determinism, train_tokenizer

    task = M.Task(train_queries=60, heldout_queries=8)
    log = str(tmp_path / "log")
    prepared = M.prepare(str(tmp_path / "work"), task, log)
    rows = load_rows(os.path.join(prepared["trl"], "imitation.parquet"))
    set_determinism(0)
    tokenizer = train_tokenizer([m["content"] for r in rows
                                 for m in r["prompt"] + r["completion"]])
    requests = M.export_requests(prepared, task, str(tmp_path / "req"), 4, 16, 0, log)
    values = M.measure(build_model(tokenizer, 0), tokenizer, prepared, task, requests,
                       str(tmp_path / "m"), log)
    assert values["rollouts"] == 32 and values["queries"] == 8
    assert values["malformed"] == 1.0 and values["pass_rate"] == 0.0
    assert values["informative"] == 0.0 and values["ndcg10"] == 0.0
    with open(tmp_path / "m" / "results.jsonl", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert len(lines) == 32 and all(line["response"]["status_code"] == 200 for line in lines)


@pytest.mark.slow
def test_quick_run_end_to_end_and_deterministic(tmp_path):
    outs = [str(tmp_path / f"q{i}") for i in range(2)]
    for out in outs:
        assert llm_experiment.main(["--quick", "--out", out]) == 0
        assert sorted(os.listdir(out)) == ["commands.log", "llm_claims.md", "results.jsonl",
                                           "timings.jsonl"]
        assert not os.path.exists(out + ".partial")
    first, second = (open(os.path.join(o, "results.jsonl"), "rb").read() for o in outs)
    assert first == second  # the same settings and seed: the same bytes
    rows = {r.get("arm"): r for r in _rows(os.path.join(outs[0], "results.jsonl"))}
    assert set(rows) == {None, "untrained", "grpo", "sft@converged", "sft@converged+grpo"}
    assert rows["untrained"]["malformed"] == 1.0 and rows["untrained"]["pass_rate"] == 0.0
    assert rows["sft@converged"]["entropy"] < rows["untrained"]["entropy"]
    claims = open(os.path.join(outs[0], "llm_claims.md"), encoding="utf-8").read()
    assert "SFT then RL beats either alone" in claims and "| sft@converged+grpo |" in claims


@pytest.mark.slow
def test_one_cell_of_the_committed_run_reruns_to_the_same_row(tmp_path):
    """Reruns seed 1's `sft@converged+grpo` cell (SFT, GRPO with the setting the committed run
    chose, the measurement) and checks its row is the committed one (docs/llm-arm, written by
    the README block's command); minutes."""
    committed = _rows(COMMITTED)
    chosen = next(r for r in committed if r["kind"] == "settings")["chosen"]
    setting = ",".join(part.split("=")[1] for part in chosen.split(","))  # LR,BETA,REWARD[,xF]
    out = str(tmp_path / "cell")
    assert llm_experiment.main(["--out", out, "--seeds", "1", "--arms", "sft@converged+grpo",
                                "--rl", setting]) == 0
    (row,) = [r for r in _rows(os.path.join(out, "results.jsonl")) if r["kind"] == "arm"]
    (want,) = [r for r in committed if r.get("arm") == "sft@converged+grpo"
               and r.get("seed") == 1]
    assert row == want


def test_an_rl_setting_reads_back_from_its_name():
    for rl in sweep_settings(RL()):  # a name rounds (lr / 3 reads back as 0.0001)
        back = RL.from_name(rl.name)
        assert back.name == rl.name and back.grpo_steps(40) == rl.grpo_steps(40)
    with pytest.raises(ValueError):
        RL.from_name("0.0003,0,pass")
