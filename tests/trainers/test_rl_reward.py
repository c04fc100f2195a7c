"""`--rl-reward`: the 0/1 pass (default, unchanged) or the reward's graded metric value as the
rollout reward of RL's group-relative advantage."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from data_contracts.errors import InputError
from difficulty.sampler import group_advantage, informative_groups, rollout_reward
from trainers.config import TrainConfig, check_config
from trainers.train import train

# two queries, four rollouts each: query 0 fails every rollout at different NDCG@10 values,
# query 1 passes two of them (tau 0.7)
VALUE = np.array([[0.10, 0.35, 0.62, 0.20], [0.90, 0.40, 0.75, 0.50]])
PASSED = VALUE >= 0.7


def test_graded_gives_advantages_where_pass_gives_an_all_zero_group():
    pass_adv = group_advantage(torch.from_numpy(rollout_reward(VALUE, PASSED, "pass")))
    graded_adv = group_advantage(torch.from_numpy(rollout_reward(VALUE, PASSED, "graded")))
    assert torch.count_nonzero(pass_adv[0]) == 0  # an all-fail group teaches nothing
    assert torch.all(graded_adv[0] != 0)  # ... unless the reward is graded
    assert torch.argmax(graded_adv[0]) == 2  # the nearest miss is pushed up most
    assert informative_groups(PASSED).tolist() == [False, True]
    assert informative_groups(rollout_reward(VALUE, PASSED, "graded")).tolist() == [True, True]
    # within the mixed group the passing rollouts get the positive advantages under both
    assert (pass_adv[1] > 0).tolist() == PASSED[1].tolist()
    assert (graded_adv[1] > 0).tolist() == PASSED[1].tolist()


def test_pass_is_the_old_advantage_bit_for_bit():
    r = torch.from_numpy(PASSED.astype(np.float32))
    old = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + 1e-6)  # before the option
    new = group_advantage(torch.from_numpy(rollout_reward(VALUE, PASSED, "pass")))
    assert new.dtype == torch.float32 and torch.equal(new, old)


def test_an_unknown_rl_reward_is_refused():
    with pytest.raises(InputError, match="--rl-reward"):
        check_config(TrainConfig(rl_reward="ndcg"))
    with pytest.raises(ValueError, match="expected one of"):
        rollout_reward(VALUE, PASSED, "ndcg")


def _rl_rows(out: str) -> list[dict]:
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as handle:
        return [r for r in map(json.loads, handle) if r.get("phase") == "rl"]


def test_graded_rl_trains_on_more_informative_groups(small_run, tmp_path):
    runs = {}
    for kind in ("pass", "graded"):
        out = str(tmp_path / kind)
        train(TrainConfig(manifest=small_run, out=out, bc_steps=4, rl_steps=6, eval_every=3,
                          group_size=8, diagnostic_rollouts=4, train_sample=20, seed=3,
                          rl_reward=kind, progress_seconds=60.0))
        runs[kind] = _rl_rows(out)
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as handle:
            assert json.load(handle)["config"]["rl_reward"] == kind
    pass_inf = [r["informative_fraction"] for r in runs["pass"]]
    graded_inf = [r["informative_fraction"] for r in runs["graded"]]
    assert all(g == 1.0 for g in graded_inf)  # sampled NDCG values within a group differ
    assert min(pass_inf) < 1.0  # some all-pass or all-fail group under the 0/1 reward
    # the first RL step samples the same rankings from the same BC policy: same pass rate,
    # graded reward mean = mean NDCG@10 of those rankings (not a 0/1 mean)
    assert runs["pass"][0]["entropy"] == runs["graded"][0]["entropy"]
    assert runs["graded"][0]["reward_mean"] != runs["pass"][0]["reward_mean"]
