-- Quarantined records by reason, record kind and pipeline step, with one example location and
-- detail.
SELECT reason,
       record_kind,
       step,
       count(*) AS records,
       count(DISTINCT query_id) AS queries,
       min(location) AS example_location,
       arg_min(detail, location) AS example_detail
FROM quarantine
GROUP BY reason, record_kind, step
ORDER BY records DESC, reason, record_kind, step
