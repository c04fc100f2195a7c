"""Difficulty: rollouts from a policy (or a log), rewards, and pass-rate estimates with bands."""
