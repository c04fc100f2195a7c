"""The trainer's settings: `TrainConfig` (one field per command-line flag), its help texts, and the
checks that refuse values no run can use (options, and the build settings a manifest carries)."""
from __future__ import annotations

from dataclasses import dataclass

from curricula.hashing import VAL_FRACTION
from data_contracts.errors import InputError
from difficulty.rewards import parse_reward
from difficulty.sampler import MAX_SEED, ROLLOUT_REWARDS, TEMPERATURE_RANGE

DEFAULT_MANIFEST = "runs/default/manifest.json"
DEFAULT_OUT = "runs/train-default"
BC_LOSSES = ("listmle_ties", "listnet", "listmle")
RL_ORDERS = ("curriculum", "shuffled")
IMITATE = ("all", "out_of_rl")


@dataclass
class TrainConfig:
    """Every knob of a training run (each is a command-line flag of the same name, see HELP)."""

    manifest: str = DEFAULT_MANIFEST
    out: str = DEFAULT_OUT
    seed: int = 0
    batch_queries: int = 32
    bc_steps: int = 100
    bc_lr: float = 3e-4
    bc_loss: str = "listmle_ties"
    imitate: str = "all"
    rl_steps: int = 150
    rl_lr: float = 1e-4
    rl_order: str = "curriculum"
    rl_reward: str = "pass"
    rl_rollouts: int = 0
    group_size: int = 16
    temperature: float = 1.0
    kl_coef: float = 0.05
    init: str = ""
    val_fraction: float = VAL_FRACTION
    eval_every: int = 25
    rescore_after_bc: bool = False
    eval_input: str = ""
    eval_format: str = "auto"
    eval_candidates: str = ""
    eval_qrels: str = ""
    diagnostic_rollouts: int = 16
    train_sample: int = 200
    sparsity_tol: float = 1e-6
    checkpoint_every: int = 50
    progress_seconds: float = 5.0
    resume: bool = False
    stop_after: int = 0  # testing aid: exit (as if killed) right after this many steps


HELP = {
    "manifest": "the curriculum's manifest.json (or its run folder)",
    "out": "output folder (local, gs:// or s3://) for checkpoints, metrics.jsonl and "
           "summary.json; not inside a run folder, not a folder of other files (built as "
           "OUT.partial, renamed at the end; a store's is uploaded at the end)",
    "seed": "seed of training randomness (batches' tie-breaks, rollouts)",
    "batch_queries": "queries per optimizer step (BC and RL)",
    "bc_steps": "BC optimizer steps (0: no BC)",
    "bc_lr": "BC learning rate (Adam)",
    "bc_loss": "listmle_ties: Plackett-Luce with random tie-breaking; listnet: softmax "
               "cross-entropy to the teacher's scores; listmle: ties in file order (old)",
    "imitate": "all: BC imitates every curriculum query with a demonstration (the imitation "
               "and the RL shards); out_of_rl: only the imitation shards (too_hard/too_easy)",
    "rl_steps": "RL optimizer steps, split over the stages by rows (0: no RL)",
    "rl_lr": "RL learning rate (Adam)",
    "rl_rollouts": "RL rollout budget, split over the stages by rows like the steps; RL ends at "
                   "whichever budget is spent first (0: steps only)",
    "rl_reward": "pass: a rollout's reward is 1 when its ranking passes the build's reward, else "
                 "0; graded: the reward's metric value (e.g. NDCG@10 of the sampled ranking), "
                 "so all-fail and all-pass groups still have non-zero advantages",
    "rl_order": "curriculum: stage by stage; shuffled: all RL rows in query-hash order (control)",
    "group_size": "G, sampled rankings per query per RL step (rollouts = rows x G)",
    "temperature": "Plackett-Luce sampling temperature",
    "kl_coef": "weight of the KL penalty to the policy RL started from",
    "init": "start from this policy checkpoint instead of BC (BC is skipped)",
    "val_fraction": "fraction of curriculum queries held out for validation (crc32 of query id)",
    "eval_every": "steps between validation (and --eval-input) measurements",
    "rescore_after_bc": "rebuild the curriculum with the BC policy before RL",
    "eval_input": "held-out labelled queries to report NDCG@10 on (read with the manifest's "
                  "feature space)",
    "eval_format": "format of --eval-input",
    "eval_candidates": "a text --eval-input's candidates (a TREC run; BEIR and MS MARCO folders "
                       "need one), read to the build's --candidate-depth",
    "eval_qrels": "a text --eval-input's TREC qrels, where its layout does not hold them",
    "diagnostic_rollouts": "rollouts per query for the group diagnostics",
    "train_sample": "size of the fixed hash sample of training queries for diagnostics",
    "sparsity_tol": "a parameter counts as changed by RL beyond this absolute change",
    "checkpoint_every": "steps between checkpoints",
    "progress_seconds": "seconds between progress lines on stderr",
    "resume": "continue a killed run from OUT.partial/checkpoint.pt",
    "stop_after": "testing aid: exit with status 3 right after this many steps",
}


def check_config(cfg: TrainConfig) -> None:
    """Raises InputError for values no run can use."""
    for name in ("batch_queries", "eval_every", "checkpoint_every", "diagnostic_rollouts"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}", "must be at least 1")
    if cfg.group_size < 2:  # one rollout is its own group mean: every advantage would be 0
        raise InputError("--group-size", "must be at least 2 (a group-relative advantage "
                                         "needs two rollouts)")
    for name, high in (("group_size", 1024), ("diagnostic_rollouts", 1024),
                       ("batch_queries", 1 << 16)):  # memory grows with these
        if getattr(cfg, name) > high:
            raise InputError(f"--{name.replace('_', '-')}", f"must be at most {high}")
    for name, high in (("bc_lr", 1.0), ("rl_lr", 1.0), ("kl_coef", 1e3),
                       ("sparsity_tol", 1.0), ("progress_seconds", 1e6)):
        value = getattr(cfg, name)
        if not 0 <= value <= high:  # NaN fails too
            raise InputError(f"--{name.replace('_', '-')}", f"must be within [0, {high:g}] "
                                                            f"(got {value:g})")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise InputError("--seed", f"must be within [0, {MAX_SEED}] (got {cfg.seed})")
    for name in ("bc_steps", "rl_steps", "rl_rollouts", "train_sample", "stop_after"):
        if getattr(cfg, name) < 0:
            raise InputError(f"--{name.replace('_', '-')}", "must not be negative")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise InputError("--val-fraction", "must be in [0, 1)")
    low, high = TEMPERATURE_RANGE
    if not low <= cfg.temperature <= high:
        raise InputError("--temperature", f"must be within [{low:g}, {high:g}] (got "
                                          f"{cfg.temperature:g})")
    if cfg.bc_loss not in BC_LOSSES:
        raise InputError("--bc-loss", f"expected one of {BC_LOSSES}")
    if cfg.imitate not in IMITATE:
        raise InputError("--imitate", f"expected one of {IMITATE}")
    if cfg.rl_reward not in ROLLOUT_REWARDS:
        raise InputError("--rl-reward", f"expected one of {ROLLOUT_REWARDS}")
    if cfg.rl_order not in RL_ORDERS:
        raise InputError("--rl-order", f"expected one of {RL_ORDERS}")


def check_run_config(path: str, manifest: dict) -> None:
    """The build settings a trainer uses (the reward, the seed, the inputs) are there and valid.

    Raises:
      InputError: naming the manifest and the field (an edited or foreign manifest).
    """
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise InputError(path, "no build 'config' object; not a build_curriculum manifest",
                         column="config")
    try:
        parse_reward(str(config.get("reward")))
    except ValueError as exc:
        raise InputError(path, f"config.reward: {exc}", column="config") from None
    seed = config.get("seed")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        raise InputError(path, f"config.seed {seed!r} is not a seed in [0, {MAX_SEED}]",
                         column="config")
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(
            isinstance(i, dict) and isinstance(i.get("path"), str) for i in inputs):
        raise InputError(path, "'inputs' is not a list of inputs with paths", column="inputs")
