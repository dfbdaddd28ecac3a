/*-------------------------------------------------------------------------
 *
 * train_adapt_local.c
 *	  nids_adapt's local flows (train_adapt.h): read as the model's
 *	  features, judged (the attacks in a quiet period set aside), the
 *	  features the retrained version keeps, the decision threshold tau
 *	  calibrated on them, and what the new version changes, measured.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "drift.h"
#include "flow.h"
#include "scoring.h"
#include "train_adapt.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

typedef struct TauFlow
{
	double		pb;				/* P(benign) */
	bool		attack;			/* the classifier's own label is not benign */
	bool		novel;			/* the gate's */
} TauFlow;

static void
rows_init(Rows *r, int d, bool labels)
{
	r->d = d;
	r->n = 0;
	r->cap = 1024;
	r->x = palloc_extended(sizeof(float) * r->cap * Max(d, 1), MCXT_ALLOC_HUGE);
	r->labels = labels ? palloc_extended(sizeof(char *) * r->cap, MCXT_ALLOC_HUGE) : NULL;
}

static void
rows_add(void *arg, const float *x, Datum label, bool label_isnull)
{
	Rows	   *r = (Rows *) arg;

	if (r->n == r->cap)
	{
		r->cap *= 2;
		r->x = repalloc_huge(r->x, sizeof(float) * r->cap * Max(r->d, 1));
		if (r->labels)
			r->labels = repalloc_huge(r->labels, sizeof(char *) * r->cap);
	}
	memcpy(r->x + r->n * r->d, x, sizeof(float) * r->d);
	/* the reader frees the row's memory: the label is copied */
	if (r->labels)
		r->labels[r->n] = label_isnull ? NULL
			: MemoryContextStrdup(GetMemoryChunkContext(r->labels), TextDatumGetCString(label));
	r->n++;
}

/* keep the rows where keep[i]: in place, in order */
static void
rows_keep(Rows *r, const bool *keep)
{
	int64		kept = 0;

	for (int64 i = 0; i < r->n; i++)
		if (keep[i])
		{
			memmove(r->x + kept * r->d, r->x + i * r->d, sizeof(float) * r->d);
			if (r->labels)
				r->labels[kept] = r->labels[i];
			kept++;
		}
	r->n = kept;
}

/* rows[order[from .. to-1]] of src, with their features in dst_names' order */
float *
adapt_rows_part(const Rows *src, char **src_names, const int64 *order, int64 from, int64 to,
		  char **dst_names, int dd)
{
	float	   *x = palloc_extended(sizeof(float) * Max(to - from, 1) * Max(dd, 1), MCXT_ALLOC_HUGE);
	int		   *map = palloc(sizeof(int) * Max(dd, 1));

	for (int j = 0; j < dd; j++)
	{
		map[j] = -1;
		for (int f = 0; f < src->d && map[j] < 0; f++)
			if (strcmp(src_names[f], dst_names[j]) == 0)
				map[j] = f;
	}
	for (int64 i = from; i < to; i++)
		for (int j = 0; j < dd; j++)
			x[(i - from) * dd + j] = map[j] >= 0 ? src->x[order[i] * src->d + map[j]] : NAN;
	pfree(map);
	return x;
}

/* the local flows: the benign query's rows as model's features, none empty */
void
adapt_read_local(const char *query, NidsModel *model, Rows *local, int64 *n_empty)
{
	FlowQuery	fq;
	int64		kept;
	bool	   *keep;

	rows_init(local, model->num_features, true);
	model_window_query(&fq, query, model);
	fq.label_column = "source_ip";	/* to name the sources of a contaminated period */
	flow_read(&fq, rows_add, local);
	/* flows without any feature value say nothing of the network */
	keep = palloc_extended(sizeof(bool) * Max(local->n, 1), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < local->n; i++)
	{
		keep[i] = false;
		for (int j = 0; j < local->d && !keep[i]; j++)
			keep[i] = !isnan(local->x[i * local->d + j]);
	}
	kept = local->n;
	rows_keep(local, keep);
	*n_empty = kept - local->n;
	kept = local->n;
	if (*n_empty > 0 && kept < ADAPT_MIN_FLOWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the benign query has %lld rows with a value of model \"%s\"'s features; adapting needs at least %d",
						(long long) kept, model->name, ADAPT_MIN_FLOWS),
				 errdetail("%lld of its %lld rows have no value in any of the model's features.",
						   (long long) *n_empty, (long long) (kept + *n_empty)),
				 errhint("Check that the query's columns carry the model's feature names.")));
	if (kept < ADAPT_MIN_FLOWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the benign query has %lld rows; adapting needs at least %d",
						(long long) kept, ADAPT_MIN_FLOWS),
				 errdetail("Two thirds of them train; a third calibrates the novelty gate and the decision threshold, and measures the result crossed: calibrated on one half, counted on the other.")));
}

/* each feature's KS distance between the local flows and the reference */
static double *
local_ks(NidsModel *model, const Rows *local, int kind, const char **refname)
{
	DriftReference *ref = drift_reference_of(model, kind, refname);
	FeatureCounts *fc = drift_counts_create(ref);
	double	   *ks = palloc(sizeof(double) * Max(model->num_features, 1));

	for (int64 i = 0; i < local->n; i++)
		for (int j = 0; j < local->d; j++)
		{
			float		v = local->x[i * local->d + j];

			if (!isnan(v))
				drift_count_value(&ref->features[j], &fc[j], v);
		}
	for (int j = 0; j < model->num_features; j++)
		ks[j] = fc[j].m > 0 && ref->features[j].n > 0 ? ks_statistic(&ref->features[j], &fc[j]) : NAN;
	return ks;
}

/*
 * The share of rows x (model's features) with a verdict other than benign;
 * each row's in flags[] when given.
 */
double
adapt_flagged_share(NidsModel *model, const float *x, int64 n, bool *flags)
{
	ScoreState	st;
	int64		flagged = 0;

	if (n == 0)
		return NAN;
	memset(&st, 0, sizeof(st));
	score_state_for(&st, model, CurrentMemoryContext);
	for (int64 i = 0; i < n; i++)
	{
		bool		f;

		memcpy(st.x, x + i * model->num_features, sizeof(float) * model->num_features);
		f = score_verdict_only(&st) != NIDS_VERDICT_BENIGN;
		flagged += f;
		if (flags)
			flags[i] = f;
		nids_check_interrupts(i);
	}
	return (double) flagged / n;
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * A contaminated quiet period: the flows called an attack with
 * probability p or more (pb[i]: P(benign) of local flow i; NULL: none)
 * are set aside (they must not become the local benign class), counted
 * with their top sources; above ADAPT_CONTAMINATION_WARN of the flows, a
 * WARNING says so.
 */
void
adapt_set_aside(Rows *local, const double *pb, double p, const char *model, AdaptResult *r)
{
	bool	   *keep = palloc_extended(sizeof(bool) * Max(local->n, 1), MCXT_ALLOC_HUGE);
	char	  **srcs = palloc_extended(sizeof(char *) * Max(local->n, 1), MCXT_ALLOC_HUGE);

	r->quiet_flows = local->n;
	for (int64 i = 0; i < local->n; i++)
	{
		keep[i] = p >= 1 || pb == NULL || pb[i] > 1.0 - p;
		if (!keep[i])
			srcs[r->contaminated++] = local->labels[i] ? local->labels[i] : "(no source_ip)";
	}
	rows_keep(local, keep);
	/* the sources most of them came from */
	qsort(srcs, r->contaminated, sizeof(char *), compare_strings);
	r->top_sources = palloc(sizeof(char *) * 3);
	r->top_counts = palloc(sizeof(int64) * 3);
	for (int64 i = 0; i < r->contaminated;)
	{
		int64		j = i;
		int			at;

		while (j < r->contaminated && strcmp(srcs[j], srcs[i]) == 0)
			j++;
		for (at = r->ntop; at > 0 && r->top_counts[at - 1] < j - i; at--)
			if (at < 3)
			{
				r->top_sources[at] = r->top_sources[at - 1];
				r->top_counts[at] = r->top_counts[at - 1];
			}
		if (at < 3)
		{
			r->top_sources[at] = srcs[i];
			r->top_counts[at] = j - i;
			r->ntop = Min(r->ntop + 1, 3);
		}
		i = j;
	}
	if (r->contaminated > ADAPT_CONTAMINATION_WARN * r->quiet_flows)
	{
		StringInfoData top;

		initStringInfo(&top);
		for (int i = 0; i < r->ntop; i++)
			appendStringInfo(&top, "%s%s (%lld)", i ? ", " : "", r->top_sources[i],
							 (long long) r->top_counts[i]);
		ereport(WARNING,
				(errmsg("%.1f%% of the quiet flows (%lld of %lld) are attacks to model \"%s\" with probability %g or more: they are set aside",
						100.0 * r->contaminated / r->quiet_flows, (long long) r->contaminated,
						(long long) r->quiet_flows, model, p),
				 errdetail("Their top sources: %s.", top.data),
				 errhint("A quiet period with attacks in it would teach the new version that they are benign: check those sources, or adapt from another period.")));
	}
}

/* P(benign) of each local flow by model's own classifier */
double *
adapt_benign_probability(NidsModel *model, const Rows *local)
{
	ScoreState	st;
	double	   *pb = palloc_extended(sizeof(double) * Max(local->n, 1), MCXT_ALLOC_HUGE);

	memset(&st, 0, sizeof(st));
	score_state_for(&st, model, CurrentMemoryContext);
	for (int64 i = 0; i < local->n; i++)
	{
		memcpy(st.x, local->x + i * local->d, sizeof(float) * local->d);
		(void) score_classify(&st);
		pb[i] = model->benign_class >= 0 ? st.proba[model->benign_class] : 1.0;
		nids_check_interrupts(i);
	}
	return pb;
}

/* the held-out fifth's attack flows of the source, as model's features */
void
adapt_read_fifth(NidsModel *model, const char *qualified, const char *label_col,
				  const char *benign, Rows *out)
{
	FlowQuery	fq;

	rows_init(out, model->num_features, true);
	memset(&fq, 0, sizeof(fq));
	fq.sql = psprintf("SELECT * FROM %s nids_src WHERE pg_catalog.abs(pg_catalog.hashtext(nids_src::pg_catalog.text)) "
					  "OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.=) 0 AND %s::pg_catalog.text OPERATOR(pg_catalog.<>) %s",
					  qualified, quote_identifier(label_col), quote_literal_cstr(benign));
	fq.features = model->feature_names;
	fq.num_features = model->num_features;
	fq.model = model->name;
	fq.label_column = label_col;
	flow_read(&fq, rows_add, out);
}

static int
compare_tau_flows(const void *a, const void *b)
{
	double		x = ((const TauFlow *) a)->pb;
	double		y = ((const TauFlow *) b)->pb;

	return (x > y) - (x < y);
}

/*
 * What the version decides for each of the m flows x[rows[0 .. m-1]] (d
 * features): P(benign), the classifier's own label and the gate's novelty.
 */
static TauFlow *
tau_flows(const NidsForest *forest, int nclasses, int benign, const AttachFit *fit,
		  const float *x, int d, const int64 *rows, int64 m)
{
	TauFlow    *f = palloc_extended(sizeof(TauFlow) * Max(m, 1), MCXT_ALLOC_HUGE);
	float	   *scratch = palloc(sizeof(float) * Max(forest_scratch_size(forest),
												 forest_scratch_size(fit->iforest)));
	float	   *margin = palloc(sizeof(float) * forest->num_groups);
	double	   *proba = palloc(sizeof(double) * nclasses);
	float	   *z = palloc(sizeof(float) * fit->gate->padded_features);

	for (int64 i = 0; i < m; i++)
	{
		const float *xi = x + rows[i] * d;
		NoveltyInputs in;
		int			label = forest_predict_class(forest, nclasses, xi, margin, proba, scratch);

		f[i].pb = benign >= 0 ? proba[benign] : 0;
		f[i].attack = label != benign;
		novelty_inputs(fit->gate, fit->iforest, xi, classifier_uncertainty(proba, benign), true,
					   z, scratch, &in);
		(void) novelty_value(fit->gate, in.anomaly, in.uncertainty, in.distance, &f[i].novel);
		nids_check_interrupts(i);
	}
	pfree(scratch);
	pfree(margin);
	pfree(proba);
	pfree(z);
	return f;
}

/*
 * tau: the largest threshold on P(benign) at which the whole verdict (the
 * classifier by tau, then the gate) flags at most target of new flows like
 * the m calibration flows x[rows[0 .. m-1]] (d features).  Setting tau
 * alone would only hand flows to the gate: the gate's flags count too.  A
 * new flow like them falls below the k-th smallest of m values with
 * chance k / (m + 1) (conformal ranks): so k - 1 of them flagged is what
 * target allows for k <= target * (m + 1); for a small m, none.
 */
double
adapt_calibrate_tau(const NidsForest *forest, int nclasses, int benign, const AttachFit *fit,
					const float *x, int d, const int64 *rows, int64 m, double target,
					int64 *flagged)
{
	TauFlow    *f = tau_flows(forest, nclasses, benign, fit, x, d, rows, m);
	int64	   *novel_from = palloc_extended(sizeof(int64) * (m + 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	double		allowed = target * (m + 1) - 1;
	double		tau = -1;

	/* P(benign) ascending; novel_from[k]: novel flows from the k-th on */
	qsort(f, m, sizeof(TauFlow), compare_tau_flows);
	for (int64 k = m - 1; k >= 0; k--)
		novel_from[k] = novel_from[k + 1] + f[k].novel;
	/*
	 * tau = the k-th P(benign): the k flows below it flagged, and the novel
	 * above.  When the gate alone flags more than the target, the
	 * classifier keeps its own share of it: tau flags at most target of the
	 * flows by itself (the gate's excess is the gate's, reported).
	 */
	for (int pass = 0; pass < 2 && tau < 0; pass++)
		for (int64 k = m - 1; k >= 0; k--)
		{
			int64		below = k;

			while (below > 0 && f[below - 1].pb == f[k].pb)
				below--;
			if (below + (pass == 0 ? novel_from[below] : 0) <= allowed)
			{
				tau = f[k].pb;
				*flagged = below + novel_from[below];
				break;
			}
		}
	if (tau < 0)
	{
		tau = m > 0 ? f[0].pb : 0.5;
		*flagged = novel_from[0];
	}
	pfree(f);
	pfree(novel_from);
	/* the column holds (0, 1): the smallest P(benign) may be 0 or 1 */
	return Min(Max(tau, 1e-12), 1 - 1e-12);
}

/*
 * How many of the m flows x[rows[0 .. m-1]] the whole verdict flags: the
 * classifier by tau (0: by its own label, a version without tau), then
 * the gate, as every verdict of the version decides (scoring.c).
 */
int64
adapt_count_flagged(const NidsForest *forest, int nclasses, int benign, const AttachFit *fit,
					double tau, const float *x, int d, const int64 *rows, int64 m)
{
	TauFlow    *f = tau_flows(forest, nclasses, benign, fit, x, d, rows, m);
	int64		flagged = 0;

	for (int64 i = 0; i < m; i++)
	{
		bool		attack = tau > 0 && benign >= 0 ? f[i].pb < tau : f[i].attack;

		flagged += attack || f[i].novel;
	}
	pfree(f);
	return flagged;
}

/*
 * Each feature's missing values among the local flows; those the local
 * flows lack (missing in more than ADAPT_MISSING_SHARE of them) named in r.
 */
int64 *
adapt_local_missing(NidsModel *model, const Rows *local, AdaptResult *r)
{
	int			nf = model->num_features;
	int64	   *missing = palloc0(sizeof(int64) * Max(nf, 1));

	for (int64 i = 0; i < local->n; i++)
		for (int j = 0; j < nf; j++)
			missing[j] += isnan(local->x[i * nf + j]);
	r->missing = palloc(sizeof(char *) * Max(nf, 1));
	r->nmissing = 0;
	for (int j = 0; j < nf; j++)
		if (missing[j] > ADAPT_MISSING_SHARE * local->n)
			r->missing[r->nmissing++] = model->feature_names[j];
	return missing;
}

/* features whose values are codes, not quantities: kept whatever their KS */
static bool
categorical_feature(const char *name)
{
	return strcmp(name, "destination_port") == 0 || strcmp(name, "protocol") == 0;
}

/*
 * Which features the retrained version keeps: not those the local flows
 * lack (missing in more than ADAPT_MISSING_SHARE of them: trained as the
 * local benign flows' trait, "missing" would mean "benign"), the
 * categorical ones they have whatever their KS, not those whose local
 * distribution is far from the reference (KS above drop_ks, farthest
 * first).  The kept ones into keep; returns how many.
 */
int
adapt_features(NidsModel *model, const Rows *local, const AdaptOptions *o, AdaptResult *r,
			   char **keep)
{
	int			nf = model->num_features;
	double	   *ks = local_ks(model, local, o->reference, &r->reference);
	int64	   *missing = adapt_local_missing(model, local, r);
	int			nkeep = 0;
	int		   *idx = palloc(sizeof(int) * Max(nf, 1));

	r->nmissing = 0;
	r->dropped = palloc(sizeof(char *) * Max(nf, 1));
	r->dropped_ks = palloc(sizeof(double) * Max(nf, 1));
	r->categorical = palloc(sizeof(char *) * Max(nf, 1));
	for (int j = 0; j < nf; j++)
	{
		const char *name = model->feature_names[j];

		if (missing[j] > ADAPT_MISSING_SHARE * local->n)
			r->missing[r->nmissing++] = (char *) name;
		else if (categorical_feature(name))
			keep[nkeep++] = r->categorical[r->ncategorical++] = (char *) name;
		else if (ks[j] > o->drop_ks)
			idx[r->ndropped++] = j;
		else
			keep[nkeep++] = (char *) name;
	}
	for (int a = 1; a < r->ndropped; a++)
		for (int b = a; b > 0 && ks[idx[b]] > ks[idx[b - 1]]; b--)
		{
			int			t = idx[b];

			idx[b] = idx[b - 1];
			idx[b - 1] = t;
		}
	for (int i = 0; i < r->ndropped; i++)
	{
		r->dropped[i] = model->feature_names[idx[i]];
		r->dropped_ks[i] = ks[idx[i]];
	}
	if (nkeep == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no feature of model \"%s\" is both present in the local flows and close to its training flows (KS at most %g)",
						model->name, o->drop_ks),
				 errhint("Raise options.drop_ks, or train on flows of this network.")));
	return nkeep;
}

/*
 * Per class of the held-out fifth: its flows, and the share each version
 * flags (before, after).
 */
void
adapt_per_class_recall(const Rows *before, const bool *fb, const Rows *after, const bool *fa,
				 AdaptResult *r)
{
	char	  **labels = palloc(sizeof(char *) * Max(before->n, 1));
	int64		n = 0;

	for (int64 i = 0; i < before->n; i++)
		if (before->labels[i])
			labels[n++] = before->labels[i];
	qsort(labels, n, sizeof(char *), compare_strings);
	r->classes = palloc(sizeof(char *) * Max(n, 1));
	for (int64 i = 0; i < n; i++)
		if (r->nclasses == 0 || strcmp(r->classes[r->nclasses - 1], labels[i]) != 0)
			r->classes[r->nclasses++] = labels[i];
	r->class_flows = palloc0(sizeof(int64) * Max(r->nclasses, 1));
	r->class_before = palloc0(sizeof(double) * Max(r->nclasses, 1));
	r->class_after = palloc0(sizeof(double) * Max(r->nclasses, 1));
	for (int pass = 0; pass < 2; pass++)
	{
		const Rows *rows = pass == 0 ? before : after;
		const bool *flags = pass == 0 ? fb : fa;
		int64	   *count = palloc0(sizeof(int64) * Max(r->nclasses, 1));
		double	   *share = pass == 0 ? r->class_before : r->class_after;

		for (int64 i = 0; i < rows->n; i++)
		{
			char	  **at;

			if (rows->labels[i] == NULL)
				continue;
			at = bsearch(&rows->labels[i], r->classes, r->nclasses, sizeof(char *), compare_strings);
			if (at == NULL)
				continue;
			count[at - r->classes]++;
			share[at - r->classes] += flags[i];
		}
		for (int c = 0; c < r->nclasses; c++)
		{
			share[c] = count[c] > 0 ? share[c] / count[c] : NAN;
			if (pass == 0)
				r->class_flows[c] = count[c];
		}
	}
}
