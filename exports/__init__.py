"""The LLM side of a curriculum run: prompts, sampling requests, verl and TRL exports, rewards.

- `exports.prompts.render_prompt`: the one renderer of a query's prompt (and its candidate order);
- `exports.requests.export_requests`: OpenAI batch requests for a policy's rollouts, with the
  candidate order per query in requests.json (results are read back by
  `data_contracts.readers.batch_results`);
- `exports.build.export_run(run, to, out)`: verl or TRL datasets in curriculum order, a
  validation file and export.json (lengths, settings, commands), swapped in whole
  (`exports.publish`);
- `exports.rewards` / `exports.presets`: reward functions with verl's and TRL's signatures, all
  calling difficulty.generations and difficulty.rewards, so RL is rewarded as the pass rates were
  measured.
"""
