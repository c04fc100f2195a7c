-- Demonstration diversity before and after selection: clusters used, cluster entropy (bits),
-- distinct signatures, count per cluster. 'before' is the manifest's record of the candidates;
-- 'after' is recomputed from the imitation shards.
WITH after_clusters AS (
    SELECT diversity_cluster AS cluster, count(*) AS n FROM imitation GROUP BY diversity_cluster
),
total AS (
    SELECT sum(n) AS t FROM after_clusters
),
width AS (
    SELECT greatest((SELECT coalesce(max(len(cluster_counts)), 0) FROM diversity),
                    (SELECT coalesce(max(cluster) + 1, 0) FROM after_clusters)) AS n
),
slots AS (
    SELECT unnest(range((SELECT n FROM width))) AS cluster
)
SELECT side, 'manifest' AS source, demonstrations, clusters_used, entropy_bits,
       distinct_signatures, cluster_counts
FROM diversity
WHERE side = 'before'
UNION ALL
SELECT 'after',
       'imitation',
       (SELECT count(*) FROM imitation),
       (SELECT count(*) FROM after_clusters WHERE n > 0),
       coalesce((SELECT -sum(n / t * log2(n / t)) FROM after_clusters, total), 0.0),
       (SELECT count(DISTINCT signature) FROM imitation),
       (SELECT coalesce(list(coalesce(a.n, 0) ORDER BY s.cluster), [])
        FROM slots s LEFT JOIN after_clusters a USING (cluster))
