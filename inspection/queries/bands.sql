-- Queries per difficulty band: share, where they went (imitation, rl, dropped), pass-rate range.
WITH fates AS (
    SELECT query_id, 'imitation' AS fate FROM imitation
    UNION ALL
    SELECT query_id, 'rl' FROM rl WHERE NOT replay
    UNION ALL
    SELECT query_id, 'dropped' FROM dropped
),
scored AS (
    SELECT d.band, d.pass_rate, d.trials, d.decided, f.fate
    FROM difficulty d LEFT JOIN fates f USING (query_id)
),
per_band AS (
    SELECT band,
           count(*) AS queries,
           count(*) FILTER (WHERE fate = 'imitation') AS imitation,
           count(*) FILTER (WHERE fate = 'rl') AS rl,
           count(*) FILTER (WHERE fate = 'dropped') AS dropped,
           min(pass_rate) AS pass_rate_min,
           avg(pass_rate) AS pass_rate_mean,
           max(pass_rate) AS pass_rate_max,
           avg(trials) AS mean_trials,
           count(*) FILTER (WHERE NOT decided) AS undecided
    FROM scored
    GROUP BY band
),
bands AS (
    SELECT * FROM (VALUES ('too_hard', 0), ('learnable', 1), ('too_easy', 2)) AS b(band, ord)
)
SELECT coalesce(b.band, p.band) AS band,
       coalesce(p.queries, 0) AS queries,
       round(100.0 * coalesce(p.queries, 0) / nullif(sum(coalesce(p.queries, 0)) OVER (), 0), 1)
           AS percent,
       coalesce(p.imitation, 0) AS imitation,
       coalesce(p.rl, 0) AS rl,
       coalesce(p.dropped, 0) AS dropped,
       p.pass_rate_min,
       p.pass_rate_mean,
       p.pass_rate_max,
       p.mean_trials,
       coalesce(p.undecided, 0) AS undecided
FROM bands b FULL OUTER JOIN per_band p USING (band)
ORDER BY coalesce(b.ord, 9), band
