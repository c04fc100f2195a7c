"""Routing: every scored query gets a fate (rl, imitation candidate, or dropped) and a reason.

- learnable -> RL, unless its reward group has zero variance (no group-relative signal) or it has
  no rollouts at all.
- too_hard  -> out of RL (it teaches shortcuts); an imitation candidate when it has a teacher
  demonstration and `hard_to_imitation` is on.
- too_easy  -> out of RL (zero-variance groups); an imitation candidate when it has a
  demonstration, weighted by `easy_weight`.

A demonstration counts only when it orders something (see `informative_demonstrations`): a
single-document query, or one whose teacher scores (or labels) all tie, has none.

`filter_hard=False` is the no-filter control measured by `trainers.experiment`: too_hard queries
go to RL (all-fail groups: zero advantage) instead of imitation, so every query still has exactly
one fate. (Whether BC should also imitate the RL queries is the trainer's `--imitate all`: the
trainer then reads demonstrations from the RL shards too, and the curriculum's fates stay
disjoint, as the manifest's counts require.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from data_contracts.arrays import list_lengths
from data_contracts.schema import DROPPED_SCHEMA, conform
from data_contracts.teacher import teacher_scores


@dataclass(frozen=True)
class RoutingConfig:
    """Attributes:
      teacher_mode: where demonstrations come from (`auto`, `column`, `labels`, `none`).
      hard_to_imitation: too_hard queries with a demonstration go to imitation.
      easy_to_imitation: too_easy queries with a demonstration go to imitation.
      easy_weight: imitation weight of too_easy demonstrations (1.0: not down-weighted).
      filter_hard: too_hard queries are kept out of RL (True) or sent to RL (False, the
        no-filter control).
    """

    teacher_mode: str = "auto"
    hard_to_imitation: bool = True
    easy_to_imitation: bool = True
    easy_weight: float = 1.0
    filter_hard: bool = True


@dataclass
class Routed:
    """One batch split three ways.

    `imitation_weight` ([N]) and `imitation_teacher` ([N, D] teacher scores, padded to the
    imitation rows' longest query) are aligned with `imitation`'s rows.
    """

    rl: pa.Table
    imitation: pa.Table
    imitation_weight: np.ndarray
    imitation_teacher: np.ndarray
    dropped: pa.Table


@dataclass
class Fates:
    """Per row of a scored batch ([B] each, aligned with its rows), nothing copied.

    Attributes:
      fate: "rl", "imitation" or "dropped" (object array).
      reason: why a row is dropped ("" for the others; object array).
      weight: float32 imitation weight (`easy_weight` for too_easy rows, else 1.0).
      teacher: [B, D] float32 teacher scores (D: the batch's padded width).
    """

    fate: np.ndarray
    reason: np.ndarray
    weight: np.ndarray
    teacher: np.ndarray


def route_fates(scored: pa.Table, cfg: RoutingConfig) -> Fates:
    """Each scored query's fate and reason (see the module docstring), without splitting the
    batch: what a caller needs that only wants the decisions, not three copies of the rows."""
    band = np.array(scored.column("band").to_pylist(), dtype=object)
    zero_var = scored.column("zero_variance").to_numpy(zero_copy_only=False)
    trials = scored.column("trials").to_numpy(zero_copy_only=False)
    scores, given_demo = teacher_scores(scored, cfg.teacher_mode)
    has_demo = given_demo & informative_demonstrations(scored, scores)
    n = scored.num_rows
    fate = np.full(n, "dropped", dtype=object)
    reason = np.full(n, "", dtype=object)

    learnable = band == "learnable"
    no_trials = trials == 0
    fate[learnable & ~zero_var & ~no_trials] = "rl"
    reason[learnable & no_trials] = "no_rollouts"
    reason[learnable & zero_var & ~no_trials] = "zero_variance_group"

    hard, easy = band == "too_hard", band == "too_easy"
    if not cfg.filter_hard:  # the no-filter control: too_hard rows with rollouts go to RL
        fate[hard & ~no_trials] = "rl"
        hard = hard & no_trials
    for mask, allowed, name in ((hard, cfg.hard_to_imitation, "too_hard"),
                                (easy, cfg.easy_to_imitation, "too_easy")):
        to_imitation = mask & has_demo & allowed
        fate[to_imitation] = "imitation"
        if allowed:
            reason[mask & ~given_demo] = f"{name}: no demonstration"
            reason[mask & given_demo & ~has_demo] = (f"{name}: uninformative demonstration "
                                                     "(one document or all tied)")
        else:
            reason[mask] = f"{name}: out of RL, imitation disabled"
    weight = np.where(easy, cfg.easy_weight, 1.0).astype(np.float32)
    return Fates(fate=fate, reason=reason, weight=weight, teacher=scores)


def route(scored: pa.Table, cfg: RoutingConfig) -> Routed:
    """Splits scored queries (SCORED_QUERY_SCHEMA) by band into RL, imitation candidates, dropped."""
    fates = route_fates(scored, cfg)
    imitation_mask = fates.fate == "imitation"
    rl_mask = fates.fate == "rl"
    dropped_mask = fates.fate == "dropped"
    imitation = scored.filter(pa.array(imitation_mask))
    return Routed(
        rl=scored.filter(pa.array(rl_mask)),
        imitation=imitation,
        imitation_weight=fates.weight[imitation_mask],
        imitation_teacher=fates.teacher[imitation_mask][:, :_width(imitation)],
        dropped=dropped_rows(scored.filter(pa.array(dropped_mask)),
                             fates.reason[dropped_mask].tolist()),
    )


def _width(table: pa.Table) -> int:
    """The padded width of a table's longest query."""
    return int(list_lengths(table.column("doc_ids")).max(initial=0))


def informative_demonstrations(table: pa.Table, scores: np.ndarray) -> np.ndarray:
    """[B] whether a demonstration orders anything: two or more documents whose teacher scores
    are not all tied. A single document, or labels all equal (e.g. all 0), make every order the
    ideal one, so the "demonstration" would only teach the input order."""
    n_docs = list_lengths(table.column("doc_ids"))
    out = np.zeros(len(n_docs), dtype=bool)
    for i, n in enumerate(n_docs):
        if n >= 2:
            row = scores[i, :n]
            out[i] = bool((row != row[0]).any())
    return out


def dropped_rows(table: pa.Table, reasons: list[str]) -> pa.Table:
    """Rows of a scored or imitation table as DROPPED_SCHEMA with the given reasons."""
    with_reason = table.append_column("reason", pa.array(reasons, pa.string()))
    return conform(with_reason, DROPPED_SCHEMA)
