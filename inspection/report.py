"""A one-page, self-contained HTML report of a curriculum run (and its training, when logged).

Figures are drawn with matplotlib's Agg canvas (no pyplot, no display, no global state) and
embedded as base64 PNG; every figure sits in a <figure id=...> with a <figcaption>. The data comes
from the inspector's views and named queries, so the page shows what `--query` shows.

Figures (ids): pass-rates, bands, stages, diversity, quarantine, dropped; with training metrics
also training-reward (RL reward in one panel per stage: stages run from easy to hard, so the level
steps down at a boundary by design), training-ndcg, training-entropy, training-informative,
training-loss. A metric logged once per policy (the diagnostics) is drawn as bars, not as points
on a near-empty line plot. Legends sit outside the axes; wide tables are transposed so they fit
the page. When the trainer re-scored the curriculum after BC (summary.json `rescored_manifest`),
the report names that curriculum and shows its stages: RL trained on it, not on RUN's.

  python -m pipelines.inspect RUN --report report.html [--training DIR]
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import os
from typing import Callable

import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import is_inside, load_manifest, resolve_in_run
from inspection.inspector import Inspector
from inspection.output import decimals_of as _decimals
from inspection.output import short as _short

BANDS = ("too_hard", "learnable", "too_easy")
BAND_COLORS = {"too_hard": "#c0392b", "learnable": "#27ae60", "too_easy": "#2e86c1"}
FATE_COLORS = {"imitation": "#8e44ad", "rl": "#27ae60", "dropped": "#95a5a6"}
PHASE_COLORS = {"bc": "#8e44ad", "rl": "#27ae60", "eval": "#e67e22", "diagnostic": "#2c3e50"}
RUN_FIGURES = ("pass-rates", "bands", "stages", "diversity", "quarantine", "dropped")
TRAINING_METRICS = (  # (figure id, column, title)
    ("training-reward", "reward_mean", "reward (mean over the group)"),
    ("training-ndcg", "ndcg_at_10", "NDCG@10"),
    ("training-entropy", "entropy", "policy entropy (nats per ranking)"),
    ("training-informative", "informative_fraction", "informative-group fraction"),
    ("training-loss", "loss", "loss"),
)
TRAINING_FIGURES = tuple(fig for fig, _, _ in TRAINING_METRICS)
DPI = 100

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em;
     border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta { color: #555; } code { font-size: .92em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .85em; max-width: 100%; }
th, td { padding: .2em .5em; border-bottom: 1px solid #eee; text-align: left;
         overflow-wrap: anywhere; vertical-align: top; }
table.transposed tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: .92em; margin-top: .3em; }
.empty { color: #888; font-style: italic; }
"""


# --- drawing helpers ------------------------------------------------------------------------

def _png(fig: Figure) -> str:
    """The figure as base64 PNG (one draw: margins are fixed in pixels, not measured)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 4})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 7.5, height: float = 3.4) -> Figure:
    """A figure laid out by matplotlib's constrained layout (room for outside legends)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _legend(ax, **kwargs) -> None:
    """A legend outside the axes, on the right, so it never covers bars or lines."""
    ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0, **kwargs)


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777",
            fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


# --- run figures ----------------------------------------------------------------------------

def pass_rate_figure(ins: Inspector) -> tuple[Figure, str]:
    data = ins.query("SELECT band, pass_rate FROM difficulty")
    bands = np.array(_column(data, "band"), dtype=object)
    rates = np.array(_column(data, "pass_rate"), dtype=float)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    edges = np.linspace(0, 1, 21)
    stacks = [rates[bands == b] for b in BANDS]
    others = rates[~np.isin(bands, BANDS)]
    labels = [f"{b} ({len(s)})" for b, s in zip(BANDS, stacks)]
    colors = [BAND_COLORS[b] for b in BANDS]
    if len(others):
        stacks.append(others)
        labels.append(f"other ({len(others)})")
        colors.append("#999999")
    if len(rates):
        ax.hist(stacks, bins=edges, stacked=True, color=colors, label=labels, edgecolor="white")
        _legend(ax)
    else:
        _note(ax, "no scored queries")
    bands_cfg = (ins.manifest.get("config", {}) or {}).get("bands", {}) or {}
    for key in ("hard_below", "easy_above"):
        if isinstance(bands_cfg.get(key), (int, float)):
            ax.axvline(bands_cfg[key], color="#555", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass rate (posterior mean over the policy's rollouts)")
    ax.set_ylabel("queries")
    ax.set_title("Pass-rate histogram by band")
    thresholds = ", ".join(f"{k.replace('_', ' ')} {bands_cfg[k]:g}"
                           for k in ("hard_below", "easy_above")
                           if isinstance(bands_cfg.get(k), (int, float)))
    caption = (f"Pass rates of the {len(rates)} scored queries in 20 bins, stacked by band"
               + (f"; dotted lines: band thresholds ({thresholds})" if thresholds else "")
               + ". Bands are decided by the posterior, so a bin can hold two bands.")
    return fig, caption


def bands_figure(ins: Inspector) -> tuple[Figure, str]:
    table = ins.named("bands")
    names = _column(table, "band")
    fig = _figure(8.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    left = np.zeros(len(names))
    for fate in ("imitation", "rl", "dropped"):
        values = np.array(_column(table, fate), dtype=float)
        ax.barh(names, values, left=left, color=FATE_COLORS[fate], label=fate)
        left += values
    totals = _column(table, "queries")
    for y, total in enumerate(totals):
        ax.text(left[y] + max(left.max(), 1) * 0.01, y, str(total), va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("queries")
    ax.set_title("Band counts and where each band went")
    _legend(ax)
    ax.set_xlim(0, max(left.max(), 1) * 1.1)
    caption = ("Queries per difficulty band (" + ", ".join(
        f"{b} {n}" for b, n in zip(names, totals)) + "), split by fate: imitation, RL or dropped.")
    return fig, caption


def stages_figure(ins: Inspector) -> tuple[Figure, str]:
    table = ins.named("stages")
    rows = table.to_pylist()
    labels = ["imitation" if r["phase"] == "imitation" else f"rl {r['stage']}" for r in rows]
    fig = _figure(10.5, 3.4)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = np.arange(len(rows))
    own = np.array([r["queries"] for r in rows], dtype=float)
    replayed = np.array([r["replayed"] for r in rows], dtype=float)
    colors = [FATE_COLORS["imitation"] if r["phase"] == "imitation" else FATE_COLORS["rl"]
              for r in rows]
    ax.bar(x, own, color=colors, label="queries")
    ax.bar(x, replayed, bottom=own, color="#f5b041", label="replayed")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, max(float((own + replayed).max()) if len(rows) else 0, 1) * 1.08)
    ax.set_ylabel("rows")
    ax.set_title("Stage sizes, in curriculum order")
    if replayed.any():
        fig.legend(frameon=False, fontsize=9, loc="outside lower center", ncol=2)
    for i, r in enumerate(rows):
        lo, mean, hi = r["pass_rate_min"], r["pass_rate_mean"], r["pass_rate_max"]
        if lo is None:
            continue
        ax2.plot([i, i], [lo, hi], color=colors[i], linewidth=6, solid_capstyle="butt", alpha=.6)
        ax2.plot([i], [mean], marker="o", color="#222")
    ax2.set_xticks(x, labels)
    ax2.set_xlim(-0.6, len(rows) - 0.4)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("pass rate")
    ax2.set_title("Pass-rate range per stage (dot: mean)")
    parts = []
    for label, r in zip(labels, rows):
        rng = (f"{r['pass_rate_min']:.3f}-{r['pass_rate_max']:.3f}"
               if r["pass_rate_min"] is not None else "empty")
        parts.append(f"{label}: {r['rows']} rows ({rng})")
    strategy = ((ins.manifest.get("config", {}) or {}).get("order", {}) or {}).get("strategy")
    caption = ("Curriculum stages in training order" + (f" (strategy {strategy})" if strategy
                                                         else "") + ": " + "; ".join(parts)
               + ". Ranges cover each stage's own queries, not replayed ones.")
    return fig, caption


def diversity_figure(ins: Inspector) -> tuple[Figure, str]:
    table = ins.named("diversity")
    sides = {r["side"]: r for r in table.to_pylist()}
    fig = _figure(9.5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    width = max([len(r["cluster_counts"] or []) for r in sides.values()] + [0])
    x = np.arange(width)
    for offset, side, color in ((-0.2, "before", "#bdc3c7"), (0.2, "after", "#8e44ad")):
        if side not in sides:
            continue
        counts = list(sides[side]["cluster_counts"] or []) + [0] * width
        r = sides[side]
        ax.bar(x + offset, counts[:width], width=0.4, color=color,
               label=f"{side}: {r['demonstrations']} demos, entropy "
                     f"{(r['entropy_bits'] or 0):.2f} bits, {r['distinct_signatures']} "
                     f"signatures")
    if width:
        ax.set_xticks(x)
        _legend(ax)
    else:
        _note(ax, "no demonstrations")
    ax.set_xlabel("behavior cluster")
    ax.set_ylabel("demonstrations")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Demonstration diversity before and after selection")
    b, a = sides.get("before"), sides.get("after")
    caption = "Demonstrations per behavior cluster, before and after per-cluster quotas"
    if b and a:
        caption += (f": clusters used {b['clusters_used']} -> {a['clusters_used']}, entropy "
                    f"{(b['entropy_bits'] or 0):.3f} -> {(a['entropy_bits'] or 0):.3f} bits, "
                    f"distinct signatures {b['distinct_signatures']} -> "
                    f"{a['distinct_signatures']}")
    return fig, caption + "."


def _reason_bars(ax, labels: list[str], values: list[int], color: str, empty: str) -> None:
    if not labels:
        _note(ax, empty)
        return
    y = np.arange(len(labels))
    ax.barh(y, values, color=color)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v + max(values) * 0.01, i, str(v), va="center", fontsize=9)
    ax.set_xlim(0, max(values) * 1.12)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _reason_figure(labels: list, values: list, color: str, empty: str, title: str,
                   unit: str) -> Figure:
    """A horizontal bar chart of counts per reason (quarantine and dropped share it)."""
    fig = _figure(7.5, max(2.2, 0.45 * len(labels) + 1.2) if labels else 1.0)
    ax = fig.add_subplot(1, 1, 1)
    _reason_bars(ax, labels, values, color, empty)
    ax.set_title(title)
    if labels:
        ax.set_xlabel(unit)
    return fig


def quarantine_figure(ins: Inspector) -> tuple[Figure, str]:
    table = ins.query("SELECT reason || ' (' || record_kind || ')' AS label, count(*) AS n "
                      "FROM quarantine GROUP BY ALL ORDER BY n DESC, label")
    labels, values = _column(table, "label"), _column(table, "n")
    fig = _reason_figure(labels, values, "#d35400", "nothing was quarantined",
                         "Quarantine reasons", "records")
    counts = ins.manifest.get("counts", {})
    caption = (f"Records set aside by validation, by reason and kind: {sum(values)} records "
               f"({counts.get('quarantined', 0)} queries of {counts.get('read', 0)} read"
               + (f", {counts['rollouts_quarantined']} rollouts"
                  if counts.get("rollouts_quarantined") else "") + ").")
    return fig, caption


def dropped_figure(ins: Inspector) -> tuple[Figure, str]:
    table = ins.named("dropped")
    labels = [f"{r} ({b})" for r, b in zip(_column(table, "reason"), _column(table, "band"))]
    values = _column(table, "queries")
    fig = _reason_figure(labels, values, "#7f8c8d", "nothing was dropped",
                         "Dropped queries by reason and band", "queries")
    caption = (f"Scored queries in neither imitation nor RL: {sum(values)}, by reason "
               "(too_hard/too_easy without a demonstration, zero-variance groups, queries thinned "
               "by the diversity quota) and band.")
    return fig, caption


# --- training figures -----------------------------------------------------------------------

def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    finite = np.where(np.isfinite(values), values, 0.0)
    weight = np.isfinite(values).astype(float)
    kernel = np.ones(window)
    total = np.convolve(finite, kernel, mode="same")
    n = np.convolve(weight, kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


SET_NAMES = {"eval": "held-out eval queries", "train_sample": "fixed training sample",
             "rl": "RL queries (policy-selected)"}
DEFINITIONS = {
    "informative_fraction": "informative-group fraction: the share of queries whose G sampled "
                            "rankings do not all pass and do not all fail (their group-relative "
                            "advantage is not zero, so RL learns from them)",
    "pass_rate": "pass rate: the share of sampled rankings whose reward passes the run's --reward",
    "entropy": "entropy: the mean negative log-probability of a sampled ranking, in nats",
}


CURVE_NAMES = {"bc": "bc: training batches", "rl": "rl: RL batches (policy-selected queries)",
               "eval": "eval: held-out eval queries"}


def _bar_name(row: dict) -> str:
    """A diagnostic's bar label: its policy and the query set it was measured on."""
    name = row["policy"] or f"step {row['step']}"
    where = row.get("set")
    return f"{name} on {SET_NAMES.get(where, where)}" if where else name


def _series(rows: list[dict]) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Splits metric rows into curves (a phase with 2+ points, in step order) and single values
    (a diagnostic per policy and query set, or a phase logged once), which are drawn as bars.

    A curve has one point per step: the trainer logs the evaluation at the end of BC again as
    RL's step 0 (the same step, the same policy), which is drawn once.
    """
    by_phase: dict[str, list[dict]] = {}
    for r in rows:
        by_phase.setdefault(r["phase"] or "?", []).append(r)
    curves, singles = {}, {}
    for phase in sorted(by_phase, key=lambda p: (list(PHASE_COLORS).index(p)
                                                 if p in PHASE_COLORS else 9, p)):
        points = by_phase[phase]
        if phase == "diagnostic":
            for r in points:
                if r["value"] is not None:
                    singles[_bar_name(r)] = r["value"]
            continue
        seen: set = set()
        points = [r for r in points if not (r["step"] in seen or seen.add(r["step"]))]
        if len(points) == 1:
            if points[0]["value"] is not None:
                singles[f"{phase} (step {points[0]['step']})"] = points[0]["value"]
        else:
            curves[phase] = points
    return curves, singles


def _curve(ax, points: list[dict], color: str, label: str) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    steps = np.array([r["step"] for r in points], dtype=float)
    values = np.array([np.nan if r["value"] is None else r["value"] for r in points], float)
    if len(points) > 40:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        window = max(5, len(points) // 40)
        ax.plot(steps, _smooth(values, window), color=color, linewidth=1.8,
                label=f"{label} (mean of {window})")
    else:
        ax.plot(steps, values, color=color, marker="o", markersize=4, linewidth=1.2,
                label=label)


def _bars(ax, singles: dict[str, float], title: str) -> None:
    names = list(singles)
    values = [singles[n] for n in names]
    y = np.arange(len(names))
    ax.barh(y, values, color=[PHASE_COLORS["diagnostic"]] * len(names), alpha=0.8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    span = max([abs(v) for v in values] + [1e-12])
    for i, v in enumerate(values):
        ax.text(v + span * 0.02, i, f"{v:.4g}", va="center", fontsize=9)
    ax.set_xlim(min(0, min(values)), span * 1.25)
    ax.set_title(title, fontsize=10)


def training_figure(ins: Inspector, column: str, title: str) -> tuple[Figure, str]:
    """One training metric: curves for phases logged per step, bars for per-policy values."""
    data = ins.query(f'SELECT phase, policy, "set", step, stage, "{column}" AS value '
                     f'FROM training WHERE "{column}" IS NOT NULL AND step IS NOT NULL '
                     'ORDER BY phase, step')
    curves, singles = _series(data.to_pylist())
    if curves and singles:
        fig = _figure(10.5, 3.2)
        grid = fig.add_gridspec(1, 2, width_ratios=[3, 1.3])
        ax, bar_ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    else:
        fig = _figure(7.5 if curves else 6.0, 3.2 if curves else max(1.8, 0.5 * len(singles)
                                                                    + 1.0))
        ax = fig.add_subplot(1, 1, 1) if curves else None
        bar_ax = fig.add_subplot(1, 1, 1) if singles and not curves else None
    summary = []
    for phase, points in curves.items():
        _curve(ax, points, PHASE_COLORS.get(phase, "#7f8c8d"), CURVE_NAMES.get(phase, phase))
        finite = [r["value"] for r in points if r["value"] is not None
                  and np.isfinite(r["value"])]
        if finite:
            summary.append(f"{phase}: {len(points)} points, last {finite[-1]:.4g}")
        if phase == "rl":
            stages = [r["stage"] for r in points]
            for i in range(1, len(points)):
                if stages[i] != stages[i - 1] and stages[i] is not None:
                    ax.axvline(points[i]["step"], color="#999", linestyle=":", linewidth=0.8)
    if singles:
        _bars(bar_ax, singles, "per policy and query set" if curves
              else f"Training: {title}, per policy and query set")
        summary.append("per policy: " + ", ".join(f"{k} {v:.4g}" for k, v in singles.items()))
    if curves:
        ax.margins(y=0.12)
        _legend(ax)
        ax.set_xlabel("step")
        ax.set_title(f"Training: {title}")
    if not curves and not singles:
        ax = fig.add_subplot(1, 1, 1)
        _note(ax, f"{column} was not logged")
        ax.set_title(f"Training: {title}")
    caption = (f"{title[0].upper() + title[1:]}: "
               + ("curves per logged step, one per phase" if curves else "")
               + (" (dotted lines: RL stage changes)" if "rl" in curves else "")
               + ("; " if curves and singles else "")
               + ("bars: one value per policy and query set (the diagnostics)"
                  if singles else "")
               + (": " + "; ".join(summary) if summary else "not logged") + "."
               + (f" Definition, {DEFINITIONS[column]}." if column in DEFINITIONS else ""))
    return fig, caption


def trained_curriculum(ins: Inspector) -> tuple[str, list[dict]]:
    """(which curriculum RL trained on, in words; its RL stages from that manifest).

    The trainer's summary.json names `rescored_manifest` when it re-scored after BC (relative
    to the training folder, or an absolute path inside it); that manifest is read (JSON and
    listed paths, not the shards' hashes) when it resolves inside the training folder, like
    every other path. Otherwise RL trained on RUN's own curriculum.
    """
    run_stages = [c for c in ins.manifest.get("curriculum", []) if c.get("phase") == "rl"]
    summary = ins.training_summary or {}
    rescored = summary.get("rescored_manifest")
    if not rescored:
        if ins.training_summary is None:
            return ("RL stages as built in this run (no summary.json beside the metrics, so "
                    "whether the trainer re-scored is unknown)"), run_stages
        return "this run's curriculum (the trainer did not re-score after BC)", run_stages
    folder = fs.dirname(ins.training_source) if ins.training_source else ""
    rescored = str(rescored)
    try:
        if not folder:
            raise InputError(rescored, "no training folder: not read")
        if fs.is_remote(rescored) or os.path.isabs(rescored):
            if not is_inside(rescored, folder):
                raise InputError(rescored, "outside the training folder: not read")
        else:  # relative to the trainer's --out, as the trainer writes it
            rescored = resolve_in_run(folder, rescored)
        where = f"the re-scored curriculum {rescored} (rebuilt with the BC policy after BC)"
        manifest = load_manifest(rescored, verify_files=False)
    except InputError as exc:
        return (f"the re-scored curriculum {rescored} (rebuilt with the BC policy after BC); its "
                f"stages could not be read ({exc})"), []
    return where, [c for c in manifest.get("curriculum", []) if c.get("phase") == "rl"]


def reward_figure(ins: Inspector) -> tuple[Figure, str]:
    """RL reward in one panel per stage (shared y), each with its stage's pass-rate mean."""
    data = ins.query("SELECT step, stage, reward_mean AS value FROM training "
                     "WHERE phase = 'rl' AND reward_mean IS NOT NULL AND step IS NOT NULL "
                     "ORDER BY step")
    rows = data.to_pylist()
    stages = sorted({r["stage"] for r in rows if r["stage"] is not None})
    if not rows:
        fig, caption = training_figure(ins, "reward_mean", "reward (mean over the group)")
        return fig, caption
    if not stages:
        stages = [None]
    _, curriculum = trained_curriculum(ins)
    pass_mean = {c.get("stage"): c.get("pass_rate_mean") for c in curriculum}
    fig = _figure(min(12.0, 3.0 + 2.6 * len(stages)), 3.2)
    axes = fig.subplots(1, len(stages), sharey=True, squeeze=False)[0]
    parts = []
    for ax, stage in zip(axes, stages):
        points = [r for r in rows if r["stage"] == stage or stage is None]
        _curve(ax, points, PHASE_COLORS["rl"], "reward")
        values = np.array([r["value"] for r in points], dtype=float)
        tenth = max(1, len(values) // 10)
        first, last = np.nanmean(values[:tenth]), np.nanmean(values[-tenth:])
        expected = pass_mean.get(stage)
        if isinstance(expected, (int, float)):
            ax.axhline(expected, color="#555", linestyle=":", linewidth=1)
        ax.set_title(f"stage {stage}" + (f" (pass rate {expected:.2f})"
                                         if isinstance(expected, (int, float)) else ""),
                     fontsize=10)
        ax.set_xlabel("step")
        ax.margins(y=0.12)
        parts.append(f"stage {stage}: {len(points)} steps, reward {first:.3f} -> {last:.3f}"
                     + (f" (stage pass rate {expected:.3f})"
                        if isinstance(expected, (int, float)) else ""))
    axes[0].set_ylabel("reward (mean over the group)")
    fig.suptitle("Training: RL reward per stage", fontsize=11)
    caption = ("RL reward per step, one panel per curriculum stage (stages run from easy to hard, "
               "so the level steps down at a stage change by design: read each panel on its "
               "own; dotted line: the stage's mean pass rate under the policy that built it). "
               + "; ".join(parts) + ".")
    return fig, caption


# --- tables and page ------------------------------------------------------------------------

def html_table(table: pa.Table, empty: str = "no rows", max_columns: int = 12) -> str:
    """An HTML table that fits the page: cells wrap, and a table wider than `max_columns`
    columns is transposed when that is narrower (one row per column; the first column's values
    head the columns)."""
    if table.num_rows == 0:
        return f'<p class="empty">{html.escape(empty)}</p>'
    names = table.column_names
    data = table.to_pylist()
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    decimals = [_decimals([r[n] for r in data]) if pa.types.is_floating(t) else 4
                for n, t in zip(names, table.schema.types)]
    cells = [[_short(row[n], 80, d) for n, d in zip(names, decimals)] for row in data]
    esc = html.escape
    if len(names) > max_columns and len(data) < len(names):
        head = f"<th>{esc(names[0])}</th>" + "".join(
            f'<th class="num">{esc(row[0])}</th>' for row in cells)
        body = "".join(
            f"<tr><th>{esc(n)}</th>" + "".join(
                f'<td class="{"num" if num else ""}">{esc(row[j])}</td>' for row in cells)
            + "</tr>" for j, (n, num) in enumerate(zip(names, numeric)) if j > 0)
        return (f'<table class="transposed"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
    head = "".join(f'<th class="{"num" if num else ""}">{esc(n)}</th>'
                   for n, num in zip(names, numeric))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if num else ""}">{esc(c)}</td>'
                                    for c, num in zip(row, numeric)) + "</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(fig_id: str, draw: Callable[[], tuple[Figure, str]]) -> str:
    fig, caption = draw()
    return (f'<figure id="{fig_id}"><img alt="{html.escape(caption, quote=True)}" '
            f'src="data:image/png;base64,{_png(fig)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def build_report(ins: Inspector) -> str:
    """The report page as one HTML string."""
    m = ins.manifest
    counts = m.get("counts", {})
    esc = html.escape
    inputs = ", ".join(f"{i.get('path')} ({i.get('format')})" for i in m.get("inputs", []))
    policy = m.get("policy", {}) or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Curriculum run {esc(os.path.basename(ins.root))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Curriculum run <code>{esc(ins.root)}</code></h1>",
        f'<p class="meta">{esc(str(m.get("created_by", "")))} '
        f'{esc(str(m.get("package_version", "")))}, schema {esc(str(m.get("schema_version")))},'
        f' config <code>{esc(str(m.get("config_hash", ""))[:12])}</code>; inputs: '
        f'{esc(inputs)}; policy {esc(str(policy.get("policy_id", "")))} '
        f'(<code>{esc(str(policy.get("fingerprint", "")))}</code>)'
        + (f"; training metrics <code>{esc(ins.training_source)}</code>"
           if ins.training_source else "")
        + f'; report written {datetime.datetime.now().isoformat(timespec="seconds")}.</p>',
        "<p>read {read} = quarantined {q} + scored {s}; bands: too_hard {h}, learnable {l}, "
        "too_easy {e}; fates: imitation {i}, rl {r} ({rows} rows, {rep} replayed), dropped {d}."
        "</p>".format(read=counts.get("read", 0), q=counts.get("quarantined", 0),
                      s=counts.get("scored", 0), h=counts.get("too_hard", 0),
                      l=counts.get("learnable", 0), e=counts.get("too_easy", 0),
                      i=counts.get("imitation", 0), r=counts.get("rl", 0),
                      rows=counts.get("rl_rows", 0), rep=counts.get("rl_replayed", 0),
                      d=counts.get("dropped", 0)),
        "<h2>Difficulty</h2>",
        _figure_html("pass-rates", lambda: pass_rate_figure(ins)),
        _figure_html("bands", lambda: bands_figure(ins)),
        html_table(ins.named("bands")),
        "<h2>Curriculum</h2>",
        _figure_html("stages", lambda: stages_figure(ins)),
        html_table(ins.named("stages")),
        "<h2>Demonstration diversity</h2>",
        _figure_html("diversity", lambda: diversity_figure(ins)),
        html_table(ins.named("diversity")),
        "<h2>Quarantine and dropped queries</h2>",
        _figure_html("quarantine", lambda: quarantine_figure(ins)),
        html_table(ins.named("quarantine"), "nothing was quarantined"),
        _figure_html("dropped", lambda: dropped_figure(ins)),
        html_table(ins.named("dropped"), "nothing was dropped"),
    ]
    if ins.has_training():
        used, stages = trained_curriculum(ins)
        parts += ["<h2>Training</h2>",
                  f"<p>Training metrics <code>{esc(ins.training_source or '')}</code>. RL trained "
                  f"on {esc(used)}.</p>"]
        if stages:
            parts.append(html_table(pa.table({
                "stage": [c.get("stage") for c in stages],
                "queries": [c.get("queries") for c in stages],
                "rows": [c.get("rows") for c in stages],
                "pass_rate_min": [c.get("pass_rate_min") for c in stages],
                "pass_rate_mean": [c.get("pass_rate_mean") for c in stages],
                "pass_rate_max": [c.get("pass_rate_max") for c in stages]})))
        for fig_id, column, title in TRAINING_METRICS:
            draw = ((lambda: reward_figure(ins)) if fig_id == "training-reward" else
                    (lambda c=column, t=title: training_figure(ins, c, t)))
            parts.append(_figure_html(fig_id, draw))
        parts.append(html_table(ins.named("training")))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(ins: Inspector, path: str) -> str:
    """Writes the report page to `path` (local or remote, through data_contracts/fs.py; the
    command line has refused a path inside the run); returns `path`."""
    fs.write_bytes(path, build_report(ins).encode("utf-8"))
    return path
