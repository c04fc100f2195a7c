"""The full configuration of a curriculum run, as one dataclass (recorded whole in the manifest)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from curricula.diversity import DiversityConfig
from curricula.ordering import OrderConfig
from curricula.routing import RoutingConfig
from data_contracts.readers.text import TextOptions
from data_contracts.synthetic import SyntheticConfig
from data_contracts.synthetic_text import SyntheticTextConfig
from data_contracts.synthetic import config_from_dict as synthetic_from_dict
from difficulty.estimate import BandConfig, Budget
from difficulty.policy_spec import PolicySpec
from difficulty.rewards import parse_reward

if TYPE_CHECKING:
    from difficulty.scoring import ScoringConfig

DEFAULT_OUT = "runs/default"


@dataclass
class CurriculumConfig:
    """Everything a run depends on.

    Attributes:
      inputs: query inputs; empty means the embedded synthetic default.
      input_format: auto|svmlight|lightgbm|parquet|jsonl|hf.
      column_map: for `hf`, contract column -> dataset column.
      split: value for the `split` column (and the HF split to read).
      rollouts: an outside policy's rollout log (a path, or a list of paths: every round's
        results); when set, rollouts are read, not sampled. A file of OpenAI batch output lines
        is read against its requests.json (`requests`, else the one beside it).
      requests: the requests.json (or folder) the batch results answer: one path for every
        results file, or one per results file, in the same order (None: beside each).
      policy: base|teacher|CHECKPOINT, or `none` (read and validate only: every valid query is
        kept with its texts in the `pending` phase, for the first round of requests).
      generate_with: an OpenAI-compatible server's base URL; the policy's rollouts are asked from
        it in pass 1 (pipelines.generate), with `generation`'s settings.
      reward: ndcg@K>=TAU[,gain=exp] | hit@1 | log.
      k, k_max, adaptive: rollouts per round, maximum, adaptive rounds.
      budget_rule, prior: how later rounds are sized (difficulty.estimate.Budget: `rounds` or
        `planned`) and the planner's prior (`none` or `learned`).
      temperature: sampling temperature.
      seed: seeds per-query randomness, the base policy, clustering and selection.
      label_min, label_max: declared label range.
      teacher: where demonstrations come from: auto|column|labels|none.
      out: run folder.
      batch_size: queries per batch moved through the pipeline.
      shards: Parquet shards per output (per stage for RL).
      synthetic: the embedded default's knobs (used when `inputs` is empty).
      zero_based: the dataset's feature ids are zero-based (True), one-based (False) or decided
        over all inputs (None: zero-based when any file uses id 0).
      group_rows: group a query's rows that are not adjacent, in memory per file.
      max_feature_id: a larger SVMlight feature id quarantines its query.
      repeated_features: an SVMlight feature id repeated on a line keeps its last value
        (`last`) or quarantines its query (`quarantine`).
      max_quarantine: a run that quarantines more than this share of what it read fails.
      synthetic_kind: the embedded default: `features` (data_contracts/synthetic.py) or `text`
        (data_contracts/synthetic_text.py, `synthetic.n_queries` queries, `synthetic.seed`).
      candidates: for text inputs, a TREC run naming each query's candidates, in order.
      qrels: TREC qrels where the input's layout does not hold them.
      teacher_run: a TREC run giving the teacher's demonstration order (any input format).
      candidate_depth: keep each query's first N candidates of a text input (None: all).
      rollout_format: how a rollout log's `generation` text is parsed: permutation|answer.
      malformed: a malformed generation is a failed rollout (`fail`) or repaired (`repair`).
    """

    inputs: list = field(default_factory=list)
    input_format: str = "auto"
    column_map: dict = field(default_factory=dict)
    split: str | None = None
    rollouts: str | list | None = None
    requests: str | list | None = None
    policy: str = "base"
    generate_with: str | None = None
    generation: dict | None = None  # pipelines.generate.GenerationOptions' fields
    reward: str = "ndcg@10>=0.7"
    k: int = 16
    k_max: int = 64
    adaptive: bool = True
    budget_rule: str = "rounds"
    prior: str = "none"
    temperature: float = 1.0
    seed: int = 0
    label_min: float = 0.0
    label_max: float = 4.0
    teacher: str = "auto"
    bands: BandConfig = field(default_factory=BandConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    order: OrderConfig = field(default_factory=OrderConfig)
    out: str = DEFAULT_OUT
    batch_size: int = 256
    shards: int = 2
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    zero_based: bool | None = None
    group_rows: bool = False
    max_feature_id: int = 100_000  # data_contracts.readers.space.DEFAULT_MAX_FEATURE_ID
    repeated_features: str = "last"
    max_quarantine: float = 0.5  # data_contracts.usable.DEFAULT_MAX_QUARANTINE
    synthetic_kind: str = "features"
    candidates: str | None = None
    qrels: str | None = None
    teacher_run: str | None = None
    candidate_depth: int | None = None
    rollout_format: str = "permutation"
    malformed: str = "fail"

    def rollout_paths(self) -> list[str]:
        """Every rollout log or results file, in the order given."""
        if not self.rollouts:
            return []
        return [self.rollouts] if isinstance(self.rollouts, str) else list(self.rollouts)

    def requests_for(self, index: int) -> str | None:
        """The requests.json the `index`-th results file answers (None: the one beside it)."""
        if not self.requests:
            return None
        if isinstance(self.requests, str):
            return self.requests
        return self.requests[index] if len(self.requests) > 1 else self.requests[0]

    def rollout_sources(self) -> list[tuple[str, str | None]]:
        """(rollout file, the requests.json it answers or None for the one beside it), in the
        order given (what data_contracts.readers.batch_results' `sources` take)."""
        return [(path, self.requests_for(i)) for i, path in enumerate(self.rollout_paths())]

    def asks_again(self) -> bool:
        """Whether a later round can ask this run's policy for more samples: its rollouts come
        from a server (`--generate-with`) or from batch results answering requests.json
        (detected by content); a plain rollout log cannot be asked again, so its undecided
        queries are not kept pending."""
        from data_contracts.readers.batch_results import sniff_batch_output

        return bool(self.generate_with) or any(sniff_batch_output(path)
                                               for path in self.rollout_paths())

    @property
    def pending_only(self) -> bool:
        """`--policy none`: read and validate only, no pass rates."""
        return self.policy == "none"

    def text_options(self) -> TextOptions:
        """The side files of text inputs (and the teacher run of any input); qrels are required
        of a BEIR/MS MARCO folder unless the reward is logged with the rollouts (`log`)."""
        return TextOptions(candidates=self.candidates, qrels=self.qrels,
                           teacher_run=self.teacher_run, depth=self.candidate_depth,
                           require_qrels=parse_reward(self.reward).kind != "log")

    def synthetic_text(self) -> SyntheticTextConfig:
        """The embedded text default's knobs (`--synthetic text`)."""
        return SyntheticTextConfig(n_queries=self.synthetic.n_queries, seed=self.synthetic.seed)

    def policy_spec(self) -> PolicySpec:
        return PolicySpec(name=self.policy, seed=self.seed, teacher_mode=self.teacher)

    def scoring(self) -> ScoringConfig:
        from difficulty.scoring import ScoringConfig  # torch: the scoring workers only

        return ScoringConfig(reward=parse_reward(self.reward),
                             budget=Budget(k=self.k, k_max=max(self.k_max, self.k),
                                           adaptive=self.adaptive, rule=self.budget_rule,
                                           prior=self.prior),
                             bands=self.bands, temperature=self.temperature, seed=self.seed,
                             teacher_mode=self.teacher, rollout_format=self.rollout_format,
                             malformed=self.malformed)

    def to_dict(self) -> dict:
        """The config as JSON-able values; `out` is left out so moving a run keeps its hash."""
        data = asdict(self)
        data.pop("out")
        if self.inputs:
            data.pop("synthetic")
        return data


def config_from_dict(data: dict, out: str) -> CurriculumConfig:
    """Rebuilds a config recorded in a manifest (the inverse of `CurriculumConfig.to_dict`)."""
    data = dict(data)
    nested = {"bands": BandConfig, "routing": RoutingConfig, "diversity": DiversityConfig,
              "order": OrderConfig}
    for name, kind in nested.items():
        if name in data:
            data[name] = kind(**data[name])
    if "synthetic" in data:
        data["synthetic"] = synthetic_from_dict(data["synthetic"])
    return CurriculumConfig(**data, out=out)
