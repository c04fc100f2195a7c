-- Training metrics per phase (and policy, for diagnostics), in step order: steps, first and last
-- loss, last reward, pass rate, NDCG@10 (last and best), entropy, informative fraction, KL.
SELECT phase,
       policy,
       count(*) AS records,
       min(step) AS first_step,
       max(step) AS last_step,
       count(DISTINCT stage) AS stages,
       arg_min(loss, step) FILTER (WHERE loss IS NOT NULL) AS loss_first,
       arg_max(loss, step) FILTER (WHERE loss IS NOT NULL) AS loss_last,
       arg_max(reward_mean, step) FILTER (WHERE reward_mean IS NOT NULL) AS reward_last,
       arg_max(pass_rate, step) FILTER (WHERE pass_rate IS NOT NULL) AS pass_rate_last,
       arg_max(ndcg_at_10, step) FILTER (WHERE ndcg_at_10 IS NOT NULL) AS ndcg_at_10_last,
       max(ndcg_at_10) AS ndcg_at_10_best,
       arg_max(entropy, step) FILTER (WHERE entropy IS NOT NULL) AS entropy_last,
       arg_max(informative_fraction, step) FILTER (WHERE informative_fraction IS NOT NULL)
           AS informative_last,
       arg_max(kl, step) FILTER (WHERE kl IS NOT NULL) AS kl_last
FROM training
GROUP BY phase, policy
ORDER BY min(step) NULLS LAST,
         CASE phase WHEN 'diagnostic' THEN 0 WHEN 'bc' THEN 1 WHEN 'rl' THEN 2
                    WHEN 'eval' THEN 3 ELSE 4 END,
         phase, policy
