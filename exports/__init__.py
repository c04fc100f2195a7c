"""Exports of a curriculum run for LLM reranker trainers: verl and TRL datasets, reward functions.

`exports.build.export_run(run, to, out)` writes the files; `exports.rewards` holds the reward
functions with verl's and TRL's signatures, both calling difficulty.rewards and
difficulty.generations, so RL is rewarded exactly as the pass rates were measured.
"""
