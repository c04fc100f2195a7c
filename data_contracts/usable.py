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
                    forced_format: str | None = None) -> str | None:
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
        return _nothing_staged(counts)
    if scored == 0:
        head = f"nothing scored: {quarantined} of {read} records quarantined"
    else:
        head = (f"{faults} of {read} records quarantined ({share:.0%}), more than "
                f"--max-quarantine {max_quarantine:g}")
    reasons = {k: int(v) for k, v in quarantine_reasons.items() if v}
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        head += f", top reason {top[0]} ({top[1]})"
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


def _nothing_staged(counts: Mapping[str, int]) -> str | None:
    """A scored run that staged no imitation and no RL query gives a trainer nothing."""
    if "imitation" not in counts or "rl" not in counts:  # counts of the read alone
        return None
    if int(counts["imitation"]) or int(counts["rl"]):
        return None
    bands = ", ".join(f"{name} {int(counts.get(name, 0))}"
                      for name in ("too_hard", "learnable", "too_easy", "dropped"))
    return (f"nothing to train on: {int(counts.get('scored', 0))} queries scored, none staged "
            f"for imitation or RL ({bands}); check --reward, --hard-below/--easy-above and "
            f"the labels")


__all__ = ["DEFAULT_MAX_QUARANTINE", "unusable_reason"]
