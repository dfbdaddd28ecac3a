/*-------------------------------------------------------------------------
 *
 * explain_verdict.c
 *	  nids_explain_verdict: why a flow got its verdict, in an analyst's
 *	  terms.  The terms are those of the verdict the flow got: the
 *	  predicted class's contributions for 'attack', the novelty gate's for
 *	  'anomaly', the benign class's for 'benign'.  Each feature is placed
 *	  among the benign training flows (the version's stored benign
 *	  reference: its median, and the share of benign flows at or below
 *	  the value) and said in the units CICFlowMeter measures it in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "drift.h"
#include "explain.h"
#include "flow.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "report.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(nids_explain_verdict);

typedef enum FeatureUnit
{
	UNIT_NONE,
	UNIT_MICROSECONDS,			/* CICFlowMeter's durations and IATs */
	UNIT_BYTES,
	UNIT_BYTES_PER_S,
	UNIT_PACKETS,
	UNIT_PACKETS_PER_S,
	UNIT_PORT,
	UNIT_FLAGS
} FeatureUnit;

static bool
has(const char *name, const char *part)
{
	return strstr(name, part) != NULL;
}

static bool
ends_with(const char *name, const char *suffix)
{
	size_t		n = strlen(name),
				k = strlen(suffix);

	return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* the unit of a canonical CICFlowMeter feature name */
static FeatureUnit
feature_unit(const char *name)
{
	if (has(name, "port"))
		return UNIT_PORT;
	if (has(name, "duration") || has(name, "iat") || has(name, "active") ||
		has(name, "idle") || has(name, "flow_time"))
		return UNIT_MICROSECONDS;
	if (ends_with(name, "bytes_s"))
		return UNIT_BYTES_PER_S;
	if (ends_with(name, "packets_s"))
		return UNIT_PACKETS_PER_S;
	if (has(name, "flag"))
		return UNIT_FLAGS;
	if (has(name, "bytes") || has(name, "length") || has(name, "size") ||
		has(name, "win_"))
		return UNIT_BYTES;
	if ((has(name, "packets") || has(name, "pkt")) && !has(name, "ratio"))
		return UNIT_PACKETS;
	return UNIT_NONE;
}

static void
append_number(StringInfo buf, double v)
{
	if ((v == floor(v) || fabs(v) >= 100) && fabs(v) < 1e15)
		appendStringInfo(buf, "%.0f", v);
	else
		appendStringInfo(buf, "%.3g", v);
}

/* v in the feature's unit, as a network engineer reads it */
static void
append_value(StringInfo buf, double v, FeatureUnit unit)
{
	double		a = fabs(v);

	switch (unit)
	{
		case UNIT_MICROSECONDS:
			if (a < 1000)
				appendStringInfo(buf, "%.0f µs", v);
			else if (a < 1e6)
				appendStringInfo(buf, "%.3g ms", v / 1e3);
			else
				appendStringInfo(buf, "%.3g s", v / 1e6);
			return;
		case UNIT_BYTES:
			if (a < 10000)
				appendStringInfo(buf, "%.0f bytes", v);
			else if (a < 1e7)
				appendStringInfo(buf, "%.3g kB", v / 1e3);
			else
				appendStringInfo(buf, "%.3g MB", v / 1e6);
			return;
		case UNIT_BYTES_PER_S:
			append_number(buf, v);
			appendStringInfoString(buf, " bytes/s");
			return;
		case UNIT_PACKETS:
			append_number(buf, v);
			appendStringInfoString(buf, a == 1 ? " packet" : " packets");
			return;
		case UNIT_PACKETS_PER_S:
			append_number(buf, v);
			appendStringInfoString(buf, " packets/s");
			return;
		case UNIT_PORT:
			appendStringInfo(buf, "port %.0f", v);
			return;
		case UNIT_FLAGS:
			append_number(buf, v);
			appendStringInfoString(buf, a == 1 ? " flag" : " flags");
			return;
		case UNIT_NONE:
			break;
	}
	append_number(buf, v);
}

/* the median of a reference feature, and the shares at or below v and below it */
static void
benign_place(const DriftFeatureRef *fr, double v, double *median, double *share, double *below)
{
	*median = NAN;
	*share = NAN;
	*below = NAN;
	if (fr == NULL || fr->npoints == 0 || fr->n == 0)
		return;
	for (int i = 0; i < fr->npoints; i++)
		if (fr->cdf[i] >= 0.5)
		{
			*median = fr->values[i];
			break;
		}
	if (isnan(v))
		return;
	*share = 0.0;
	*below = 0.0;
	for (int i = 0; i < fr->npoints && fr->values[i] <= (float) v; i++)
	{
		*share = fr->cdf[i];
		if (fr->values[i] < (float) v)
			*below = fr->cdf[i];
	}
}

/*
 * v in words, against the benign flows: share of them at or below v, below
 * of them strictly below it.  A value many benign flows share (a flag
 * count of 0) is placed by the flows strictly on each side of it: when the
 * median is among them it reads as the median, never as "higher than" the
 * flows it ties with.
 */
static char *
reason_text(const char *name, double v, double median, double share, double below)
{
	FeatureUnit unit = feature_unit(name);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s ", name);
	if (isnan(v))
	{
		appendStringInfoString(&buf, "missing");
		return buf.data;
	}
	append_value(&buf, v, unit);
	if (isnan(share))
	{
		appendStringInfoString(&buf, " (no benign reference to compare with)");
		return buf.data;
	}
	if (share <= 0.0)
		appendStringInfoString(&buf, ": lower than every benign flow");
	else if (below < 0.5 && share >= 0.5)
	{
		/* the tie holds the median: neither higher nor lower than it */
		appendStringInfo(&buf, ": the benign median (%.1f%% of benign flows have this value)",
						 100.0 * (share - below));
		return buf.data;
	}
	else if (share >= 1.0)
		appendStringInfoString(&buf, ": as high as the highest benign flows or higher");
	else if (share < 0.5)
		appendStringInfo(&buf, ": lower than %.1f%% of benign flows", 100.0 * (1.0 - share));
	else
		appendStringInfo(&buf, ": higher than %.1f%% of benign flows", 100.0 * below);
	appendStringInfoString(&buf, " (median ");
	append_value(&buf, median, unit);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * Explain st->x (raw: the vector as given, NaN missing): the verdict it
 * gets, and its top features into out[top]; returns how many.
 */
int
explain_verdict(ScoreState *st, const double *raw, int top, VerdictReason *out,
				NidsVerdict *verdict)
{
	NidsModel  *model = st->model;
	int			label = score_classify(st);
	double		anomaly = NAN;
	bool		novel = false;
	double	   *terms;
	DriftReference *ref = NULL;
	bool		fallback = false;
	int		   *order;
	int			n = model->num_features;
	int			k = 0;

	if (label == model->benign_class && (model->novelty != NULL || model->iforest != NULL))
		(void) score_novelty(st, &anomaly, &novel);
	*verdict = nids_verdict(label, model->benign_class, novel);
	if (*verdict == NIDS_VERDICT_ANOMALY)
		terms = explain_gate_terms(st);
	else
		terms = explain_contributions(st, label);
	if (model->benign_class >= 0)
	{
		ref = model_reference(model, DRIFT_REFERENCE_BENIGN, &fallback, true);
		if (ref != NULL && fallback)
			ref = NULL;			/* all training flows are not benign flows */
	}
	order = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		int			j = i;

		while (j > 0 && terms[order[j - 1]] < terms[i])
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (int i = 0; i < Min(top, n); i++)
	{
		int			f = order[i];
		VerdictReason *r;
		double		below;

		/* only what pushed towards the verdict */
		if (!(terms[f] > 0))
			break;
		r = &out[k++];

		r->feature = f;
		r->value = raw[f];
		r->weight = terms[f];
		benign_place(ref ? &ref->features[f] : NULL, raw[f], &r->benign_median,
					 &r->benign_percentile, &below);
		r->reason = reason_text(model->feature_names[f], raw[f], r->benign_median,
								r->benign_percentile, below);
	}
	return k;
}

/* the reasons as a jsonb array, for nids.alerts.reasons */
Jsonb *
explain_verdict_jsonb(ScoreState *st, const double *raw, int top)
{
	VerdictReason *r = palloc(sizeof(VerdictReason) * Max(top, 1));
	NidsVerdict verdict;
	int			n = explain_verdict(st, raw, top, r, &verdict);
	JsonbParseState *ps = NULL;

	pushJsonbValue(&ps, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		report_element_begin(&ps);
		report_string(&ps, "feature", st->model->feature_names[r[i].feature]);
		report_number(&ps, "value", r[i].value);
		report_number(&ps, "benign_median", r[i].benign_median);
		report_number(&ps, "benign_percentile", r[i].benign_percentile);
		report_number(&ps, "weight", r[i].weight);
		report_string(&ps, "reason", r[i].reason);
		report_end(&ps);
	}
	return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_ARRAY, NULL));
}

Datum
nids_explain_verdict(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ScoreState *st;
	double	   *raw;
	int			top;
	int			n;
	VerdictReason *r;
	NidsVerdict verdict;
	bool		fallback = false;

	top = PG_ARGISNULL(2) ? 5 : PG_GETARG_INT32(2);
	if (top < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top must be at least 1, not %d", top)));
	score_init_srf(fcinfo);
	st = explain_args(fcinfo, &raw);
	if (st->model->benign_class < 0 ||
		model_reference(st->model, DRIFT_REFERENCE_BENIGN, &fallback, true) == NULL ||
		fallback)
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d has no benign training distribution: benign_median and benign_percentile are NULL",
						st->model->name, st->model->version),
				 errhint("nids_train stores one; attach one to an imported or 1.0 version with nids_attach_benign(model, benign_flows).")));
	r = palloc(sizeof(VerdictReason) * Min(top, st->model->num_features));
	n = explain_verdict(st, raw, top, r, &verdict);
	for (int i = 0; i < n; i++)
	{
		Datum		values[6];
		bool		vnulls[6] = {false, isnan(r[i].value), isnan(r[i].benign_median),
		isnan(r[i].benign_percentile), false, false};

		values[0] = CStringGetTextDatum(st->model->feature_names[r[i].feature]);
		values[1] = Float8GetDatum(r[i].value);
		values[2] = Float8GetDatum(r[i].benign_median);
		values[3] = Float8GetDatum(r[i].benign_percentile);
		values[4] = Float8GetDatum(r[i].weight);
		values[5] = CStringGetTextDatum(r[i].reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, vnulls);
	}
	return (Datum) 0;
}
