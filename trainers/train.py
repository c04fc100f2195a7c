"""Trains a reranking policy: behavior cloning on the imitation shards, then RL over the RL stages.

Read top to bottom:
  1. load the manifest (refused if another schema version or a file hash does not match);
  2. evaluate the untrained policy; measure its informative-group fraction;
  3. BC: Plackett-Luce likelihood of the teacher's order (ListMLE), over the imitation shards;
  4. optionally re-score: rebuild the curriculum with the BC checkpoint as the policy;
  5. RL: G sampled rankings per query, reward per ranking, advantage relative to the group,
     policy gradient on exact Plackett-Luce log-probabilities, optional KL to the BC policy;
  6. evaluate, measure again, and write summary.json.

Checkpoints hold model, optimizer, RNG states and the position in the curriculum; a killed run
resumed with `--resume` ends with bitwise the same weights as an uninterrupted one (CPU).

Usage: python -m trainers.train [--manifest RUN/manifest.json] [--out DIR] [--rescore-after-bc]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from data_contracts.arrays import pad_queries
from data_contracts.errors import InputError
from data_contracts.manifest import files_of, load_manifest
from data_contracts.readers import read_queries
from data_contracts.synthetic import config_from_dict as synthetic_config
from data_contracts.synthetic import generate_table
from data_contracts.validate import ValidationState, validate_queries
from difficulty.policy import RerankPolicy, base_policy, load_policy_checkpoint, save_policy
from difficulty.rewards import evaluate, ndcg_of_scores, parse_reward
from difficulty.sampler import gumbel_noise, log_prob, ranking_diversity, sample_rankings
from trainers.data import ShardStream, teacher_order_tensor, to_tensors

DEFAULT_MANIFEST = "runs/default/manifest.json"
DEFAULT_OUT = "runs/train-default"


@dataclass
class TrainConfig:
    """Every knob of a training run (each is a command-line flag of the same name)."""

    manifest: str = DEFAULT_MANIFEST
    out: str = DEFAULT_OUT
    seed: int = 0
    batch_queries: int = 32
    bc_epochs: int = 20
    bc_lr: float = 3e-3
    rl_epochs: int = 2
    rl_lr: float = 3e-4
    group_size: int = 16
    temperature: float = 1.0
    kl_coef: float = 0.05
    rescore_after_bc: bool = False
    eval_input: str = ""
    eval_format: str = "auto"
    diagnostic_rollouts: int = 16
    sparsity_tol: float = 1e-6
    checkpoint_every: int = 50
    resume: bool = False
    stop_after: int = 0  # testing aid: exit (as if killed) right after this many steps


# ---------------------------------------------------------------------------------------------
# Small helpers: queries from any input, NDCG, group diagnostics, checkpoints.

def read_validated(path: str, fmt: str) -> pa.Table:
    """Valid, labelled queries of an input (NDCG needs labels)."""
    state = ValidationState(require_labels=True)
    tables = [validate_queries(b, state)[0] for b in read_queries(path, fmt)]
    return pa.concat_tables(tables)


def eval_queries(cfg: TrainConfig, manifest: dict) -> pa.Table | None:
    """The held-out split: --eval-input, else a synthetic test split for a synthetic run."""
    if cfg.eval_input:
        return read_validated(cfg.eval_input, cfg.eval_format)
    synthetic = manifest["config"].get("synthetic")
    if manifest["inputs"][0]["format"] == "synthetic" and synthetic:
        held_out = dataclasses.replace(synthetic_config(synthetic), split="test", n_queries=300)
        return generate_table(held_out)
    return None


def ndcg_at_10(model: RerankPolicy, table: pa.Table | None) -> float | None:
    if table is None:
        return None
    padded = pad_queries(table)
    with torch.no_grad():
        scores = model(torch.from_numpy(padded.features), torch.from_numpy(padded.mask)).numpy()
    return float(ndcg_of_scores(scores, padded.labels, padded.mask, k=10).mean())


def group_diagnostics(model: RerankPolicy, table: pa.Table, reward, cfg: TrainConfig,
                      stream: int) -> dict:
    """Pass rate, informative-group fraction, entropy and ranking diversity of G rollouts/query."""
    padded = pad_queries(table)
    features, mask, _ = to_tensors(padded)
    with torch.no_grad():
        scores = model(features, mask)
        noise = gumbel_noise(padded.query_ids, padded.n_docs, cfg.diagnostic_rollouts, cfg.seed,
                             stream)
        rankings = sample_rankings(scores, mask, noise, cfg.temperature)
        logp = log_prob(scores, rankings, mask, cfg.temperature)
    _, passed = evaluate(reward, rankings.numpy(), padded.labels, padded.mask)
    informative = passed.min(-1) != passed.max(-1)
    return {"pass_rate": float(passed.mean()), "informative_fraction": float(informative.mean()),
            "entropy": float(-logp.mean()),
            "ranking_diversity": float(ranking_diversity(rankings.numpy(), padded.n_docs).mean()),
            "queries": int(table.num_rows)}


def shard_queries(files: list[str]) -> pa.Table:
    """All distinct queries of some shards (for diagnostics; the curriculum is small enough)."""
    tables = [b.table for b in ShardStream(files, batch_size=1024)]
    if not tables:
        return None
    table = pa.concat_tables(tables)
    _, first = np.unique(np.array(table.column("query_id").to_pylist(), dtype=object),
                         return_index=True)
    return table.take(pa.array(np.sort(first)))


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": _numpy_state()}


def _numpy_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))


def save_checkpoint(path: str, model, optimizer, position: dict, extra: dict) -> None:
    """Atomically writes model, optimizer, RNG states and curriculum position."""
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "model_config": asdict(model.config),
                "optimizer": optimizer.state_dict(), "rng": rng_state(),
                "position": position, **extra}, tmp)
    os.replace(tmp, path)


class MetricsLog:
    """Per-step metrics as JSON lines (DuckDB reads them with read_json_auto)."""

    def __init__(self, path: str, append: bool):
        self.handle = open(path, "a" if append else "w", encoding="utf-8")

    def write(self, **row) -> None:
        self.handle.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        self.handle.flush()


# ---------------------------------------------------------------------------------------------
# The two losses.

def bc_loss(model: RerankPolicy, batch) -> torch.Tensor:
    """Weighted negative Plackett-Luce log-likelihood of the teacher's order (ListMLE)."""
    features, mask, _ = to_tensors(batch.padded)
    order = teacher_order_tensor(batch.table, features.shape[1])
    weight = torch.tensor(batch.table.column("weight").to_numpy(), dtype=torch.float32)
    logp = log_prob(model(features, mask), order.unsqueeze(1), mask)[:, 0]
    n_docs = mask.sum(-1).clamp(min=1).to(torch.float32)
    return -(weight * logp / n_docs).sum() / weight.sum().clamp(min=1e-8)


def rl_loss(model, reference, batch, reward, cfg: TrainConfig, stream: int) -> tuple:
    """Group-relative policy gradient on G sampled rankings per query, plus KL to `reference`."""
    features, mask, _ = to_tensors(batch.padded)
    scores = model(features, mask)
    noise = gumbel_noise(batch.padded.query_ids, batch.padded.n_docs, cfg.group_size, cfg.seed,
                         stream)
    rankings = sample_rankings(scores.detach(), mask, noise, cfg.temperature)
    logp = log_prob(scores, rankings, mask, cfg.temperature)
    _, passed = evaluate(reward, rankings.numpy(), batch.padded.labels, batch.padded.mask)
    r = torch.from_numpy(passed.astype(np.float32))
    advantage = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + 1e-6)
    loss = -(advantage * logp).mean()
    kl = torch.zeros(())
    if reference is not None and cfg.kl_coef > 0:
        with torch.no_grad():
            ref_logp = log_prob(reference(features, mask), rankings, mask, cfg.temperature)
        log_ratio = ref_logp - logp  # k3 estimator of KL(policy || reference), >= 0
        kl = (torch.exp(log_ratio) - log_ratio - 1).mean()
        loss = loss + cfg.kl_coef * kl
    informative = (r.min(-1).values != r.max(-1).values).float().mean()
    return loss, {"reward_mean": float(r.mean()), "informative_fraction": float(informative),
                  "entropy": float(-logp.detach().mean()), "kl": float(kl.detach()),
                  "ranking_diversity": float(ranking_diversity(rankings.numpy(),
                                                               batch.padded.n_docs).mean())}


# ---------------------------------------------------------------------------------------------

def train(cfg: TrainConfig) -> dict:
    """Runs BC then RL as configured; returns the summary (also written to OUT/summary.json)."""
    manifest = load_manifest(cfg.manifest)
    os.makedirs(cfg.out, exist_ok=True)
    ckpt_path = os.path.join(cfg.out, "checkpoint.pt")
    reward = parse_reward(manifest["config"]["reward"])
    imitation_files = files_of(manifest, "imitation")
    rl_manifest = manifest

    # The untrained policy is the pipeline's `base` policy: the same weights scored the curriculum.
    first = (imitation_files or files_of(manifest, "rl"))
    if not first:
        raise InputError(cfg.manifest, "the curriculum has no imitation and no RL shards")
    n_features = len(next(iter(ShardStream(first[:1], 1))).padded.features[0, 0])
    model = base_policy(n_features, manifest["config"]["seed"])
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.bc_lr)
    position = {"phase": "bc", "epoch": 0, "stage": 0, "file": 0, "row": 0, "step": 0}
    summary: dict = {"config": asdict(cfg), "manifest": os.path.abspath(cfg.manifest)}
    resumed = cfg.resume and os.path.exists(ckpt_path)
    if resumed:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        position = dict(state["position"])
        summary = json.loads(state["summary"])
        if position["phase"] == "rl":
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.rl_lr)
            if summary.get("rescored_manifest"):
                rl_manifest = load_manifest(summary["rescored_manifest"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
    log = MetricsLog(os.path.join(cfg.out, "metrics.jsonl"), append=resumed)
    held_out = eval_queries(cfg, manifest)
    diag_queries = shard_queries(imitation_files + files_of(manifest, "rl"))
    step = position["step"]

    def checkpoint(force: bool = False, **extra) -> None:
        if force or step % cfg.checkpoint_every == 0:
            save_checkpoint(ckpt_path, model, optimizer, dict(position, step=step),
                            {"summary": json.dumps(summary), **extra})
        if cfg.stop_after and step >= cfg.stop_after:
            save_checkpoint(ckpt_path, model, optimizer, dict(position, step=step),
                            {"summary": json.dumps(summary)})
            log.handle.close()
            os._exit(3)  # behave like a kill right after a checkpoint

    def measure(name: str) -> None:
        diag = group_diagnostics(model, diag_queries, reward, cfg, stream=10_000)
        summary.setdefault("diagnostics", {})[name] = diag
        summary.setdefault("ndcg@10", {})[name] = ndcg_at_10(model, held_out)
        log.write(phase="diagnostic", policy=name, step=step,
                  ndcg_at_10=summary["ndcg@10"][name], **diag)

    if not resumed:
        measure("untrained")

    # --- behavior cloning ---------------------------------------------------------------------
    if position["phase"] == "bc":
        total = cfg.bc_epochs * max(1, sum(-(-f["rows"] // cfg.batch_queries)
                                           for f in manifest["files"] if f["phase"] == "imitation"))
        bar = tqdm(total=total, initial=step, desc="bc", disable=None)
        for epoch in range(position["epoch"], cfg.bc_epochs):
            start = (position["file"], position["row"]) if epoch == position["epoch"] else (0, 0)
            for batch in ShardStream(imitation_files, cfg.batch_queries, start, ("weight",)):
                model.train()
                loss = bc_loss(model, batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                bar.update(1)
                position.update(epoch=epoch, file=batch.file_index,
                                row=batch.row_start + batch.rows)
                log.write(phase="bc", step=step, epoch=epoch, loss=float(loss.detach()))
                checkpoint()
            position.update(epoch=epoch + 1, file=0, row=0)
        bar.close()
        model.eval()
        save_policy(model, os.path.join(cfg.out, "bc.pt"))
        measure("bc")
        if cfg.rescore_after_bc:
            rescored = rescore(manifest, os.path.join(cfg.out, "bc.pt"),
                               os.path.join(cfg.out, "rescored"))
            summary["rescored_manifest"] = os.path.join(rescored, "manifest.json")
            rl_manifest = load_manifest(summary["rescored_manifest"])
            summary["rescored_counts"] = rl_manifest["counts"]
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.rl_lr)
        position = {"phase": "rl", "epoch": 0, "stage": 0, "file": 0, "row": 0, "step": step}
        checkpoint(force=True)

    # --- reinforcement learning, stage by stage in curriculum order ---------------------------
    reference = load_policy_checkpoint(os.path.join(cfg.out, "bc.pt"))
    reference.eval()
    stages = [s for s in rl_manifest["curriculum"] if s["phase"] == "rl"]
    rl_files_all = [files_of(rl_manifest, "rl", s["stage"]) for s in stages]
    total = cfg.rl_epochs * sum(-(-s["rows"] // cfg.batch_queries) for s in stages)
    bar = tqdm(total=total, desc="rl", disable=None)
    for stage_index in range(position["stage"], len(stages)):
        for epoch in range(position["epoch"] if stage_index == position["stage"] else 0,
                           cfg.rl_epochs):
            resume_here = stage_index == position["stage"] and epoch == position["epoch"]
            start = (position["file"], position["row"]) if resume_here else (0, 0)
            for batch in ShardStream(rl_files_all[stage_index], cfg.batch_queries, start):
                model.train()
                loss, info = rl_loss(model, reference, batch, reward, cfg, stream=step + 1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                bar.update(1)
                position.update(stage=stage_index, epoch=epoch, file=batch.file_index,
                                row=batch.row_start + batch.rows)
                log.write(phase="rl", step=step, stage=stages[stage_index]["stage"], epoch=epoch,
                          loss=float(loss.detach()), **info)
                checkpoint()
            position.update(stage=stage_index, epoch=epoch + 1, file=0, row=0)
        position.update(stage=stage_index + 1, epoch=0, file=0, row=0)
    bar.close()
    model.eval()
    save_policy(model, os.path.join(cfg.out, "final.pt"))
    measure("rl")
    # The same RL queries (the final curriculum's) under each policy: does BC make them legible?
    rl_queries = shard_queries([f for fs in rl_files_all for f in fs])
    if rl_queries is not None:
        untrained = base_policy(n_features, manifest["config"]["seed"])
        summary["rl_queries"] = {
            name: group_diagnostics(policy, rl_queries, reward, cfg, stream=20_000)
            for name, policy in (("untrained", untrained), ("bc", reference), ("rl", model))}
    summary["update_sparsity"] = update_sparsity(reference, model, cfg.sparsity_tol)
    summary["steps"] = step
    with open(os.path.join(cfg.out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    log.write(phase="summary", step=step, **{f"ndcg_at_10_{k}": v
                                             for k, v in summary["ndcg@10"].items()})
    log.handle.close()
    return summary


def update_sparsity(before: RerankPolicy, after: RerankPolicy, tol: float) -> dict:
    """Fraction of parameters whose RL update exceeds `tol` in absolute value (and per tensor)."""
    changed, total, per_tensor = 0, 0, {}
    after_params = dict(after.named_parameters())
    for name, p0 in before.named_parameters():
        delta = (after_params[name].detach() - p0.detach()).abs()
        n_changed = int((delta > tol).sum())
        changed += n_changed
        total += delta.numel()
        per_tensor[name] = n_changed / delta.numel()
    return {"tolerance": tol, "fraction_changed": changed / max(total, 1),
            "fraction_unchanged": 1 - changed / max(total, 1), "per_tensor": per_tensor}


def rescore(manifest: dict, checkpoint: str, out: str) -> str:
    """Re-runs difficulty scoring and the curriculum with `checkpoint` as the policy."""
    from pipelines.build_curriculum import run
    from pipelines.config import config_from_dict

    config = config_from_dict(manifest["config"], out=out)
    config.policy = os.path.abspath(checkpoint)
    return run(config).out


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainers.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(flag, type=kind, default=f.default, help=f"(default: {f.default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    cfg = TrainConfig(**vars(args))
    try:
        summary = train(cfg)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = summary["ndcg@10"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"wrote {os.path.abspath(cfg.out)}")
    print(f"  ndcg@10: untrained {fmt(n.get('untrained'))}, bc {fmt(n.get('bc'))}, "
          f"rl {fmt(n.get('rl'))}")
    d = summary["diagnostics"]
    print("  informative-group fraction: " + ", ".join(
        f"{k} {d[k]['informative_fraction']:.3f}" for k in ("untrained", "bc", "rl") if k in d))
    print("  pass rate: " + ", ".join(f"{k} {d[k]['pass_rate']:.3f}" for k in d))
    for k, v in summary.get("rl_queries", {}).items():
        print(f"  on the {v['queries']} RL queries, {k}: informative {v['informative_fraction']:.3f},"
              f" pass rate {v['pass_rate']:.3f}, entropy {v['entropy']:.2f}")
    print(f"  update sparsity: {summary['update_sparsity']['fraction_unchanged']:.3f} of "
          f"parameters unchanged beyond {cfg.sparsity_tol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
