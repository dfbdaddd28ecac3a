/*-------------------------------------------------------------------------
 *
 * model_novelty.c
 *	  The novelty gate of a model version: which score says "this flow is
 *	  not like the benign traffic the model was trained on", its threshold,
 *	  and the benign prototypes; as stored in nids.model_versions.novelty.
 *
 * Methods (options.novelty.method):
 *	iforest			the isolation forest's score (nids_anomaly)
 *	uncertainty		1 - P(benign) of the classifier
 *	prototypes		squared distance to the nearest of k prototypes (k-means
 *					centres) of the benign training flows, in a robust-scaled
 *					log space: z_j = (g(x_j) - median_j) / s_j, clamped to
 *					+-NOVELTY_CLIP, with g(v) = sign(v) log(1 + |v|) and s_j the
 *					larger of the interquartile range and half the standard
 *					deviation of g(x_j); missing values at the median
 *	combined		max(uncertainty / s_u, distance / s_p): either one
 *	joint			-log P_u - log P_d: P_u the share of benign calibration
 *					flows at least as uncertain, P_d at least as far (Fisher's
 *					combination of the two tail probabilities); a flow
 *					somewhat unusual on both counts adds up to one very
 *					unusual on one
 * A flow is novel when the method's score exceeds the threshold; its
 * novelty is score / threshold.  Training (train_novelty.c) sets the
 * threshold so that the share of held-out benign flows with a verdict other
 * than benign, classifier false alarms included, is benign_fpr.  A version
 * stored without a gate (nids 1.0) uses the isolation forest and its
 * anomaly_threshold, exactly as 1.0 did.
 *
 * Stored bytes are untrusted: everything is checked on load.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "model.h"

#define GATE_MAGIC		0x4E494447	/* "NIDG" */
#define GATE_FORMAT		1		/* every method but joint */
#define GATE_FORMAT_JOINT	2	/* format 1 and the two tails */
#define GATE_MAX_PROTOTYPES	4096
#define GATE_MAX_KNOTS	4096

const char *const novelty_method_names[NOVELTY_NUM_METHODS] = {
	"iforest", "uncertainty", "prototypes", "combined", "joint"
};

typedef struct GateHeader
{
	uint32		magic;
	uint32		format;
	int32		method;
	int32		num_features;
	int32		num_prototypes;
	int32		pad;
	double		benign_fpr;
	double		threshold;
	double		scale_uncertainty;
	double		scale_prototypes;
} GateHeader;

/* format 2 (joint): after the header */
typedef struct JointHeader
{
	double		calibration_flows;
	int32		num_knots[NOVELTY_PARTS];
	double		beta[NOVELTY_PARTS];
} JointHeader;

static size_t
gate_size(int64 d, int64 k, const int32 *knots)
{
	size_t		size = sizeof(GateHeader) + sizeof(float) * (2 * d + k * d);

	if (knots)
		size += sizeof(JointHeader) + sizeof(double) * 2 * ((int64) knots[0] + knots[1]);
	return size;
}

bool
novelty_method_uses_prototypes(NoveltyMethod method)
{
	return method == NOVELTY_PROTOTYPES || method == NOVELTY_COMBINED ||
		method == NOVELTY_JOINT;
}

bytea *
novelty_serialize(const NoveltyGate *g)
{
	int			d = g->num_features;
	int			k = g->num_prototypes;
	bool		joint = g->method == NOVELTY_JOINT;
	int32		knots[NOVELTY_PARTS] = {g->tail[0].num_knots, g->tail[1].num_knots};
	size_t		size = gate_size(d, k, joint ? knots : NULL);
	bytea	   *out = palloc_extended(VARHDRSZ + size, MCXT_ALLOC_HUGE);
	char	   *p = VARDATA(out);
	GateHeader	h = {GATE_MAGIC, joint ? GATE_FORMAT_JOINT : GATE_FORMAT, g->method, d, k, 0,
	g->benign_fpr, g->threshold, g->scale_uncertainty, g->scale_prototypes};

	SET_VARSIZE(out, VARHDRSZ + size);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	if (joint)
	{
		JointHeader jh = {g->calibration_flows, {knots[0], knots[1]},
		{g->tail[0].beta, g->tail[1].beta}};

		memcpy(p, &jh, sizeof(jh));
		p += sizeof(jh);
	}
	if (k > 0)
	{
		memcpy(p, g->center, sizeof(float) * d);
		p += sizeof(float) * d;
		memcpy(p, g->inv_scale, sizeof(float) * d);
		p += sizeof(float) * d;
		memcpy(p, g->prototypes, sizeof(float) * d * k);
		p += sizeof(float) * d * k;
	}
	else
	{
		memset(p, 0, sizeof(float) * 2 * d);
		p += sizeof(float) * 2 * d;
	}
	for (int part = 0; joint && part < NOVELTY_PARTS; part++)
	{
		memcpy(p, g->tail[part].value, sizeof(double) * knots[part]);
		p += sizeof(double) * knots[part];
		memcpy(p, g->tail[part].count, sizeof(double) * knots[part]);
		p += sizeof(double) * knots[part];
	}
	return out;
}

static bool
all_finite(const float *v, int64 n)
{
	for (int64 i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return false;
	return true;
}

/*
 * A tail read from p (values, then ranks) when it is valid: values finite
 * and non-increasing, ranks increasing from 1 to the calibration flows.
 */
static bool
tail_read(NoveltyTail *t, int32 knots, double beta, double flows, const char **p)
{
	t->num_knots = knots;
	t->beta = beta;
	t->value = palloc(sizeof(double) * knots);
	t->count = palloc(sizeof(double) * knots);
	memcpy(t->value, *p, sizeof(double) * knots);
	*p += sizeof(double) * knots;
	memcpy(t->count, *p, sizeof(double) * knots);
	*p += sizeof(double) * knots;
	if (!isfinite(beta) || beta <= 0 || t->count[0] != 1 || t->count[knots - 1] != flows)
		return false;
	for (int i = 0; i < knots; i++)
		if (!isfinite(t->value[i]) ||
			(i > 0 && !(t->value[i] <= t->value[i - 1] && t->count[i] > t->count[i - 1])))
			return false;
	return true;
}

/*
 * A gate from its stored bytes, for a model of num_features features; NULL
 * and *error when the bytes are not a valid gate.
 */
NoveltyGate *
novelty_deserialize(const char *data, size_t len, int num_features, char **error)
{
	GateHeader	h;
	JointHeader jh = {0};
	NoveltyGate *g;
	const char *p;
	bool		joint;

	if (len < sizeof(h))
	{
		*error = "the novelty gate is truncated";
		return NULL;
	}
	memcpy(&h, data, sizeof(h));
	joint = h.format == GATE_FORMAT_JOINT;
	if (h.magic != GATE_MAGIC || (h.format != GATE_FORMAT && !joint))
	{
		*error = "the novelty gate has an unknown format";
		return NULL;
	}
	if (joint)
	{
		if (len < sizeof(h) + sizeof(jh))
		{
			*error = "the novelty gate is truncated";
			return NULL;
		}
		memcpy(&jh, data + sizeof(h), sizeof(jh));
		if (!(jh.calibration_flows >= 1 && jh.calibration_flows <= 1e15) ||
			jh.num_knots[0] < 1 || jh.num_knots[0] > GATE_MAX_KNOTS ||
			jh.num_knots[1] < 1 || jh.num_knots[1] > GATE_MAX_KNOTS)
		{
			*error = "the novelty gate's calibration tails have impossible sizes";
			return NULL;
		}
	}
	if (h.method < 0 || h.method >= NOVELTY_NUM_METHODS || h.num_features != num_features ||
		(h.method == NOVELTY_JOINT) != joint ||
		h.num_prototypes < 0 || h.num_prototypes > GATE_MAX_PROTOTYPES ||
		(novelty_method_uses_prototypes(h.method) && h.num_prototypes == 0) ||
		len != gate_size(h.num_features, h.num_prototypes, joint ? jh.num_knots : NULL))
	{
		*error = "the novelty gate's method or sizes do not match the model";
		return NULL;
	}
	if (!isfinite(h.threshold) || h.threshold < 0 ||
		!(h.benign_fpr > 0 && h.benign_fpr <= 0.5) ||
		!isfinite(h.scale_uncertainty) || h.scale_uncertainty <= 0 ||
		!isfinite(h.scale_prototypes) || h.scale_prototypes <= 0)
	{
		*error = "the novelty gate's threshold, rate or scales are out of range";
		return NULL;
	}
	g = palloc0(sizeof(NoveltyGate));
	g->method = h.method;
	g->num_features = h.num_features;
	g->num_prototypes = h.num_prototypes;
	g->threshold = h.threshold;
	g->benign_fpr = h.benign_fpr;
	g->scale_uncertainty = h.scale_uncertainty;
	g->scale_prototypes = h.scale_prototypes;
	g->calibration_flows = jh.calibration_flows;
	p = data + sizeof(h) + (joint ? sizeof(jh) : 0);
	g->center = palloc(sizeof(float) * Max(num_features, 1));
	g->inv_scale = palloc(sizeof(float) * Max(num_features, 1));
	memcpy(g->center, p, sizeof(float) * num_features);
	p += sizeof(float) * num_features;
	memcpy(g->inv_scale, p, sizeof(float) * num_features);
	p += sizeof(float) * num_features;
	g->prototypes = palloc_extended(sizeof(float) * Max((int64) num_features * g->num_prototypes, 1),
									MCXT_ALLOC_HUGE);
	memcpy(g->prototypes, p, sizeof(float) * num_features * g->num_prototypes);
	p += sizeof(float) * num_features * g->num_prototypes;
	if (!all_finite(g->center, num_features) || !all_finite(g->inv_scale, num_features) ||
		!all_finite(g->prototypes, (int64) num_features * g->num_prototypes))
	{
		*error = "the novelty gate holds a value that is not finite";
		return NULL;
	}
	for (int part = 0; joint && part < NOVELTY_PARTS; part++)
		if (!tail_read(&g->tail[part], jh.num_knots[part], jh.beta[part],
					   jh.calibration_flows, &p))
		{
			*error = "the novelty gate's calibration tails are not sorted, finite and counted";
			return NULL;
		}
	novelty_pad(g);
	return g;
}

/*
 * The prototypes again with each row padded with zeros to a multiple of
 * NOVELTY_LANES features, for novelty_prototype_distance.
 */
void
novelty_pad(NoveltyGate *g)
{
	int			d = g->num_features;
	int			dp = (d + NOVELTY_LANES - 1) / NOVELTY_LANES * NOVELTY_LANES;

	g->padded_features = dp;
	g->padded = palloc_extended(sizeof(float) * Max((int64) dp * g->num_prototypes, 1),
								MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int c = 0; c < g->num_prototypes; c++)
		memcpy(g->padded + (int64) c * dp, g->prototypes + (int64) c * d, sizeof(float) * d);
}

/*
 * x in the gate's space: z_j = (g(x_j) - center_j) * inv_scale_j clamped to
 * +-NOVELTY_CLIP (one feature far off cannot outweigh all the others), a
 * missing value at the centre (0); z has padded_features entries, the
 * padding 0.
 */
void
novelty_transform(const NoveltyGate *g, const float *x, float *z)
{
	for (int j = g->num_features; j < g->padded_features; j++)
		z[j] = 0.0f;
	for (int j = 0; j < g->num_features; j++)
	{
		float		v = x[j];

		if (isnan(v))
			z[j] = 0.0f;
		else
		{
			float		t = log1pf(fabsf(v));
			float		zj = ((v < 0 ? -t : t) - g->center[j]) * g->inv_scale[j];

			/* branch-free clamp: no feature adds more than NOVELTY_CLIP^2 */
			zj = zj > NOVELTY_CLIP ? NOVELTY_CLIP : zj;
			z[j] = zj < -NOVELTY_CLIP ? -NOVELTY_CLIP : zj;
		}
	}
}

/*
 * The distance runs over NOVELTY_LANES floats at a time in GCC's vector
 * type (Clang has it too): one vector operation each, SSE2 in two halves by
 * default, and an AVX2 clone chosen at load time where the CPU has it
 * (target_clones, as pgvector does).  Both sum the same lanes in the same
 * order with separate multiplies and adds (AVX2 does not imply FMA), so a
 * model's distances are bit for bit the same on either.
 */
#if defined(__GNUC__)
#define NOVELTY_VECTOR
typedef float LaneVector __attribute__((vector_size(NOVELTY_LANES * sizeof(float))));
#endif

#if defined(NOVELTY_VECTOR) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define NOVELTY_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef NOVELTY_TARGET_CLONES
#define NOVELTY_TARGET_CLONES
#endif

/* the lanes of acc summed in order */
static inline float
lanes_sum(const float *acc)
{
	float		sum = 0.0f;

	for (int l = 0; l < NOVELTY_LANES; l++)
		sum += acc[l];
	return sum;
}

/*
 * The squared distances from z to the padded prototype rows p and q, in
 * NOVELTY_LANES independent partial sums: each value of z loaded once for
 * both.
 */
static inline void
distance_pair(const float *z, const float *p, const float *q, int dp, float *sp, float *sq)
{
#ifdef NOVELTY_VECTOR
	LaneVector	a = {0},
				b = {0};
	float		lanes[NOVELTY_LANES];

	for (int j = 0; j < dp; j += NOVELTY_LANES)
	{
		LaneVector	vz,
					vp,
					vq,
					d,
					e;

		/* memcpy: rows are only float-aligned */
		memcpy(&vz, z + j, sizeof(vz));
		memcpy(&vp, p + j, sizeof(vp));
		memcpy(&vq, q + j, sizeof(vq));
		d = vz - vp;
		e = vz - vq;
		a += d * d;
		b += e * e;
	}
	memcpy(lanes, &a, sizeof(lanes));
	*sp = lanes_sum(lanes);
	memcpy(lanes, &b, sizeof(lanes));
	*sq = lanes_sum(lanes);
#else
	float		a[NOVELTY_LANES] = {0};
	float		b[NOVELTY_LANES] = {0};

	for (int j = 0; j < dp; j += NOVELTY_LANES)
		for (int l = 0; l < NOVELTY_LANES; l++)
		{
			float		d = z[j + l] - p[j + l];
			float		e = z[j + l] - q[j + l];

			a[l] += d * d;
			b[l] += e * e;
		}
	*sp = lanes_sum(a);
	*sq = lanes_sum(b);
#endif
}

/*
 * The squared distance from z (novelty_transform) to the nearest prototype,
 * and which it is: two prototypes at a time, no branch in the inner loop.
 * (An early exit on partial sums was tried: its horizontal sums cost more
 * than it saved.)
 */
NOVELTY_TARGET_CLONES
double
novelty_prototype_distance(const NoveltyGate *g, const float *z, int *nearest)
{
	int			dp = g->padded_features;
	int			k = g->num_prototypes;
	float		best = INFINITY;
	int			which = 0;

	for (int c = 0; c < k; c += 2)
	{
		const float *p = g->padded + (int64) c * dp;
		float		sp,
					sq;

		/* the last of an odd number: paired with itself */
		distance_pair(z, p, c + 1 < k ? p + dp : p, dp, &sp, &sq);
		if (sp < best)
		{
			best = sp;
			which = c;
		}
		if (c + 1 < k && sq < best)
		{
			best = sq;
			which = c + 1;
		}
	}
	if (nearest)
		*nearest = which;
	return best;
}

/*
 * joint: the tail probability of a benign flow's part being at least x,
 * (rank + 1) / (n + 1) with rank the number of calibration flows at or
 * above x, interpolated linearly between knots (1 at the largest value, n
 * at the smallest); above the largest it decays as exp(-(x - max) / beta),
 * so that a flow far beyond every calibration flow is ever more unusual.
 */
static double
tail_probability(const NoveltyTail *t, double n, double x)
{
	const double *v = t->value;
	const double *c = t->count;
	int			lo = 0,
				hi = t->num_knots - 1;
	double		rank;

	if (isnan(x))
		return 1.0;
	if (x > v[0])
		return 2.0 / (n + 1) * exp(-(x - v[0]) / t->beta);
	if (x <= v[hi])
		return (c[hi] + 1) / (n + 1);
	/* v[lo] >= x > v[hi] */
	while (hi - lo > 1)
	{
		int			mid = (lo + hi) / 2;

		if (v[mid] >= x)
			lo = mid;
		else
			hi = mid;
	}
	rank = c[lo] + (c[hi] - c[lo]) * (v[lo] - x) / (v[lo] - v[hi]);
	return (rank + 1) / (n + 1);
}

/*
 * joint: -log P_u - log P_d.  For one of the calibration flows themselves
 * (calibrating), each probability leaves that flow out, rank / n rather
 * than (rank + 1) / (n + 1): what a new flow with its values would get
 * against the others.  (Counting a flow against itself makes the
 * calibration flows look less unusual than new benign flows, the threshold
 * lower, and more new benign flows novel than benign_fpr allows.)
 */
double
novelty_joint_score(const NoveltyGate *g, double uncertainty, double distance, bool calibrating)
{
	double		n = g->calibration_flows;
	double		score = 0;

	for (int part = 0; part < NOVELTY_PARTS; part++)
	{
		double		p = tail_probability(&g->tail[part], n, part == 0 ? uncertainty : distance);

		if (calibrating)
			p = Max((p * (n + 1) - 1) / n, 1.0 / n);
		/* far enough out exp() underflows: a finite score all the same */
		score -= log(Max(p, DBL_MIN));
	}
	return score;
}

/* the method's score from its parts (those the method does not use: any) */
double
novelty_method_score(const NoveltyGate *g, double anomaly, double uncertainty,
					 double distance)
{
	switch (g->method)
	{
		case NOVELTY_IFOREST:
			return anomaly;
		case NOVELTY_UNCERTAINTY:
			return uncertainty;
		case NOVELTY_PROTOTYPES:
			return distance;
		case NOVELTY_COMBINED:
			return Max(uncertainty / g->scale_uncertainty, distance / g->scale_prototypes);
		case NOVELTY_JOINT:
			return novelty_joint_score(g, uncertainty, distance, false);
		default:
			break;
	}
	return NAN;
}

/*
 * The gate's inputs for flow x, already classified (its uncertainty
 * given): the prototype distance and the isolation forest's score (when
 * iforest is given).  Scoring (every_part false) computes only what g's
 * method reads; calibration computes every part g and iforest have.
 */
void
novelty_inputs(const NoveltyGate *g, const NidsForest *iforest, const float *x,
			   double uncertainty, bool every_part, float *z, float *scratch,
			   NoveltyInputs *in)
{
	in->uncertainty = uncertainty;
	in->distance = 0.0;
	in->anomaly = NAN;
	if (iforest != NULL && (every_part || g == NULL || g->method == NOVELTY_IFOREST))
		in->anomaly = iforest_score(iforest, x, scratch);
	if (g != NULL && (every_part || novelty_method_uses_prototypes(g->method)))
	{
		novelty_transform(g, x, z);
		in->distance = novelty_prototype_distance(g, z, NULL);
	}
}

/*
 * The flow's novelty, the method's score over the threshold, and *novel
 * when the score is above it.
 */
double
novelty_value(const NoveltyGate *g, double anomaly, double uncertainty, double distance,
			  bool *novel)
{
	double		score = novelty_method_score(g, anomaly, uncertainty, distance);

	*novel = score > g->threshold;
	if (g->threshold > 0)
		return score / g->threshold;
	return score > 0 ? INFINITY : 0.0;
}

/*
 * joint: the knots of a part from its n calibration values sorted largest
 * first: every rank up to TAIL_EXACT, then ranks 5% apart, and the
 * smallest; beta from the top min(n, TAIL_FIT) values, the mean spacing an
 * exponential tail would give them (the largest minus the m-th over
 * H(m - 1)), at least TAIL_MIN_BETA.
 */
#define TAIL_EXACT		128
#define TAIL_FIT		32
#define TAIL_MIN_BETA	1e-9

void
novelty_tail_build(NoveltyTail *tail, double *v, int64 n)
{
	int			cap = TAIL_EXACT + 2;
	int			k = 0;
	int64		m = Min(n, TAIL_FIT);
	double		harmonic = 0;

	Assert(n >= 1);
	for (int64 r = TAIL_EXACT; r < n; r = Max(r + 1, (int64) ceil(r * 1.05)))
		cap++;
	tail->value = palloc(sizeof(double) * cap);
	tail->count = palloc(sizeof(double) * cap);
	for (int64 r = 1; r < n; r = r < TAIL_EXACT ? r + 1 : Max(r + 1, (int64) ceil(r * 1.05)))
	{
		tail->value[k] = v[r - 1];
		tail->count[k++] = (double) r;
	}
	tail->value[k] = v[n - 1];
	tail->count[k++] = (double) n;
	tail->num_knots = k;
	for (int64 i = 1; i < m; i++)
		harmonic += 1.0 / i;
	tail->beta = m > 1 ? (v[0] - v[m - 1]) / harmonic : 0;
	tail->beta = Max(tail->beta, TAIL_MIN_BETA);
}
