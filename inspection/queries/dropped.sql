-- Queries in neither imitation nor RL, by reason (the part before ':') and band, with their
-- pass-rate range.
SELECT split_part(reason, ':', 1) AS reason,
       band,
       count(*) AS queries,
       min(pass_rate) AS pass_rate_min,
       avg(pass_rate) AS pass_rate_mean,
       max(pass_rate) AS pass_rate_max,
       avg(trials) AS mean_trials,
       min(reason) AS example
FROM dropped
GROUP BY split_part(reason, ':', 1), band
ORDER BY queries DESC, reason, band
