/*-------------------------------------------------------------------------
 *
 * train_novelty.c
 *	  Training the novelty gate (model_novelty.c): the benign prototypes,
 *	  seeded k-means with k-means++ initialisation (Arthur and Vassilvitskii
 *	  2007) in a robust-scaled log space, and the calibration of the
 *	  threshold on held-out benign flows.
 *
 * Calibration counts what the user will see: a held-out benign flow is a
 * false alarm when the classifier calls it an attack, whatever the gate
 * says, or when the classifier calls it benign and the gate novel.  The
 * threshold is set so that at most benign_fpr of the held-out benign flows
 * are false alarms in total; when the classifier's own false alarms exceed
 * that already, the gate flags nothing more.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "miscadmin.h"
#include "random.h"
#include "report.h"
#include "train.h"

#define KMEANS_SAMPLE	8192	/* benign rows k-means runs on */
#define KMEANS_ITERATIONS	20
/* the threshold when every calibration row is a false alarm already */
#define NOVELTY_FLAGS_NOTHING	DBL_MAX

static int
compare_float(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

static int
compare_double_desc(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x < y) - (x > y);
}

static inline float
signed_log(float v)
{
	float		t = log1pf(fabsf(v));

	return v < 0 ? -t : t;
}

/*
 * Per feature, the median of g(x) over the rows, and the inverse of its
 * scale: the interquartile range (1 when it is 0, as sklearn's
 * RobustScaler has it), or half the standard deviation when that is larger
 * (a narrow middle half with wide tails would make the tails' benign flows
 * look far); a feature no row has is centred at 0 with scale 1.
 */
static void
robust_scale(NoveltyGate *g, const float *x, int d, const int64 *rows, int64 n)
{
	float	   *col = palloc_extended(sizeof(float) * Max(n, 1), MCXT_ALLOC_HUGE);

	for (int j = 0; j < d; j++)
	{
		int64		m = 0;
		double		sum = 0,
					sum2 = 0,
					sd;
		float		scale;

		for (int64 i = 0; i < n; i++)
		{
			float		v = x[rows[i] * d + j];

			if (!isnan(v))
			{
				col[m] = signed_log(v);
				sum += col[m];
				m++;
			}
		}
		if (m == 0)
		{
			g->center[j] = 0.0f;
			g->inv_scale[j] = 1.0f;
			continue;
		}
		for (int64 i = 0; i < m; i++)
			sum2 += (col[i] - sum / m) * (col[i] - sum / m);
		sd = sqrt(sum2 / m);
		qsort(col, m, sizeof(float), compare_float);
		g->center[j] = col[m / 2];
		scale = col[(3 * m) / 4] - col[m / 4];
		scale = Max(scale > 0 ? scale : 1.0f, (float) (sd / 2));
		g->inv_scale[j] = 1.0f / scale;
	}
	pfree(col);
}

/* z of every sampled row, padded */
static float *
sample_space(const NoveltyGate *g, const float *x, int d, const int64 *rows, int64 n,
			 int64 m, NidsRandom *rng)
{
	int64	   *pick = palloc_extended(sizeof(int64) * Max(n, 1), MCXT_ALLOC_HUGE);
	float	   *z = palloc_extended(sizeof(float) * Max(m, 1) * g->padded_features, MCXT_ALLOC_HUGE);

	for (int64 i = 0; i < n; i++)
		pick[i] = rows[i];
	/* partial Fisher-Yates: the first m of a seeded shuffle */
	for (int64 i = 0; i < m; i++)
	{
		int64		j = i + (int64) nids_random_below(rng, (uint64) (n - i));
		int64		t = pick[i];

		pick[i] = pick[j];
		pick[j] = t;
		novelty_transform(g, x + pick[i] * d, z + i * g->padded_features);
	}
	pfree(pick);
	return z;
}

static float
squared_distance(const float *a, const float *b, int dp)
{
	float		sum = 0.0f;

	for (int j = 0; j < dp; j++)
		sum += (a[j] - b[j]) * (a[j] - b[j]);
	return sum;
}

/* k-means++: each next centre drawn with probability proportional to D^2 */
static int
kmeans_init(NoveltyGate *g, const float *z, int64 m, int k, NidsRandom *rng)
{
	int			dp = g->padded_features;
	double	   *d2 = palloc_extended(sizeof(double) * Max(m, 1), MCXT_ALLOC_HUGE);
	int			c;

	memcpy(g->padded, z + nids_random_below(rng, m) * dp, sizeof(float) * dp);
	for (int64 i = 0; i < m; i++)
		d2[i] = squared_distance(z + i * dp, g->padded, dp);
	for (c = 1; c < k; c++)
	{
		double		total = 0,
					target,
					run = 0;
		int64		i;

		for (i = 0; i < m; i++)
			total += d2[i];
		if (total <= 0)
			break;				/* fewer distinct rows than k */
		target = nids_random_unit(rng) * total;
		for (i = 0; i < m - 1; i++)
		{
			run += d2[i];
			if (run > target)
				break;
		}
		memcpy(g->padded + (int64) c * dp, z + i * dp, sizeof(float) * dp);
		for (int64 r = 0; r < m; r++)
			d2[r] = Min(d2[r], squared_distance(z + r * dp, g->padded + (int64) c * dp, dp));
		CHECK_FOR_INTERRUPTS();
	}
	pfree(d2);
	return c;
}

/* Lloyd's iterations until no row changes centre */
static void
kmeans_refine(NoveltyGate *g, const float *z, int64 m)
{
	int			dp = g->padded_features;
	int			k = g->num_prototypes;
	int		   *assign = palloc_extended(sizeof(int) * Max(m, 1), MCXT_ALLOC_HUGE);
	double	   *sum = palloc(sizeof(double) * k * dp);
	int64	   *count = palloc(sizeof(int64) * k);

	for (int64 i = 0; i < m; i++)
		assign[i] = -1;
	for (int it = 0; it < KMEANS_ITERATIONS; it++)
	{
		int64		changed = 0;

		memset(sum, 0, sizeof(double) * k * dp);
		memset(count, 0, sizeof(int64) * k);
		for (int64 i = 0; i < m; i++)
		{
			int			c;

			(void) novelty_prototype_distance(g, z + i * dp, &c);
			changed += c != assign[i];
			assign[i] = c;
			count[c]++;
			for (int j = 0; j < dp; j++)
				sum[c * dp + j] += z[i * dp + j];
		}
		if (changed == 0)
			break;
		for (int c = 0; c < k; c++)
			if (count[c] > 0)	/* an empty cluster keeps its centre */
				for (int j = 0; j < dp; j++)
					g->padded[(int64) c * dp + j] = (float) (sum[c * dp + j] / count[c]);
		CHECK_FOR_INTERRUPTS();
	}
	pfree(assign);
	pfree(sum);
	pfree(count);
}

/*
 * The prototypes reordered largest cluster first (of the sample's rows), a
 * stable order that reads well in nids_explain_novelty's terms and does
 * not depend on k-means++'s draw order.
 */
static void
order_by_size(NoveltyGate *g, const float *z, int64 m)
{
	int			dp = g->padded_features;
	int			k = g->num_prototypes;
	int64	   *count = palloc0(sizeof(int64) * k);
	int		   *order = palloc(sizeof(int) * k);
	float	   *sorted = palloc(sizeof(float) * (int64) k * dp);

	for (int64 i = 0; i < m; i++)
	{
		int			c;

		(void) novelty_prototype_distance(g, z + i * dp, &c);
		count[c]++;
	}
	for (int c = 0; c < k; c++)
	{
		int			x = c;

		/* insertion sort, stable: larger counts first */
		while (x > 0 && count[order[x - 1]] < count[c])
		{
			order[x] = order[x - 1];
			x--;
		}
		order[x] = c;
	}
	for (int c = 0; c < k; c++)
		memcpy(sorted + (int64) c * dp, g->padded + (int64) order[c] * dp, sizeof(float) * dp);
	memcpy(g->padded, sorted, sizeof(float) * (int64) k * dp);
	pfree(count);
	pfree(order);
	pfree(sorted);
}

/*
 * A gate with k benign prototypes of the rows (indices into x, d features
 * per row); method and threshold are set by novelty_calibrate.
 */
NoveltyGate *
novelty_train(const float *x, int d, const int64 *rows, int64 n, int k, uint64 seed)
{
	NoveltyGate *g = palloc0(sizeof(NoveltyGate));
	NidsRandom	rng;
	int64		m = Min(n, KMEANS_SAMPLE);
	float	   *z;

	nids_random_init(&rng, seed ^ UINT64CONST(0x9E3779B97F4A7C15));
	g->num_features = d;
	g->center = palloc(sizeof(float) * Max(d, 1));
	g->inv_scale = palloc(sizeof(float) * Max(d, 1));
	g->scale_uncertainty = 1.0;
	g->scale_prototypes = 1.0;
	robust_scale(g, x, d, rows, n);
	g->padded_features = (d + NOVELTY_LANES - 1) / NOVELTY_LANES * NOVELTY_LANES;
	k = (int) Min(k, Max(m, 1));
	g->padded = palloc_extended(sizeof(float) * (int64) Max(k, 1) * g->padded_features,
								MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	if (m == 0)
	{
		g->num_prototypes = 1;	/* no benign row: one prototype at the centre */
	}
	else
	{
		z = sample_space(g, x, d, rows, n, m, &rng);
		g->num_prototypes = kmeans_init(g, z, m, k, &rng);
		kmeans_refine(g, z, m);
		order_by_size(g, z, m);
		pfree(z);
	}
	g->prototypes = palloc(sizeof(float) * (int64) g->num_prototypes * Max(d, 1));
	for (int c = 0; c < g->num_prototypes; c++)
		memcpy(g->prototypes + (int64) c * d, g->padded + (int64) c * g->padded_features,
			   sizeof(float) * d);
	return g;
}

/* the scores of rows that are not false alarms, largest first; *m of them */
static double *
kept_descending(const double *score, const bool *alarm, int64 n, int64 *m)
{
	double	   *v = palloc_extended(sizeof(double) * Max(n, 1), MCXT_ALLOC_HUGE);

	*m = 0;
	for (int64 i = 0; i < n; i++)
		if (!alarm[i])
			v[(*m)++] = score[i];
	qsort(v, *m, sizeof(double), compare_double_desc);
	return v;
}

/*
 * The combined gate flags a flow when its uncertainty is above t_u or its
 * distance above t_p.  Both are set at the same rank r of their own
 * scores among the rows that are not false alarms (t = the (r + 1)-th
 * largest), r as large as the budget allows: the union of what the two
 * flag is at most allowed rows.  Stored as the scales of max(u / t_u,
 * d / t_p) with threshold 1.
 */
static void
calibrate_combined(NoveltyGate *g, const double *uncertainty, const double *distance,
				   const bool *alarm, int64 n, int64 allowed)
{
	int64		m;
	double	   *u = kept_descending(uncertainty, alarm, n, &m);
	double	   *d = kept_descending(distance, alarm, n, &m);
	int64		best = 0,
				hi = Min(allowed, m - 1);

	/* what rank r flags grows with r: bisect for the largest that fits */
	while (best < hi)
	{
		int64		r = best + (hi - best + 1) / 2;
		int64		flagged = 0;

		for (int64 i = 0; i < n; i++)
			flagged += !alarm[i] && (uncertainty[i] > u[r] || distance[i] > d[r]);
		if (flagged > allowed)
			hi = r - 1;
		else
			best = r;
		CHECK_FOR_INTERRUPTS();
	}
	/* rank 0: the largest values, which flag nothing */
	g->scale_uncertainty = m > 0 ? Max(u[best], 1e-12) : 1.0;
	g->scale_prototypes = m > 0 ? Max(d[best], 1e-12) : 1.0;
	g->threshold = m > 0 ? 1.0 : NOVELTY_FLAGS_NOTHING;
	pfree(u);
	pfree(d);
}

/*
 * The threshold on score for n held-out benign rows, alarm[i] when the
 * classifier already calls row i an attack: the (allowed + 1)-th largest
 * score of the other rows, allowed = floor(fpr * n) - alarms, so that at
 * most fpr * n rows in all are flagged (fewer with ties).
 */
double
novelty_threshold(const double *score, const bool *alarm, int64 n, double fpr)
{
	double	   *v = palloc_extended(sizeof(double) * Max(n, 1), MCXT_ALLOC_HUGE);
	int64		m = 0,
				alarms = 0,
				allowed;
	double		t;

	for (int64 i = 0; i < n; i++)
	{
		if (alarm[i])
			alarms++;
		else
			v[m++] = score[i];
	}
	if (m == 0)
		return NOVELTY_FLAGS_NOTHING;
	qsort(v, m, sizeof(double), compare_double_desc);
	allowed = (int64) floor(fpr * n + 1e-9) - alarms;
	t = v[Min(Max(allowed, 0), m - 1)];
	pfree(v);
	return Max(t, 0.0);
}

/*
 * joint: the tails of the two parts over the rows that are not false
 * alarms, then the threshold on those rows' scores, each row left out of
 * the tails it is scored against.
 */
static void
calibrate_joint(NoveltyGate *g, const double *uncertainty, const double *distance,
				const bool *alarm, int64 n, double fpr)
{
	int64		m;
	double	   *u = kept_descending(uncertainty, alarm, n, &m);
	double	   *d = kept_descending(distance, alarm, n, &m);
	double	   *score;

	if (m == 0 && n > 0)
	{
		/*
		 * every calibration flow is a false alarm: the tails of all of them
		 * (the threshold will flag nothing more)
		 */
		bool	   *none = palloc_extended(sizeof(bool) * n, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

		pfree(u);
		pfree(d);
		u = kept_descending(uncertainty, none, n, &m);
		d = kept_descending(distance, none, n, &m);
		pfree(none);
	}
	if (m == 0)
	{
		/* no calibration flow at all: one at 0 */
		u[0] = d[0] = 0.0;
		m = 1;
	}
	g->calibration_flows = (double) m;
	novelty_tail_build(&g->tail[0], u, m);
	novelty_tail_build(&g->tail[1], d, m);
	pfree(u);
	pfree(d);
	score = palloc_extended(sizeof(double) * Max(n, 1), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
		score[i] = novelty_joint_score(g, uncertainty[i], distance[i], true);
	g->threshold = novelty_threshold(score, alarm, n, fpr);
	pfree(score);
}

/*
 * Set g's method and threshold(s) from the held-out benign rows' parts:
 * anomaly (isolation forest), uncertainty (1 - P(benign)) and distance
 * (to the nearest prototype), alarm[i] when the classifier calls row i an
 * attack.
 */
void
novelty_calibrate(NoveltyGate *g, NoveltyMethod method, const double *anomaly,
				  const double *uncertainty, const double *distance,
				  const bool *alarm, int64 n, double fpr)
{
	double	   *score;
	int64		alarms = 0;

	g->method = method;
	g->benign_fpr = fpr;
	g->scale_uncertainty = 1.0;
	g->scale_prototypes = 1.0;
	if (method == NOVELTY_COMBINED)
	{
		for (int64 i = 0; i < n; i++)
			alarms += alarm[i];
		calibrate_combined(g, uncertainty, distance, alarm, n,
						   (int64) floor(fpr * n + 1e-9) - alarms);
		return;
	}
	if (method == NOVELTY_JOINT)
	{
		calibrate_joint(g, uncertainty, distance, alarm, n, fpr);
		return;
	}
	score = palloc_extended(sizeof(double) * Max(n, 1), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
		score[i] = novelty_method_score(g, anomaly ? anomaly[i] : 0, uncertainty[i], distance[i]);
	g->threshold = novelty_threshold(score, alarm, n, fpr);
	pfree(score);
}

/* room for cap calibration flows */
void
gate_samples_init(GateSamples *s, int64 cap)
{
	cap = Max(cap, 1);
	s->n = 0;
	s->anomaly = palloc_extended(sizeof(double) * cap, MCXT_ALLOC_HUGE);
	s->uncertainty = palloc_extended(sizeof(double) * cap, MCXT_ALLOC_HUGE);
	s->distance = palloc_extended(sizeof(double) * cap, MCXT_ALLOC_HUGE);
	s->alarm = palloc_extended(sizeof(bool) * cap, MCXT_ALLOC_HUGE);
}

void
gate_samples_add(GateSamples *s, const NoveltyInputs *in, bool alarm)
{
	s->anomaly[s->n] = in->anomaly;
	s->uncertainty[s->n] = in->uncertainty;
	s->distance[s->n] = in->distance;
	s->alarm[s->n] = alarm;
	s->n++;
}

/*
 * Calibrate g (method) and the isolation forest's own threshold on the
 * calibration flows s, and count what those flows get: the one
 * calibration of nids_train and nids_attach_benign.
 */
void
gate_calibrate(NoveltyGate *g, NoveltyMethod method, const GateSamples *s, double fpr,
			   const char *calibrated_on, GateCalibration *out)
{
	memset(out, 0, sizeof(*out));
	out->calibrated_on = calibrated_on;
	out->benign_fpr = fpr;
	out->rows = s->n;
	out->iforest_threshold = novelty_threshold(s->anomaly, s->alarm, s->n, fpr);
	novelty_calibrate(g, method, s->anomaly, s->uncertainty, s->distance, s->alarm, s->n, fpr);
	for (int64 i = 0; i < s->n; i++)
	{
		bool		novel;

		(void) novelty_value(g, s->anomaly[i], s->uncertainty[i], s->distance[i], &novel);
		out->alarms += s->alarm[i];
		out->flagged += s->alarm[i] || novel;
	}
}

/* the "novelty" object of a version's report: the gate and its calibration */
void
novelty_report(JsonbParseState **st, const NoveltyGate *g, const GateCalibration *c)
{
	report_begin(st, "novelty");
	report_string(st, "method", novelty_method_names[g->method]);
	report_number(st, "benign_fpr", c->benign_fpr);
	report_number(st, "threshold", g->threshold);
	if (novelty_method_uses_prototypes(g->method))
		report_int(st, "prototypes", g->num_prototypes);
	if (g->method == NOVELTY_COMBINED)
	{
		report_number(st, "scale_uncertainty", g->scale_uncertainty);
		report_number(st, "scale_prototypes", g->scale_prototypes);
	}
	if (g->method == NOVELTY_JOINT)
	{
		report_int(st, "uncertainty_knots", g->tail[0].num_knots);
		report_int(st, "distance_knots", g->tail[1].num_knots);
	}
	report_string(st, "calibrated_on", c->calibrated_on);
	report_int(st, "calibration_flows", c->rows);
	report_int(st, "classifier_false_alarms", c->alarms);
	report_number(st, "benign_flagged", c->rows > 0 ? (double) c->flagged / c->rows : NAN);
	report_end(st);
}
