"""Scores a batch of queries: rollouts from a policy (or a log), rewards, and the difficulty columns.

Plain numpy/torch on Arrow tables; the Beam pipeline calls these per batch.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from data_contracts.arrays import pad_queries
from data_contracts.schema import DIFFICULTY_FIELDS, SCORED_QUERY_SCHEMA
from data_contracts.teacher import teacher_scores
from difficulty.generations import TRUNCATED, parse_generation
from difficulty.estimate import BAND_NAMES, BandConfig, Budget, band_of_rate, summarize
from difficulty.policy import PolicyScorer
from difficulty.rewards import RewardSpec, evaluate, ideal_dcg, judged_matrix, reference_order
from difficulty.sampler import gumbel_noise, sample_rankings


@dataclass(frozen=True)
class ScoringConfig:
    """How queries are scored.

    Attributes:
      reward: the reward that verifies a rollout.
      budget: rollouts per round, maximum, adaptive or not.
      bands: the band rule.
      temperature: Plackett-Luce temperature of the sampled rankings.
      seed: seeds every query's stream with (seed, query id, round).
      teacher_mode: where the `teacher` policy's scores come from.
      rollout_format: how a log's `generation` text is parsed: `permutation` or `answer`
        (difficulty/generations.py).
      malformed: a malformed generation is a failed rollout (`fail`) or repaired (`repair`).
    """

    reward: RewardSpec
    budget: Budget = field(default_factory=Budget)
    bands: BandConfig = field(default_factory=BandConfig)
    temperature: float = 1.0
    seed: int = 0
    teacher_mode: str = "auto"
    rollout_format: str = "permutation"
    malformed: str = "fail"


def deterministic_outcome(labels: np.ndarray, mask: np.ndarray, n_docs: np.ndarray,
                          spec: RewardSpec) -> list[str | None]:
    """Per query, why every ranking gets the same reward (a stated rule), or None.

    - `single_document`: only one ranking exists.
    - `no_relevant_documents`: all labels 0, so NDCG (ideal DCG 0) and hit@1 are 0 for any ranking.
    - `all_labels_equal`: every ranking has the same gains.
    """
    idcg = ideal_dcg(labels, mask, max(spec.k, 1))
    n_docs = np.asarray(n_docs)
    inside = np.arange(labels.shape[1])[None, :] < n_docs[:, None]  # labels[i, :n_docs[i]]
    equal = np.all((labels == labels[:, :1]) | ~inside, axis=1)
    return ["single_document" if n == 1 else "no_relevant_documents" if none else
            "all_labels_equal" if same else None
            for n, none, same in zip(n_docs.tolist(), (idcg == 0).tolist(), equal.tolist())]


def difficulty_table(queries: pa.Table, policy_id: str, tallies: dict, rules: list[str],
                     cfg: BandConfig, overrides: list | None = None,
                     planned: dict | None = None) -> pa.Table:
    """Joins the query columns with the difficulty columns into SCORED_QUERY_SCHEMA.

    `planned` (from `_planned_rounds` with a learned prior, or `_recorded_prior_bands` for
    results planned under a recorded prior): the planner's band, confidence and decided flag of
    those rows replace estimate.decide's; deterministic `overrides` still win.
    """
    columns = summarize(tallies["successes"], tallies["trials"], tallies["reward_sum"],
                        tallies["reward_sq_sum"], cfg)
    if planned is not None:
        rows = planned["rows"]
        columns["band"] = np.asarray(columns["band"], dtype=object)
        columns["band"][rows] = planned["band"]
        columns["band_confidence"] = np.asarray(columns["band_confidence"], float).copy()
        columns["band_confidence"][rows] = planned["band_confidence"]
        columns["decided"] = np.asarray(columns["decided"], bool).copy()
        columns["decided"][rows] = planned["decided"]
    columns["rule"] = np.array(rules, dtype=object)
    if overrides is not None:  # deterministic outcomes are decided with certainty
        fixed = np.array([o is not None for o in overrides], dtype=bool)
        # every rollout of such a query has the same outcome, so its pass rate is exactly
        # successes / trials (0 or 1) and its band follows from the band rule, whatever the
        # posterior's most probable band after few trials would be
        trials = np.asarray(tallies["trials"], float)
        exact = np.divide(tallies["successes"], trials, out=np.zeros(len(trials)),
                          where=trials > 0)
        fixed &= trials > 0
        columns["band"] = np.where(fixed, BAND_NAMES[band_of_rate(exact, cfg)], columns["band"])
        columns["decided"] = columns["decided"] | fixed
        columns["band_confidence"] = np.where(fixed, 1.0, columns["band_confidence"])
        columns["rule"] = np.where(fixed, [f"deterministic:{o}" for o in overrides],
                                   columns["rule"])
    arrays = {name: queries.column(name) for name in queries.column_names}
    arrays["policy_id"] = pa.array([policy_id] * queries.num_rows, pa.string())
    for name in ("malformed_rollouts", "malformed_reasons"):  # only for parsed generations
        if tallies.get(name) is not None:
            columns[name] = tallies[name]
    for fld in DIFFICULTY_FIELDS:
        arrays[fld.name] = (pa.array(columns[fld.name], type=fld.type) if fld.name in columns
                            else pa.nulls(queries.num_rows, fld.type))
    return pa.table(arrays, schema=SCORED_QUERY_SCHEMA)


def rbo_reference(queries: pa.Table, mask: np.ndarray, spec: RewardSpec) -> np.ndarray | None:
    """[B, D] the reference order of a reward's RBO term: the teacher's order where a query has
    a teacher column, else the labels' ideal order; None when the reward has no RBO term."""
    if not any(m == "rbo" for _, m, _ in spec.terms):
        return None
    scores, has = teacher_scores(queries, "column")
    labels = pad_queries(queries).labels
    basis = np.where(has[:, None], scores, labels)
    return reference_order(basis, mask)


def judged_of(queries: pa.Table, spec: RewardSpec) -> np.ndarray | None:
    """[B, J] the queries' `judged_labels` (0-padded; zeros where null) when the reward's ideal is
    `qrels`, else None (the window's ideal needs no more than the labels)."""
    if spec.ideal != "qrels" or "judged_labels" not in queries.column_names:
        return None
    return judged_matrix(queries.column("judged_labels").to_pylist())


def _parse_row(row: dict, n_docs: int, cfg: ScoringConfig, tally: Counter) -> dict:
    """A rollout whose `generation` is parsed: its ranking (document indices), or a failed
    rollout.

    A row read from OpenAI batch results carries `_align` (prompt position -> index into the
    query's documents, from its recorded `candidate_order`): its `[k]` is read against the
    order the prompt listed (n = that order's length) and mapped through `_align`. A row marked
    `malformed == "truncated"` (cut by the server's max tokens) is a failed rollout counted as
    `truncated`, whatever its text holds.
    """
    if row.get("malformed") == TRUNCATED:
        tally[TRUNCATED] += 1
        return {**row, "_indices": None, "_failed": True}
    if row.get("ranking") is not None or row.get("generation") is None:
        return row
    align = row.get("_align")
    n = len(align) if align is not None else n_docs
    parsed = parse_generation(row["generation"], n, cfg.rollout_format, cfg.malformed)
    if parsed.reason is not None:
        tally[parsed.reason] += 1
    ranking = parsed.ranking
    if ranking is not None and align is not None:
        ranking = [align[p] for p in ranking]
    return {**row, "_indices": ranking, "_failed": ranking is None}


def score_with_policy(queries: pa.Table, scorer: PolicyScorer, cfg: ScoringConfig
                      ) -> tuple[pa.Table, int]:
    """Samples rollouts from the policy in rounds and estimates each query's difficulty.

    Args:
      queries: validated queries (QUERY_SCHEMA).
      scorer: the policy.
      cfg: reward, budget, bands, temperature and seed.

    Returns:
      (table in SCORED_QUERY_SCHEMA, rollouts sampled).
    """
    batch = pad_queries(queries)
    n = queries.num_rows
    teacher = None
    if scorer.spec.name == "teacher":
        teacher, has = teacher_scores(queries, scorer.spec.teacher_mode)
        teacher = np.where(has[:, None], teacher, 0.0)  # no demonstration: a uniform policy
    scores = scorer.scores(batch, teacher)
    tallies = {name: np.zeros(n) for name in ("successes", "trials", "reward_sum",
                                              "reward_sq_sum")}
    overrides = deterministic_outcome(batch.labels, batch.mask, batch.n_docs, cfg.reward)
    reference = rbo_reference(queries, batch.mask, cfg.reward)
    judged = judged_of(queries, cfg.reward)
    budget = cfg.budget
    fixed = np.array([o is not None for o in overrides], bool)
    spent = 0

    def sample_round(rows: np.ndarray, ks: np.ndarray, round_index: int) -> None:
        """Samples ks[j] rollouts of query rows[j] (max(ks) drawn, each query's first ks[j]
        kept: a query's noise stream is the same whatever the others ask) and tallies them."""
        nonlocal spent
        k_round = int(ks.max())
        ids = [batch.query_ids[i] for i in rows]
        noise = gumbel_noise(ids, batch.n_docs[rows], k_round, cfg.seed, round_index,
                             width=batch.mask.shape[1])
        rankings = sample_rankings(scores[rows], batch.mask[rows], noise, cfg.temperature)
        reward, passed = evaluate(cfg.reward, rankings, batch.labels[rows], batch.mask[rows],
                                  reference=None if reference is None else reference[rows],
                                  judged=None if judged is None else judged[rows])
        keep = np.arange(k_round)[None, :] < ks[:, None]
        reward = np.where(keep, reward, 0.0)
        spent += int(keep.sum())
        tallies["successes"][rows] += (passed & keep).sum(-1)
        tallies["trials"][rows] += ks
        tallies["reward_sum"][rows] += reward.sum(-1)
        tallies["reward_sq_sum"][rows] += (reward ** 2).sum(-1)

    planned = None
    if budget.rule == "planned" and budget.adaptive:
        planned = _planned_rounds(queries, batch.query_ids, tallies, fixed, cfg, sample_round)
        rule = cfg.bands.rule() + (f", planned k={budget.k}..{budget.k_max}"
                                   + (", learned prior" if budget.prior == "learned" else ""))
    else:
        open_rows = np.arange(n)
        for round_index, k_round in enumerate(budget.round_sizes()):
            if open_rows.size == 0:
                break
            sample_round(open_rows, np.full(open_rows.size, k_round), round_index)
            if not budget.adaptive:
                break
            summary = summarize(tallies["successes"][open_rows], tallies["trials"][open_rows],
                                tallies["reward_sum"][open_rows],
                                tallies["reward_sq_sum"][open_rows], cfg.bands)
            open_rows = open_rows[~(summary["decided"] | fixed[open_rows])]
        rule = cfg.bands.rule() + (f", adaptive k={budget.k}..{budget.k_max}"
                                   if budget.adaptive else f", fixed k={budget.k}")
    table = difficulty_table(queries, scorer.spec.policy_id, tallies, [rule] * n, cfg.bands,
                             overrides, planned)
    return table, spent


def _planned_rounds(queries: pa.Table, query_ids: list, tallies: dict, fixed: np.ndarray,
                    cfg: ScoringConfig, sample_round) -> dict | None:
    """The `planned` budget rule: round 0 asks `k` of every query (as the `rounds` rule);
    each later round asks the budget planner's next k of each undecided query whose outcome is
    not fixed by its labels (a decided query is never asked again), until none is open or every
    open one is at `k_max`. With the learned prior, the prior (the empirical-Bayes mixture of
    difficulty.prior.PassRatePrior.mixture_prior, as the requests loop plans with) is fitted on
    round 0's tallies of this batch and kept.

    Returns:
      None without the learned prior (the bands are estimate.decide's, which is then the
      planner's rule too). With it, the planner's final decision {"rows" [M] (indices into
      the batch), "band" [M] (names), "band_confidence" [M], "decided" [M]}: the band of the
      mixture posterior the planner stopped on. A query is asked no more once that posterior
      decides it, so its band must be that posterior's: the Beta(1, 1) band of its tallies
      would be a different rule applied to samples that were collected under this one
      (measured in bench_planned, text / teacher: 92-148 of 800 queries that passed 4 / 4 or
      5 / 5, decided too_easy by the mixture and too_easy in the reference, were written as
      learnable, Beta(1, 1)'s most probable band for 4 / 4, and agreement fell to 0.746-0.826
      against planned-4's 0.910-0.922). Every decided band still rests on samples: the prior
      never decides alone (difficulty.planner)."""
    from difficulty.planner import PlanConfig, plan_round

    budget = cfg.budget
    sample_round(np.arange(len(fixed)), np.full(len(fixed), budget.k), 0)
    rows = np.flatnonzero(~fixed)
    if rows.size == 0 or budget.k_max <= budget.k:
        return None
    ids = [query_ids[i] for i in rows]
    prior = None
    if budget.prior == "learned":
        from difficulty.prior import fit_prior, query_summaries

        features = query_summaries(queries.take(pa.array(rows)))[0]
        prior = fit_prior(features, tallies["successes"][rows], tallies["trials"][rows],
                          seed=cfg.seed).mixture_prior(features)
    plan = PlanConfig(k0=budget.k, k_max=budget.k_max)
    previous = None
    for round_index in range(1, budget.k_max + 2):  # the last plans nothing: all at k_max
        table = plan_round(ids, tallies["successes"][rows].astype(np.int64),
                           tallies["trials"][rows].astype(np.int64), cfg.bands, plan,
                           round_index, previous=previous, prior=prior)
        next_k = table.column("next_k").to_numpy().astype(np.int64)
        asked = np.flatnonzero(next_k > 0)
        if asked.size == 0:
            break
        sample_round(rows[asked], next_k[asked], round_index)
        previous = table
    if prior is None:
        return None
    return {"rows": rows, "band": np.array(table.column("band").to_pylist(), dtype=object),
            "band_confidence": table.column("band_probability").to_numpy(),
            "decided": table.column("decided").to_numpy(zero_copy_only=False)}


def score_from_log(queries: pa.Table, rollouts: list[list[dict]], policy_id: str,
                   cfg: ScoringConfig, priors: list | None = None) -> pa.Table:
    """Difficulty from an outside policy's (validated) rollouts, one list of rows per query.

    A rollout with a ranking is verified with `cfg.reward` (unless the reward is `log` and the log
    gives a reward or pass flag); otherwise the log's `passed` (or, without one, `reward >= TAU` of
    the run's `ndcg@K>=TAU` or composite reward; `reward >= 0.5` under `log` and hit@1) and `reward`
    are used as they are. A query with no rollouts has 0 trials and an undecided band.

    A rollout with a `generation` (an LLM's raw text) and no ranking is parsed with
    `cfg.rollout_format` against the query's `doc_ids` order (the prompt's): a malformed output
    is a failed rollout (reward 0, not passed) under `cfg.malformed == "fail"`, or repaired; its
    reason is counted in the `malformed_rollouts` / `malformed_reasons` columns.

    `priors` (one entry per query, or None for none): a query whose samples were planned under
    a recorded prior (data_contracts.readers.recorded_priors: the batch results' requests.json)
    has `(rows, round)` there, its normalized [[weight, alpha, beta], ...] mixture and the
    round that recorded it; its band, confidence and decided flag are the planner's under that
    prior (`_recorded_prior_bands`), and its `rule` says so. A None entry keeps estimate.decide's
    Beta(1, 1) band.
    """
    batch = pad_queries(queries)
    n = queries.num_rows
    tallies = {name: np.zeros(n) for name in ("successes", "trials", "reward_sum",
                                              "reward_sq_sum")}
    spec = cfg.reward
    # a logged reward without a pass flag passes at the run's threshold (TAU of ndcg@K>=TAU or
    # a composite); `log` and hit@1 have none: `log_pass_threshold` (0.5)
    log_threshold = spec.tau if spec.kind in ("ndcg", "composite") else spec.log_pass_threshold
    doc_index = [{d: j for j, d in enumerate(ids)} for ids in queries.column("doc_ids").to_pylist()]
    reference = rbo_reference(queries, batch.mask, spec)
    judged = judged_of(queries, spec)
    parsed_any = any((r.get("generation") is not None and r.get("ranking") is None)
                     or r.get("malformed") == TRUNCATED for rows in rollouts for r in rows)
    malformed, reasons = np.zeros(n, dtype=np.int64), [None] * n
    width = batch.mask.shape[1]
    for i, rows in enumerate(rollouts):
        tally: Counter = Counter()
        rows = [_parse_row(row, len(doc_index[i]), cfg, tally) for row in rows]
        malformed[i] = sum(tally.values())
        reasons[i] = json.dumps(dict(sorted(tally.items())))
        outcomes: list = [None] * len(rows)  # (reward, passed) per row, in the log's order
        ranked = []  # rows whose ranking is verified with the reward: one evaluate per query
        for r, row in enumerate(rows):
            given = row.get("reward") is not None or row.get("passed") is not None
            if row.get("_failed"):  # a malformed generation: the policy failed this rollout
                outcomes[r] = (0.0, False)
            elif (row.get("ranking") is not None or "_indices" in row) and not (
                    spec.kind == "log" and given):
                if spec.kind == "log":
                    raise ValueError("reward `log` needs a reward or passed value in the log")
                ranked.append((r, row["_indices"] if "_indices" in row
                               else [doc_index[i][d] for d in row["ranking"]]))
            else:
                reward = row["reward"] if row.get("reward") is not None else float(row["passed"])
                outcomes[r] = (reward, row["passed"] if row.get("passed") is not None
                               else reward >= log_threshold)
        if ranked:
            ranking = np.zeros((1, len(ranked), width), dtype=np.int64)
            valid = np.zeros((1, len(ranked), width), dtype=bool)
            for j, (_, idx) in enumerate(ranked):
                ranking[0, j, :len(idx)] = idx
                valid[0, j, :len(idx)] = True
            rewards, passes = evaluate(spec, ranking, batch.labels[i:i + 1], batch.mask[i:i + 1],
                                       valid, None if reference is None else reference[i:i + 1],
                                       None if judged is None else judged[i:i + 1])
            for j, (r, _) in enumerate(ranked):
                outcomes[r] = (float(rewards[0, j]), bool(passes[0, j]))
        for reward, passed in outcomes:
            tallies["successes"][i] += float(passed)
            tallies["trials"][i] += 1
            tallies["reward_sum"][i] += float(reward)
            tallies["reward_sq_sum"][i] += float(reward) ** 2
    rule = _log_rule(cfg, parsed_any)
    if parsed_any:
        tallies["malformed_rollouts"] = malformed
        tallies["malformed_reasons"] = reasons
    planned, rules = _recorded_prior_bands(tallies, priors, cfg.bands, rule, n)
    return difficulty_table(queries, policy_id, tallies, rules, cfg.bands, planned=planned)


# what a query's `rule` adds when its band is the recorded prior's (then not beta(1,1)'s)
PRIOR_RULE = "band, probability and decided under the prior recorded in requests round"


def _recorded_prior_bands(tallies: dict, priors: list | None, bands: BandConfig, rule: str,
                          n: int) -> tuple[dict | None, list[str]]:
    """The planner's decision for the queries with a recorded prior, and every query's rule.

    The band is difficulty.planner.prior_band's (the robust mixture posterior with the
    planner's `PlanConfig.robust_weight`; the prior never decides alone): exactly the band,
    probability and decided flag `plan_round` gives the same tallies under the same prior, so
    a query the next round does not ask (decided) is written decided, with the planner's band.

    Args:
      tallies: [n] `successes` and `trials` (floats holding counts).
      priors: [n] None or `(rows, round)` per query (see `score_from_log`), or None.
      bands: the band rule.
      rule: the rule of a query without a recorded prior.
      n: the number of queries.

    Returns:
      (difficulty_table's `planned` {"rows" [M], "band" [M], "band_confidence" [M], "decided"
      [M]} or None when no query has a recorded prior, the [n] rules: `rule`, plus "; " +
      PRIOR_RULE + " R" where the band is the recorded prior's, R the round of the
      requests.json that recorded it).
    """
    from difficulty.planner import MixturePrior, PlanConfig, prior_band

    rows = [i for i in range(n) if priors is not None and priors[i] is not None]
    if not rows:
        return None, [rule] * n
    at = np.array(rows, np.int64)
    prior = MixturePrior.from_rows([priors[i][0] for i in rows])
    band, prob, decided, _ = prior_band(tallies["successes"][at].astype(np.int64),
                                        tallies["trials"][at].astype(np.int64), bands, prior,
                                        PlanConfig.robust_weight)
    rules = [rule] * n
    for i in rows:
        rules[i] = f"{rule}; {PRIOR_RULE} {priors[i][1]}"
    return ({"rows": at, "band": BAND_NAMES[band], "band_confidence": prob,
             "decided": decided}, rules)


def score_fast_permutations(queries: pa.Table, owner: np.ndarray, counts: np.ndarray,
                            ids: np.ndarray, policy_id: str, cfg: ScoringConfig) -> pa.Table:
    """`score_from_log` of queries whose every rollout's only outcome is a generation in the
    `permutation` format, from the ids read from them (`generations.permutation_id_lists`),
    vectorized over all their rollouts: the same table, bit for bit, as `score_from_log` of
    the same rows.

    Each rollout's verdict is `_check`'s (`check_permutations`); a malformed one is a failed
    rollout (reward 0, not passed) under `fail`, or repaired (`generations.repair`, per row:
    rare) under `repair`; the rest are evaluated with `cfg.reward` (one `evaluate` call, each
    rollout as its own [1, 1, D] row: the reward is computed per ranking, as for one query's
    [1, K, D]). Tallies are summed in the rollouts' order (np.bincount adds in input order, as
    `score_from_log`'s loop does).

    Args:
      queries: Q queries (QUERY_SCHEMA) with the same number of documents and of judged labels
        (so the padded widths are those `score_from_log` uses for them).
      owner: [R] int, each rollout's query (row of `queries`), the rollouts of a query in the
        order `score_from_log` reads them (by rollout id).
      counts: [R] the ids of each rollout's generation (0: no ranking).
      ids: [sum(counts)] their 1-based ids, rollout after rollout.
      policy_id: the policy id written into the rows.
      cfg: the scoring config (`rollout_format` must be `permutation`; the reward not `log`).

    Returns:
      The queries in SCORED_QUERY_SCHEMA with their difficulty columns (malformed columns set).

    Raises:
      ValueError: a `log` reward or an `answer` format (`score_from_log` handles those).
    """
    from difficulty.generations import CHECK_REASONS, check_permutations, repair

    spec = cfg.reward
    if spec.kind == "log" or cfg.rollout_format != "permutation":
        raise ValueError("score_fast_permutations scores parsed permutations under a "
                         "verifiable reward only")
    batch = pad_queries(queries)
    n_q, width = queries.num_rows, batch.mask.shape[1]
    n_docs = int(batch.n_docs[0])
    reason, ranking = check_permutations(counts, ids, n_docs)
    scored = reason == 0
    if cfg.malformed == "repair":  # every malformation but no ranking at all is repaired
        starts = np.concatenate([[0], np.cumsum(counts)])
        for r in np.flatnonzero(~scored & (reason != 1)).tolist():
            ranking[r] = repair(ids[starts[r]:starts[r + 1]].tolist(), n_docs)
        scored = reason != 1
    rows = np.flatnonzero(scored)
    reward = np.zeros(len(counts))
    passed = np.zeros(len(counts), bool)
    if rows.size:
        rankings = np.zeros((rows.size, 1, width), np.int64)
        rankings[:, 0, :n_docs] = ranking[rows]
        valid = np.zeros((rows.size, 1, width), bool)
        valid[:, 0, :n_docs] = True
        at = owner[rows]
        reference = rbo_reference(queries, batch.mask, spec)
        judged = judged_of(queries, spec)
        rewards, passes = evaluate(spec, rankings, batch.labels[at], batch.mask[at], valid,
                                   None if reference is None else reference[at],
                                   None if judged is None else judged[at])
        reward[rows], passed[rows] = rewards[:, 0], passes[:, 0]
    squares = np.array([r ** 2 for r in reward.tolist()])  # float ** 2, as the scalar loop
    tallies = {"successes": np.bincount(owner, weights=passed.astype(np.float64), minlength=n_q),
               "trials": np.bincount(owner, minlength=n_q).astype(np.float64),
               "reward_sum": np.bincount(owner, weights=reward, minlength=n_q),
               "reward_sq_sum": np.bincount(owner, weights=squares, minlength=n_q)}
    per_reason = {name: np.bincount(owner[reason == code + 1], minlength=n_q)
                  for code, name in enumerate(CHECK_REASONS)}
    tallies["malformed_rollouts"] = sum(per_reason.values()).astype(np.int64)
    names = sorted(per_reason)
    tallies["malformed_reasons"] = [
        json.dumps({name: int(per_reason[name][i]) for name in names if per_reason[name][i]})
        for i in range(n_q)]
    return difficulty_table(queries, policy_id, tallies, [_log_rule(cfg, True)] * n_q,
                            cfg.bands)


def _log_rule(cfg: ScoringConfig, parsed: bool) -> str:
    """The `rule` column of a query scored from outside rollouts (`parsed`: generations were
    read with the rollout format)."""
    rule = cfg.bands.rule() + ", outside rollouts"
    if parsed:
        rule += f", generations parsed as {cfg.rollout_format} (malformed: {cfg.malformed})"
    return rule
