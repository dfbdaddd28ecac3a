#!/usr/bin/env bash
# Zero-days: how much of an attack family the ensemble flags when the model
# never saw it, for each novelty gate, at a benign rate fixed by training.
#   bench/zeroday.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
# Every family with >= 30 flows is left out of training in turn, then the
# family groups (scans, DoS, patators, web) together; for each of SPLITS
# splits (default 2: 20% of every class held out, by md5 of the row and the
# split's seed) a model is trained with nids_train's defaults on the rest
# minus the left-out flows, for each gate (METHODS) and benign_fpr (FPRS).
# Detection: the share of the left-out flows (all of them) whose verdict is
# not benign.  Benign flagged: the share of the held-out benign flows whose
# verdict is not benign (what the threshold was set for, measured on flows
# training never saw).  Prints per family and the means.  PROTOTYPES=N
# trains every gate with N prototypes instead of the default.
. "$(dirname "$0")/common.sh"
METHODS=${METHODS:-iforest uncertainty prototypes combined}
FPRS=${FPRS:-0.01 0.02}
SPLITS=${SPLITS:-2}
PROTO_OPT=${PROTOTYPES:+, \"prototypes\": $PROTOTYPES}

P -c "CREATE TABLE fam AS SELECT label, count(*) AS flows FROM flows WHERE upper(label) <> 'BENIGN' GROUP BY label"
P -c "CREATE TABLE leave_out (name text, label text)" \
  -c "INSERT INTO leave_out SELECT label, label FROM fam WHERE flows >= 30" \
  -c "INSERT INTO leave_out SELECT 'group: scans', label FROM fam WHERE label ILIKE '%portscan%'" \
  -c "INSERT INTO leave_out SELECT 'group: DoS', label FROM fam WHERE label ILIKE 'dos %' OR label = 'DDoS'" \
  -c "INSERT INTO leave_out SELECT 'group: patators', label FROM fam WHERE label ILIKE '%patator%'" \
  -c "INSERT INTO leave_out SELECT 'group: web', label FROM fam WHERE label ILIKE 'web attack%'"
P -c "CREATE TABLE results (split int, name text, method text, fpr float8, detected float8, benign_flagged float8)"

for split in $(seq "$SPLITS"); do
	P -c "DROP TABLE IF EXISTS held; CREATE TABLE held AS
		SELECT f.*, percent_rank() OVER (PARTITION BY label ORDER BY md5(f::text || '$split')) < 0.2 AS is_held FROM flows f"
	P -At -F'|' -c "SELECT DISTINCT name FROM leave_out ORDER BY 1" | while read -r name; do
		P -c "DROP TABLE IF EXISTS zd_train; CREATE TABLE zd_train AS SELECT * FROM held
			WHERE NOT is_held AND label NOT IN (SELECT label FROM leave_out WHERE name = \$\$$name\$\$)" \
		  -c "ALTER TABLE zd_train DROP COLUMN is_held"
		for method in $METHODS; do
			for fpr in $FPRS; do
				P -c "SELECT nids_drop_model('zd') FROM nids.models WHERE name = 'zd' LIMIT 1" >/dev/null
				P -At -c "SELECT nids_train('zd_train', model => 'zd', options =>
					'{\"seed\": $split, \"novelty\": {\"method\": \"$method\", \"benign_fpr\": $fpr$PROTO_OPT}}') ? 'version'" >/dev/null
				P -c "INSERT INTO results
					SELECT $split, \$\$$name\$\$, '$method', $fpr,
						avg((v.verdict <> 'benign')::int) FILTER (WHERE h.label IN (SELECT label FROM leave_out WHERE name = \$\$$name\$\$)),
						avg((v.verdict <> 'benign')::int) FILTER (WHERE upper(h.label) = 'BENIGN' AND h.is_held)
					FROM held h, LATERAL nids_ensemble(nids_features(h, 'zd'), 'zd') v
					WHERE h.label IN (SELECT label FROM leave_out WHERE name = \$\$$name\$\$)
					   OR (upper(h.label) = 'BENIGN' AND h.is_held)"
			done
		done
		echo "split $split: $name done" >&2
	done
done

echo
echo "detection of left-out families (%), mean over $SPLITS splits; columns: gate @ benign_fpr"
P -c "SELECT name AS left_out, (SELECT sum(flows) FROM fam JOIN leave_out l USING (label) WHERE l.name = r.name) AS flows,
	$(for m in $METHODS; do for f in $FPRS; do printf "round((100 * avg(detected) FILTER (WHERE method = '%s' AND fpr = %s))::numeric, 1) AS \"%s@%s\", " "$m" "$f" "$m" "$f"; done; done | sed 's/, $//')
	FROM results r GROUP BY name ORDER BY name LIKE 'group:%', name"
echo "means: single families, groups, and the benign flows actually flagged (held out, %)"
P -c "SELECT method, fpr AS benign_fpr,
	round((100 * avg(detected) FILTER (WHERE name NOT LIKE 'group:%'))::numeric, 1) AS single_families,
	round((100 * avg(detected) FILTER (WHERE name LIKE 'group:%'))::numeric, 1) AS groups,
	round((100 * avg(benign_flagged))::numeric, 2) AS benign_flagged,
	round((100 * max(benign_flagged))::numeric, 2) AS benign_flagged_max
	FROM results GROUP BY method, fpr ORDER BY fpr, method"
