"""The per-query prior a set of OpenAI batch results' rounds was planned with, read back from
the requests.json each results file answers.

`python -m pipelines.export RUN --to requests --prior learned` records in a round's
requests.json `priors` ({query: [alpha, beta]}: the learned Beta, the whole prior in files
written before mixture priors) and `prior_mixtures` ({query: [[weight, alpha, beta], ...]}:
the empirical-Bayes mixture the budget planner used, weights rounded to 9 digits), for the
informative queries only. The prior is fitted once and kept: the latest round whose record has
`priors` holds the one in force. Both the next round's planner (exports.requests.next_round)
and the build that scores the results (pipelines.score_log) read it here, so they decide every
band under the same prior.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from data_contracts.errors import InputError
from data_contracts.readers.batch_results import answered_requests

UNIFORM = [[1.0, 1.0, 1.0]]  # Beta(1, 1) as one [weight, alpha, beta] component
WEIGHT_TOLERANCE = 1e-6  # |sum of a mixture's recorded weights - 1| (9-digit rounding: ~1e-9)


def normalized(rows: list[list[float]]) -> list[list[float]]:
    """Mixture components [[weight, alpha, beta], ...] whose (rounded) weights are rescaled to
    sum to 1 (difficulty.planner.MixturePrior accepts a sum within 1e-9 of 1).

    Raises:
      ZeroDivisionError: every weight is 0 (never written by `--to requests`).
    """
    total = sum(r[0] for r in rows)
    return [[r[0] / total, r[1], r[2]] for r in rows]


@dataclass(frozen=True)
class RecordedPriors:
    """The priors one requests record fixed.

    Attributes:
      round: the round of the requests.json that recorded them.
      priors: {query id: [alpha, beta]} (the learned Beta of informative queries).
      mixtures: {query id: [[weight, alpha, beta], ...]}, or None in a file written before
        mixture priors (its `priors` are then the whole prior).
    """

    round: int
    priors: dict
    mixtures: dict | None

    def informative_rows(self, query_id: str) -> list[list[float]] | None:
        """One query's prior as normalized [weight, alpha, beta] rows: its `prior_mixtures`
        entry, or in a file without mixtures its `priors` Beta; None where the record holds
        none for it (the uniform Beta(1, 1))."""
        if self.mixtures is not None:
            rows = self.mixtures.get(query_id)
            return normalized(rows) if rows else None
        if query_id not in self.priors:
            return None
        alpha, beta = self.priors[query_id]
        return [[1.0, float(alpha), float(beta)]]

    def rows(self, query_id: str) -> list[list[float]]:
        """`informative_rows`, Beta(1, 1) where the record holds none (MixturePrior.from_rows'
        form)."""
        return self.informative_rows(query_id) or UNIFORM

    def query_ids(self) -> list[str]:
        """The queries the record gives an informative prior, sorted."""
        return sorted(self.mixtures if self.mixtures is not None else self.priors)


def latest_recorded_priors(sources: Iterable[tuple[str, str | None]]
                           ) -> RecordedPriors | None:
    """The priors of the latest round, among the requests records the batch-output files of
    `sources` answer, whose record has `priors` (None: no round recorded a prior yet).

    A loop's prior is fixed once fitted: `--to requests` refuses `--prior none` after a round
    recorded one (exports.requests), so every later round was planned under it.

    Args:
      sources: (rollout file, the requests.json it answers or None for the one beside it), in
        the order given (`--rollouts`, `--requests`). A file that is not OpenAI batch output
        (a plain rollout log; detected by content, `sniff_batch_output`, as the build reads
        it) answers no requests and is skipped.

    Returns:
      The RecordedPriors of the highest `round` among those records (the first such record on
      a tie), or None.

    Raises:
      InputError: a batch-output file's requests.json is missing or is not a requests record
        (find_requests).
    """
    latest = None
    for _, index in answered_requests(sources):
        record = index.record
        if "priors" in record:
            check_recorded_prior(record, index.path)
        if "priors" in record and (latest is None or record["round"] > latest["round"]):
            latest = record
    if latest is None:
        return None
    mixtures = latest.get("prior_mixtures")
    return RecordedPriors(int(latest["round"]), latest["priors"],
                          mixtures if isinstance(mixtures, dict) else None)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and value > 0


def check_recorded_prior(record: dict, path: str) -> None:
    """Refuses a recorded prior that `--to requests` could not have written (an edited
    requests.json), instead of rescaling it or failing in a worker: `priors` must map query ids
    to [alpha, beta] and `prior_mixtures` (when present) to [[weight, alpha, beta], ...], every
    alpha and beta finite and > 0, weights >= 0 summing to 1 within WEIGHT_TOLERANCE.

    Raises:
      InputError: naming the requests.json, the field and the query.
    """
    priors, mixtures = record.get("priors"), record.get("prior_mixtures")
    if not isinstance(priors, dict):
        raise InputError(path, "`priors` is not an object {query id: [alpha, beta]}",
                         column="priors")
    for query_id, pair in priors.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(map(_positive, pair))):
            raise InputError(path, f"priors[{query_id!r}] is not [alpha, beta] with both "
                                   "finite and > 0", column="priors")
    if mixtures is None:
        return
    if not isinstance(mixtures, dict):
        raise InputError(path, "`prior_mixtures` is not an object {query id: [[weight, alpha, "
                               "beta], ...]}", column="prior_mixtures")
    for query_id, rows in mixtures.items():
        ok = isinstance(rows, list) and rows and all(
            isinstance(r, list) and len(r) == 3 and all(map(_positive, r[1:])) and
            isinstance(r[0], (int, float)) and not isinstance(r[0], bool) and
            math.isfinite(r[0]) and r[0] >= 0 for r in rows)
        if not ok or abs(sum(r[0] for r in rows) - 1.0) > WEIGHT_TOLERANCE:
            raise InputError(path, f"prior_mixtures[{query_id!r}] is not [[weight, alpha, "
                                   "beta], ...] with weights >= 0 summing to 1 and every alpha "
                                   "and beta finite and > 0 (was requests.json edited?)",
                             column="prior_mixtures")

