#!/usr/bin/env bash
# Adapting to a network, in one run: a model trained on the improved
# CIC-IDS2017 sample meets another capture; nids_adapt fits a version to
# half of that capture's benign flows; both versions score the other half
# (benign and attack flows flagged, per attack family), and the adapted
# version is the peer of the one it came from.  Then the same with a
# quiet period that is not quiet (QUIET_ATTACKS of the capture's attack
# flows added to it): what is set aside, and what the result is.
# TRAIN_EXCLUDE (a JSON list) leaves features out of training: by default
# none, so that the features another release lacks meet nids_adapt.
#   bench/adapt.sh [DATA]    the training flows: a CSV file or directory (default: the sample in data/)
#   OTHER=file ...           the other captures (default: the original-release sample in data/)
. "$(dirname "$0")/common.sh"
LOAD="$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load"
OTHER=${OTHER:-data/cicids2017-original-1k.csv.gz}
ADAPT_OPTIONS=${ADAPT_OPTIONS:-\{\}}   # nids_adapt's options
TRAIN_EXCLUDE=${TRAIN_EXCLUDE:-[\"id\"]}
QUIET_ATTACKS=${QUIET_ATTACKS:-0.1}
P -At -c "SELECT 'trained: ' || (r->>'version') FROM (SELECT nids_train('flows', model => 'm', options =>
	'{\"exclude\": $TRAIN_EXCLUDE}') AS r) s"
# adapt SPLIT QUIET_QUERY: the result's summary, the two versions on the measuring half
adapt() {
	local i=$1 quiet=$2
	P -c "SET nids.min_feature_coverage = 0" -c "DROP TABLE IF EXISTS r$i" \
	  -c "CREATE TABLE r$i AS SELECT nids_adapt('m', '$quiet', '$ADAPT_OPTIONS') AS r"
	P -c "SELECT r->>'method' AS method, jsonb_array_length(r->'features_dropped') AS ks_dropped,
		jsonb_array_length(r->'features_missing_locally') AS missing, round((r->>'benign_threshold')::numeric, 4) AS tau,
		r->'calibration' AS calibration, round((r->>'local_flagged_after')::numeric, 4) AS crossed_flagged, round((r->>'local_share')::numeric, 3) AS local_share,
		r->'contamination'->'set_aside' AS set_aside,
		round((r->>'attack_recall_before')::numeric, 4) AS own_attack_recall_before,
		round((r->>'attack_recall_after')::numeric, 4) AS own_attack_recall_after FROM r$i"
	v=$(P -At -c "SELECT r->>'version' FROM r$i")
	P -c "SET nids.min_feature_coverage = 0" -c "CREATE TEMP TABLE verdicts AS
		SELECT o.label, (b.verdict <> 'benign') AS before, (a.verdict <> 'benign') AS after
		FROM split$i o, LATERAL nids_ensemble(nids_features(o, 'm@1'), 'm@1') b,
			LATERAL nids_ensemble(nids_features(o, 'm@$v'), 'm@$v') a WHERE NOT half" \
	  -c "SELECT round(avg(before::int) FILTER (WHERE label ILIKE 'benign'), 4) AS benign_flagged_before,
		round(avg(after::int) FILTER (WHERE label ILIKE 'benign'), 4) AS benign_flagged_after,
		round(avg(before::int) FILTER (WHERE label NOT ILIKE 'benign'), 4) AS attacks_flagged_before,
		round(avg(after::int) FILTER (WHERE label NOT ILIKE 'benign'), 4) AS attacks_flagged_after,
		round(avg(after::int) FILTER (WHERE label NOT ILIKE 'benign') / nullif(avg(before::int) FILTER (WHERE label NOT ILIKE 'benign'), 0), 2)
			AS attack_detection_ratio FROM verdicts" \
	  -c "SELECT label AS family, count(*) AS flows, round(avg(before::int), 3) AS flagged_before,
		round(avg(after::int), 3) AS flagged_after,
		CASE WHEN count(*) >= 50 AND avg(after::int) < avg(before::int) / 2 THEN 'lost over half' ELSE '' END AS note
		FROM verdicts WHERE label NOT ILIKE 'benign' GROUP BY label ORDER BY count(*) DESC"
	P -c "SET nids.min_feature_coverage = 0" -c "SELECT nids_drop_model('m', $v)" >/dev/null
}
i=0
for f in $OTHER; do
	i=$((i + 1))
	"$LOAD" -t "other$i" "$f" >/dev/null
	P -c "CREATE TABLE split$i AS SELECT o.*, abs(hashtext(o::text)) % 2 = 0 AS half FROM other$i o"
	echo
	echo "== $f: adapted from half its benign flows, measured on the other half"
	adapt "$i" "SELECT * FROM split$i WHERE label = ''BENIGN'' AND half"
	echo
	echo "== $f: the quiet half with $QUIET_ATTACKS of the capture's attack flows in it (a quiet period that is not quiet)"
	adapt "$i" "SELECT * FROM split$i WHERE half AND (label = ''BENIGN'' OR abs(hashtext(split$i::text || ''q'')) % 1000 < 1000 * $QUIET_ATTACKS)"
done
