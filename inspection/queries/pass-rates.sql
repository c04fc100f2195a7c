-- Histogram of pass rates (10 bins of width 0.1, the last one closed) by band, all scored queries.
WITH bins AS (
    SELECT range AS bin FROM range(10)
),
binned AS (
    SELECT least(greatest(floor(pass_rate * 10), 0), 9)::INTEGER AS bin, band
    FROM difficulty
)
SELECT round(bins.bin / 10, 1) AS pass_rate_from,
       round((bins.bin + 1) / 10, 1) AS pass_rate_to,
       count(binned.band) FILTER (WHERE binned.band = 'too_hard') AS too_hard,
       count(binned.band) FILTER (WHERE binned.band = 'learnable') AS learnable,
       count(binned.band) FILTER (WHERE binned.band = 'too_easy') AS too_easy,
       count(binned.band) AS queries
FROM bins LEFT JOIN binned USING (bin)
GROUP BY bins.bin
ORDER BY bins.bin
