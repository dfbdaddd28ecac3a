/*-------------------------------------------------------------------------
 *
 * drift.c
 *	  ks_drift(window_query, model): two-sample Kolmogorov-Smirnov tests of
 *	  a window of flows against the training distribution stored with the
 *	  model (drift_reference.c).
 *
 * The window query runs through a read-only cursor with the caller's
 * privileges, its rows handed from the executor to a receiver one by one;
 * it must be one SELECT (no data-modifying CTE, no FOR UPDATE).  Its
 * columns are matched to the model's features by canonical name as
 * nids_features matches them (feature_map_build), or it returns one
 * float8[] column in feature order.  No window column is sorted: each
 * value is placed by binary search among the reference's points (at most
 * 4096), counting values equal to a point and values strictly between two
 * points separately.  The statistic is then evaluated
 * at every point and just before it, which is exact when the reference
 * holds every distinct training value and within 1/4096 otherwise.
 *
 * p-values follow scipy's ks_2samp(method='asymp'): the distribution of
 * the one-sample statistic at en = round(n * m / (n + m)), n the training
 * count; computed exactly (Marsaglia, Tsang and Wang 2003) while en * D is
 * small, else by the Kolmogorov limit with Stephens' correction (tested
 * against scipy fixtures).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "drift.h"
#include "executor/spi.h"
#include "feature_map.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nids.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ks_drift);
PG_FUNCTION_INFO_V1(nids_check_window_query);

#define FETCH_ROWS	10000

/*
 * Kolmogorov's limiting distribution, P(K > lambda).
 */
static double
kolmogorov_sf(double lambda)
{
	double		sum = 0.0;

	if (lambda < 0.2)
		return 1.0;
	for (int k = 1; k <= 100; k++)
	{
		double		term = exp(-2.0 * k * k * lambda * lambda);

		sum += (k % 2 ? 1.0 : -1.0) * term;
		if (term < 1e-16)
			break;
	}
	return Max(0.0, Min(1.0, 2.0 * sum));
}

/*
 * P(D_n < d) for the one-sample two-sided statistic, exactly, by the
 * method of Marsaglia, Tsang and Wang (2003): the (k,k) entry of the n-th
 * power of a (2k-1)-square matrix, k = floor(n d) + 1, with the exponent
 * kept apart to avoid overflow.  Used when k is small, where the
 * asymptotic formula is least accurate.
 */
static void
matrix_multiply(const double *a, const double *b, double *out, int m)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
		{
			double		s = 0;

			for (int k = 0; k < m; k++)
				s += a[i * m + k] * b[k * m + j];
			out[i * m + j] = s;
		}
}

static void
matrix_power(const double *a, int m, int n, double *out, int *exponent,
			 double *tmp, double *base)
{
	int			ebase = 0;

	/* out = identity, base = a */
	for (int i = 0; i < m * m; i++)
	{
		out[i] = (i / m == i % m) ? 1.0 : 0.0;
		base[i] = a[i];
	}
	*exponent = 0;
	while (n > 0)
	{
		if (n & 1)
		{
			matrix_multiply(out, base, tmp, m);
			memcpy(out, tmp, sizeof(double) * m * m);
			*exponent += ebase;
			if (out[(m / 2) * m + m / 2] > 1e140)
			{
				for (int i = 0; i < m * m; i++)
					out[i] *= 1e-140;
				*exponent += 140;
			}
		}
		n >>= 1;
		if (n == 0)
			break;
		matrix_multiply(base, base, tmp, m);
		memcpy(base, tmp, sizeof(double) * m * m);
		ebase *= 2;
		if (base[(m / 2) * m + m / 2] > 1e140)
		{
			for (int i = 0; i < m * m; i++)
				base[i] *= 1e-140;
			ebase += 140;
		}
	}
}

static double
kolmogorov_cdf_exact(int n, double d)
{
	int			k = (int) (n * d) + 1;
	int			m = 2 * k - 1;
	double		h = k - n * d;
	double	   *H = palloc0(sizeof(double) * m * m);
	double	   *Q = palloc(sizeof(double) * m * m);
	double	   *tmp = palloc(sizeof(double) * m * m);
	double	   *base = palloc(sizeof(double) * m * m);
	int			eQ;
	double		s;

	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
			H[i * m + j] = (i - j + 1 < 0) ? 0.0 : 1.0;
	for (int i = 0; i < m; i++)
	{
		H[i * m] -= pow(h, i + 1);
		H[(m - 1) * m + i] -= pow(h, m - i);
	}
	H[(m - 1) * m] += (2 * h - 1 > 0) ? pow(2 * h - 1, m) : 0.0;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
			if (i - j + 1 > 0)
				for (int g = 1; g <= i - j + 1; g++)
					H[i * m + j] /= g;
	matrix_power(H, m, n, Q, &eQ, tmp, base);
	s = Q[(k - 1) * m + k - 1];
	for (int i = 1; i <= n; i++)
	{
		s = s * i / n;
		if (s < 1e-140)
		{
			s *= 1e140;
			eQ -= 140;
		}
	}
	s *= pow(10.0, eQ);
	pfree(H);
	pfree(Q);
	pfree(tmp);
	pfree(base);
	return Max(0.0, Min(1.0, s));
}

/*
 * The p-value of a two-sample statistic d of sizes n and m, as scipy's
 * ks_2samp(method='asymp') defines it: the one-sample distribution at
 * en = round(n m / (n + m)).  Exact (above) while n d is small; otherwise
 * the Kolmogorov limit with Stephens' correction, which is then within a
 * few thousandths.
 */
double
ks_pvalue(double d, double n, double m)
{
	double		en,
				s;

	if (n <= 0 || m <= 0)
		return NAN;
	en = rint(n * m / (n + m));
	if (en < 1)
		en = 1;
	if (d >= 1.0)
		return 0.0;
	if (en * d < 40 && en <= 1e7)
		return 1.0 - kolmogorov_cdf_exact((int) en, d);
	s = sqrt(en);
	return kolmogorov_sf((s + 0.12 + 0.11 / s) * d);
}

/*
 * Check that a window query is one read-only SELECT; returns its plan.
 */
static SPIPlanPtr
prepare_window_query(const char *query)
{
	SPIPlanPtr	plan = SPI_prepare(query, 0, NULL);
	ListCell   *lc;

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("window_query could not be prepared: %s",
						SPI_result_code_string(SPI_result))));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("window_query must be a single read-only SELECT")));
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);
		ListCell   *lq;

		foreach(lq, ps->query_list)
		{
			Query	   *q = lfirst_node(Query, lq);

			if (q->commandType != CMD_SELECT || q->hasModifyingCTE ||
				q->rowMarks != NIL || q->utilityStmt != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
						 errmsg("window_query must be a single read-only SELECT"),
						 errdetail("It modifies data, locks rows or is not a query.")));
		}
	}
	return plan;
}

/* per-feature counts against the reference points */
typedef struct FeatureCounts
{
	int64		m;				/* window values */
	int64	   *at;				/* [npoints] values equal to point i */
	int64	   *between;		/* [npoints + 1] values in (v[i-1], v[i]) */
} FeatureCounts;

static inline void
count_value(const DriftFeatureRef *ref, FeatureCounts *fc, float v)
{
	int			lo = 0,
				hi = ref->npoints;

	/* lo = number of points < v */
	while (lo < hi)
	{
		int			mid = (lo + hi) >> 1;

		if (ref->values[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ref->npoints && ref->values[lo] == v)
		fc->at[lo]++;
	else
		fc->between[lo]++;
	fc->m++;
}

static double
ks_statistic(const DriftFeatureRef *ref, const FeatureCounts *fc)
{
	double		m = (double) fc->m;
	double		cum = 0;
	double		d = 0;
	double		fref = 0;

	for (int i = 0; i <= ref->npoints; i++)
	{
		/* values strictly below point i (and above point i-1) */
		cum += fc->between[i];
		d = Max(d, fabs(fref - cum / m));
		if (i == ref->npoints)
			break;
		/* just before point i the reference is still fref */
		cum += fc->at[i];
		fref = ref->cdf[i];
		d = Max(d, fabs(fref - cum / m));
	}
	return d;
}

/*
 * The window is read through a cursor whose rows go straight from the
 * executor into this receiver: nothing is copied or materialised.
 */
typedef struct DriftReceiver
{
	DestReceiver pub;
	NidsModel  *model;
	DriftReference *ref;
	FeatureCounts *counts;
	MemoryContext cxt;
	bool		matched;
	bool		vector_mode;
	FeatureMap	map;			/* feature -> result column, by canonical name */
	float	   *vec;
	MemoryContext rowcxt;		/* detoasted values of one row, reset after it */
} DriftReceiver;

static void
drift_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	DriftReceiver *r = (DriftReceiver *) self;
	MemoryContext old;

	if (r->matched)
		return;
	old = MemoryContextSwitchTo(r->cxt);
	r->vec = palloc(sizeof(float) * r->model->num_features);
	r->rowcxt = AllocSetContextCreate(r->cxt, "ks_drift row", ALLOCSET_SMALL_SIZES);
	r->vector_mode = (desc->natts == 1 && TupleDescAttr(desc, 0)->atttypid == FLOAT8ARRAYOID);
	if (!r->vector_mode)
		feature_map_build(&r->map, r->model, desc, r->cxt);
	MemoryContextSwitchTo(old);
	r->matched = true;
}

static bool
drift_receive(TupleTableSlot *slot, DestReceiver *self)
{
	DriftReceiver *r = (DriftReceiver *) self;
	int			nf = r->model->num_features;
	MemoryContext old;

	slot_getallattrs(slot);

	/* detoasting an array or a numeric allocates: one row at a time */
	old = MemoryContextSwitchTo(r->rowcxt);
	if (r->vector_mode)
	{
		if (!slot->tts_isnull[0])
		{
			vector_from_array(DatumGetArrayTypeP(slot->tts_values[0]), nf, r->model->name, r->vec);
			for (int f = 0; f < nf; f++)
				if (!isnan(r->vec[f]))
					count_value(&r->ref->features[f], &r->counts[f], r->vec[f]);
		}
	}
	else
	{
		for (int f = 0; f < nf; f++)
		{
			int			a = r->map.attnum[f];
			float		x;

			if (a < 0 || slot->tts_isnull[a])
				continue;
			x = nids_map_value(nids_datum_to_double(slot->tts_values[a], r->map.atttype[f]));
			if (!isnan(x))
				count_value(&r->ref->features[f], &r->counts[f], x);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->rowcxt);
	return true;
}

static void
drift_shutdown(DestReceiver *self)
{
}

static void
drift_destroy(DestReceiver *self)
{
}

Datum
ks_drift(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	NidsModel  *model = model_lookup(name);
	DriftReference *ref = model_drift_reference(model);
	int			nf = model->num_features;
	DriftReceiver recv;
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "ks_drift",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;

	InitMaterializedSRF(fcinfo, 0);
	memset(&recv, 0, sizeof(recv));
	recv.pub.receiveSlot = drift_receive;
	recv.pub.rStartup = drift_startup;
	recv.pub.rShutdown = drift_shutdown;
	recv.pub.rDestroy = drift_destroy;
	recv.pub.mydest = DestNone;
	recv.model = model;
	recv.ref = ref;
	recv.cxt = cxt;
	old = MemoryContextSwitchTo(cxt);
	recv.counts = palloc0(sizeof(FeatureCounts) * nf);
	for (int f = 0; f < nf; f++)
	{
		recv.counts[f].at = palloc0(sizeof(int64) * Max(ref->features[f].npoints, 1));
		recv.counts[f].between = palloc0(sizeof(int64) * (ref->features[f].npoints + 1));
	}
	MemoryContextSwitchTo(old);

	SPI_connect();
	plan = prepare_window_query(query);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	while (PortalRunFetch(portal, FETCH_FORWARD, FETCH_ROWS, (DestReceiver *) &recv) > 0)
		CHECK_FOR_INTERRUPTS();
	SPI_cursor_close(portal);
	SPI_finish();

	for (int f = 0; f < nf; f++)
	{
		const DriftFeatureRef *fr = &ref->features[f];
		FeatureCounts *fc = &recv.counts[f];
		Datum		out[6];
		bool		outnull[6] = {false, false, false, false, false, false};
		const char *level = "none";

		out[0] = CStringGetTextDatum(model->feature_names[f]);
		out[3] = Int64GetDatum(fr->n);
		out[4] = Int64GetDatum(fc->m);
		if (fc->m == 0 || fr->n == 0)
		{
			outnull[1] = outnull[2] = true;
		}
		else
		{
			double		d = ks_statistic(fr, fc);
			double		p = ks_pvalue(d, (double) fr->n, (double) fc->m);

			out[1] = Float8GetDatum(d);
			out[2] = Float8GetDatum(p);
			if (d > 0.5)
				level = "high";
			else if (p < 0.05 / nf)
				level = "significant";
		}
		out[5] = CStringGetTextDatum(level);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
	}
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/*
 * nids._check_window_query(text): raise the error ks_drift would raise for
 * a query that is not one read-only SELECT; used before scheduling.
 */
Datum
nids_check_window_query(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));

	SPI_connect();
	prepare_window_query(query);
	SPI_finish();
	PG_RETURN_VOID();
}
