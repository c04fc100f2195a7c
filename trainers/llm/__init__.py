"""The LLM arm of the claim (issue 28): does SFT on the teacher's rankings make the reward legible
to a small causal LM that starts out writing malformed rankings, and does SFT depth matter?

Everything is the product's own path, on CPU, in minutes: the listwise task is the synthetic text
set (`data_contracts.synthetic_text`) written as a BEIR folder and built by
`pipelines.build_curriculum`; SFT and GRPO read `pipelines.export --to trl` (TRL's SFTTrainer and
GRPOTrainer, the exported `exports.rewards.ranking_reward`); every measurement is the LLM loop of
the README: `pipelines.export --to requests` -> this package's sampler (OpenAI batch output lines
written from Hugging Face `generate`) -> `pipelines.build_curriculum --rollouts` -> the manifest
and shards of that build.

Modules: `policy` (tokenizer, model, sampler), `measure` (the sets, the builds, the metrics),
`phases` (SFT with depth snapshots, GRPO, validation), `settings` (one GRPO setting),
`experiment` (the arms, the sweep), `report` (the tables and verdicts). Command: `python -m trainers.llm_experiment`.
"""
