"""The run-level rule: whether what a run read is usable at all, as one line when it is not.

A run that scores nothing, or quarantines more than `max_quarantine` of the records it read,
must fail (exit 2) and leave the previous run at `--out` as it was, with one line naming the top
quarantine reason and the likely cause: a layout the input looks like, an empty input. The
pipeline calls `unusable_reason` once the counts are known and before it publishes.
"""
from __future__ import annotations

from typing import Mapping

from data_contracts.readers.detect import LOOKS_LIKE
from data_contracts.readers.text import TEXT_FORMATS
from data_contracts.reasons import Reason

DEFAULT_MAX_QUARANTINE = 0.5  # --max-quarantine: more than half of what was read quarantined
# Not faults of the input's records: a rollout log that covers part of the input leaves the
# rest `no_rollouts`. They do not count against --max-quarantine (a run that scores nothing
# still fails).
NOT_INPUT_FAULTS = (Reason.NO_ROLLOUTS,)


def unusable_reason(counts: Mapping[str, int], quarantine_reasons: Mapping[str, int],
                    max_quarantine: float = DEFAULT_MAX_QUARANTINE,
                    detected_layouts: Mapping[str, str] | None = None,
                    forced_format: str | None = None,
                    drop_reasons: Mapping[str, int] | None = None) -> str | None:
    """Why a run's result is unusable, in one line, or None when it is usable.

    Args:
      counts: the run's counts; uses `read` (records read: scored + quarantined query
        records), `quarantined` and `scored`; `duplicate_feature_ids` (repeated SVMlight
        feature ids) names `--repeated-features last` when lines were quarantined.
      quarantine_reasons: reason -> records quarantined for it (rollout reasons included; only
        the top one is named).
      max_quarantine: the largest share of `read` that may be quarantined (0..1); queries
        quarantined as NOT_INPUT_FAULTS (`no_rollouts`) do not count.
      detected_layouts: input path -> what `detect_format` said of it (e.g. `trec-qrels`,
        `empty`); a layout that is not queries is named as the likely cause.
      forced_format: the `--input-format` the run used when not `auto`; a readable layout
        other than it is then named too (`looks like parquet, not svmlight`).
      drop_reasons: drop reason -> queries dropped for it (the manifest's `drop_reasons`); a
        run with nothing to train on names the top ones (`DROP_HINTS`).

    A run that scored queries but staged none for imitation or RL (when `counts` holds
    `imitation` and `rl`) is unusable too: "nothing to train on".

    Returns:
      None, or e.g. "nothing scored: 4 of 4 records quarantined, top reason unparseable_line
      (4); the input looks like TREC qrels: qid iter docno rel", or "no records in PATH".
    """
    layouts = dict(detected_layouts or {})
    read = int(counts.get("read", 0))
    quarantined = int(counts.get("quarantined", 0))
    scored = int(counts.get("scored", 0))
    if read == 0:
        paths = sorted(layouts) or ["the input"]
        return f"no records in {', '.join(paths)}"
    faults = quarantined - sum(int(quarantine_reasons.get(r, 0)) for r in NOT_INPUT_FAULTS)
    share = max(faults, 0) / read
    if scored > 0 and share <= max_quarantine:
        return _nothing_staged(counts, drop_reasons or {})
    if scored == 0:
        head = f"nothing scored: {quarantined} of {read} records quarantined"
    else:
        head = (f"{faults} of {read} records quarantined ({share:.0%}), more than "
                f"--max-quarantine {max_quarantine:g}")
    top = ranked_reasons(quarantine_reasons)[:1]
    if top:
        head += f", top reason {top[0][0]} ({top[0][1]})"
    hints = []
    if forced_format in TEXT_FORMATS:  # a text layout: feature-layout guesses mislead
        layouts = {}
    for path, layout in sorted(layouts.items()):
        if layout in LOOKS_LIKE and layout != "empty":
            hints.append(f"{path} looks like {LOOKS_LIKE[layout]}" if len(layouts) > 1
                         else f"the input looks like {LOOKS_LIKE[layout]}")
        elif layout == "empty":
            hints.append(f"{path} is empty")
        elif forced_format not in (None, "auto") and layout != forced_format:
            hints.append(f"{path} looks like {layout}, not {forced_format} (try --input-format "
                         f"auto)")
    repeats = int(counts.get("duplicate_feature_ids", 0))
    if repeats and quarantine_reasons.get(Reason.UNPARSEABLE_LINE):
        hints.append(f"{repeats} feature id(s) repeat on their line (--repeated-features "
                     f"quarantine makes their queries unparseable_line; --repeated-features "
                     f"last keeps each id's last value)")
    if hints:
        head += "; " + "; ".join(hints)
    return head


# Why a dropped query was dropped, in words (the manifest's `drop_reasons` names), and what to
# change when it is the top reason of a run with nothing to train on.
DROP_HINTS = {
    "zero_variance_group": ("every rollout of the query got the same reward, e.g. 1 rollout per "
                            "query; GRPO needs at least 2 that differ",
                            "give at least 2 rollouts per query (--k, or more in the rollout "
                            "log)"),
    "too_hard": ("pass rate below --hard-below and no usable demonstration",
                 "check --reward, --hard-below and the labels"),
    "too_easy": ("pass rate above --easy-above and no usable demonstration",
                 "check --reward, --easy-above and the labels"),
    "no_rollouts": ("no rollout was scored", "check the rollout log"),
    "diversity_quota": ("thinned by the diversity quota", "raise --diversity-budget"),
}


def ranked_reasons(reasons: Mapping[str, int]) -> list[tuple[str, int]]:
    """Non-zero reasons, most frequent first (ties by name): (reason, count) pairs."""
    return sorted(((k, int(v)) for k, v in reasons.items() if v), key=lambda kv: (-kv[1], kv[0]))


def reasons_text(reasons: Mapping[str, int], top: int = 5, explain: bool = False) -> str:
    """`a 3, b 2 and 4 more` of the `top` most frequent reasons; `explain` adds the words of
    `DROP_HINTS` after each drop reason that has them."""
    ranked = ranked_reasons(reasons)
    shown = [f"{k} {n}" + (f" ({DROP_HINTS[k][0]})" if explain and k in DROP_HINTS else "")
             for k, n in ranked[:top]]
    more = len(ranked) - top
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _nothing_staged(counts: Mapping[str, int], drop_reasons: Mapping[str, int]) -> str | None:
    """A scored run that staged no imitation and no RL query gives a trainer nothing: the line
    names the bands and the top drop reasons with their counts."""
    if "imitation" not in counts or "rl" not in counts:  # counts of the read alone
        return None
    if int(counts["imitation"]) or int(counts["rl"]):
        return None
    bands = ", ".join(f"{name} {int(counts.get(name, 0))}"
                      for name in ("too_hard", "learnable", "too_easy"))
    line = (f"nothing to train on: {int(counts.get('scored', 0))} queries scored, none staged "
            f"for imitation or RL (bands: {bands}; dropped {int(counts.get('dropped', 0))}")
    ranked = ranked_reasons(drop_reasons)
    if ranked:
        line += ": " + reasons_text(drop_reasons, top=3, explain=True)
    hint = (DROP_HINTS[ranked[0][0]][1] if ranked and ranked[0][0] in DROP_HINTS
            else "check --reward, --hard-below/--easy-above and the labels")
    return f"{line}); {hint}"


__all__ = ["DEFAULT_MAX_QUARANTINE", "DROP_HINTS", "ranked_reasons", "reasons_text",
           "unusable_reason"]
