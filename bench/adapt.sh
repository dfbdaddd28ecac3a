#!/usr/bin/env bash
# Adapting to a network (issue "Adapting to the local network"), in one run:
# a model trained on the improved CIC-IDS2017 sample (the features every
# release has) meets another capture; nids_adapt fits a version to half of
# that capture's benign flows; both versions score the other half.
#   bench/adapt.sh [DATA]    the training flows: a CSV file or directory (default: the sample in data/)
#   OTHER=file ...           the other captures (default: the original-release sample in data/)
. "$(dirname "$0")/common.sh"
LOAD="$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load"
OTHER=${OTHER:-data/cicids2017-original-1k.csv.gz}
ADAPT_OPTIONS=${ADAPT_OPTIONS:-\{\}}   # nids_adapt's options
P -At -c "SELECT 'trained: ' || (r->>'version') FROM (SELECT nids_train('flows', model => 'm', options =>
	'{\"exclude\": [\"id\", \"protocol\", \"fwd_rst_flags\", \"bwd_rst_flags\", \"icmp_code\", \"icmp_type\", \"total_tcp_flow_time\"]}') AS r) s"
i=0
for f in $OTHER; do
	i=$((i + 1))
	"$LOAD" -t "other$i" "$f" >/dev/null
	P -c "CREATE TABLE split$i AS SELECT o.*, abs(hashtext(o::text)) % 2 = 0 AS half FROM other$i o"
	echo
	echo "== $f: adapted from half its benign flows, measured on the other half"
	P -c "SET nids.min_feature_coverage = 0" -c "CREATE TABLE r$i AS SELECT nids_adapt('m', 'SELECT * FROM split$i WHERE label = ''BENIGN'' AND half', '$ADAPT_OPTIONS') AS r"
	P -c "SELECT r->>'method' AS method, jsonb_array_length(r->'features_dropped') AS features_dropped,
		jsonb_array_length(r->'features_missing_locally') AS missing, round((r->>'benign_threshold')::numeric, 4) AS tau,
		r->'calibration' AS calibration, r->'contamination'->'set_aside' AS set_aside,
		round((r->>'attack_recall_before')::numeric, 4) AS own_attack_recall_before,
		round((r->>'attack_recall_after')::numeric, 4) AS own_attack_recall_after FROM r$i"
	v=$(P -At -c "SELECT r->>'version' FROM r$i")
	P -c "SET nids.min_feature_coverage = 0" -c "SELECT 'before (m@1)' AS version,
		round(avg((e.verdict <> 'benign')::int) FILTER (WHERE o.label ILIKE 'benign'), 4) AS benign_flagged,
		round(avg((e.verdict <> 'benign')::int) FILTER (WHERE o.label NOT ILIKE 'benign'), 4) AS attacks_flagged
		FROM split$i o, LATERAL nids_ensemble(nids_features(o, 'm@1'), 'm@1') e WHERE NOT half
		UNION ALL SELECT 'after (m@$v)',
		round(avg((e.verdict <> 'benign')::int) FILTER (WHERE o.label ILIKE 'benign'), 4),
		round(avg((e.verdict <> 'benign')::int) FILTER (WHERE o.label NOT ILIKE 'benign'), 4)
		FROM split$i o, LATERAL nids_ensemble(nids_features(o, 'm@$v'), 'm@$v') e WHERE NOT half"
	P -c "SET nids.min_feature_coverage = 0" -c "SELECT nids_drop_model('m', $v)"
done
