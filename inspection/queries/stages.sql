-- The curriculum in training order: imitation, then each RL stage (queries, replayed, rows,
-- pass-rate range of its own queries, files).
WITH stats AS (
    SELECT 'rl' AS phase,
           stage,
           count(*) FILTER (WHERE NOT replay) AS queries,
           count(*) FILTER (WHERE replay) AS replayed,
           count(*) AS rows,
           min(pass_rate) FILTER (WHERE NOT replay) AS pass_rate_min,
           avg(pass_rate) FILTER (WHERE NOT replay) AS pass_rate_mean,
           max(pass_rate) FILTER (WHERE NOT replay) AS pass_rate_max
    FROM rl
    GROUP BY stage
    UNION ALL
    SELECT 'imitation', NULL, count(*), 0, count(*), min(pass_rate), avg(pass_rate),
           max(pass_rate)
    FROM imitation
),
file_counts AS (
    SELECT phase, stage, count(*) AS files FROM files GROUP BY phase, stage
)
SELECT c.position,
       c.phase,
       c.stage,
       coalesce(s.queries, 0) AS queries,
       coalesce(s.replayed, 0) AS replayed,
       coalesce(s.rows, 0) AS rows,
       s.pass_rate_min,
       s.pass_rate_mean,
       s.pass_rate_max,
       coalesce(f.files, 0) AS files
FROM curriculum c
LEFT JOIN stats s ON s.phase = c.phase AND s.stage IS NOT DISTINCT FROM c.stage
LEFT JOIN file_counts f ON f.phase = c.phase AND f.stage IS NOT DISTINCT FROM c.stage
ORDER BY c.position
