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

#include <math.h>

#include "model.h"

#define GATE_MAGIC		0x4E494447	/* "NIDG" */
#define GATE_FORMAT		1
#define GATE_MAX_PROTOTYPES	4096

const char *const novelty_method_names[NOVELTY_NUM_METHODS] = {
	"iforest", "uncertainty", "prototypes", "combined"
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

static size_t
gate_size(int64 d, int64 k)
{
	return sizeof(GateHeader) + sizeof(float) * (2 * d + k * d);
}

bool
novelty_method_uses_prototypes(NoveltyMethod method)
{
	return method == NOVELTY_PROTOTYPES || method == NOVELTY_COMBINED;
}

bytea *
novelty_serialize(const NoveltyGate *g)
{
	int			d = g->num_features;
	int			k = g->num_prototypes;
	size_t		size = gate_size(d, k);
	bytea	   *out = palloc_extended(VARHDRSZ + size, MCXT_ALLOC_HUGE);
	char	   *p = VARDATA(out);
	GateHeader	h = {GATE_MAGIC, GATE_FORMAT, g->method, d, k, 0, g->benign_fpr,
	g->threshold, g->scale_uncertainty, g->scale_prototypes};

	SET_VARSIZE(out, VARHDRSZ + size);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	if (k > 0)
	{
		memcpy(p, g->center, sizeof(float) * d);
		p += sizeof(float) * d;
		memcpy(p, g->inv_scale, sizeof(float) * d);
		p += sizeof(float) * d;
		memcpy(p, g->prototypes, sizeof(float) * d * k);
	}
	else
		memset(p, 0, sizeof(float) * 2 * d);
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
 * A gate from its stored bytes, for a model of num_features features; NULL
 * and *error when the bytes are not a valid gate.
 */
NoveltyGate *
novelty_deserialize(const char *data, size_t len, int num_features, char **error)
{
	GateHeader	h;
	NoveltyGate *g;
	const char *p;

	if (len < sizeof(h))
	{
		*error = "the novelty gate is truncated";
		return NULL;
	}
	memcpy(&h, data, sizeof(h));
	if (h.magic != GATE_MAGIC || h.format != GATE_FORMAT)
	{
		*error = "the novelty gate has an unknown format";
		return NULL;
	}
	if (h.method < 0 || h.method >= NOVELTY_NUM_METHODS || h.num_features != num_features ||
		h.num_prototypes < 0 || h.num_prototypes > GATE_MAX_PROTOTYPES ||
		(novelty_method_uses_prototypes(h.method) && h.num_prototypes == 0) ||
		len != gate_size(h.num_features, h.num_prototypes))
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
	p = data + sizeof(h);
	g->center = palloc(sizeof(float) * Max(num_features, 1));
	g->inv_scale = palloc(sizeof(float) * Max(num_features, 1));
	memcpy(g->center, p, sizeof(float) * num_features);
	p += sizeof(float) * num_features;
	memcpy(g->inv_scale, p, sizeof(float) * num_features);
	p += sizeof(float) * num_features;
	g->prototypes = palloc_extended(sizeof(float) * Max((int64) num_features * g->num_prototypes, 1),
									MCXT_ALLOC_HUGE);
	memcpy(g->prototypes, p, sizeof(float) * num_features * g->num_prototypes);
	if (!all_finite(g->center, num_features) || !all_finite(g->inv_scale, num_features) ||
		!all_finite(g->prototypes, (int64) num_features * g->num_prototypes))
	{
		*error = "the novelty gate holds a value that is not finite";
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

/* the squared distance of z to one padded prototype row: lanes summed in order */
static inline float
lanes_sum(const float *acc)
{
	float		sum = 0.0f;

	for (int l = 0; l < NOVELTY_LANES; l++)
		sum += acc[l];
	return sum;
}

/*
 * The squared distance from z (novelty_transform) to the nearest prototype,
 * and which it is.  Rows are padded to NOVELTY_LANES features and summed
 * in NOVELTY_LANES independent partial sums, two prototypes at a time
 * (each value of z loaded once for both): no branch and no dependency
 * between lanes in the inner loop, which the compiler vectorises.  (An
 * early exit on partial sums was tried: its horizontal sums cost more than
 * it saved, 4.7 against 2.3 us for 256 prototypes of 48 lanes.)
 */
double
novelty_prototype_distance(const NoveltyGate *g, const float *z, int *nearest)
{
	int			dp = g->padded_features;
	int			k = g->num_prototypes;
	float		best = INFINITY;
	int			which = 0;
	int			c = 0;

	for (; c + 1 < k; c += 2)
	{
		const float *p = g->padded + (int64) c * dp;
		const float *q = p + dp;
		float		a[NOVELTY_LANES] = {0};
		float		b[NOVELTY_LANES] = {0};
		float		sa,
					sb;

		for (int j = 0; j < dp; j += NOVELTY_LANES)
			for (int l = 0; l < NOVELTY_LANES; l++)
			{
				float		zz = z[j + l];
				float		d = zz - p[j + l];
				float		e = zz - q[j + l];

				a[l] += d * d;
				b[l] += e * e;
			}
		sa = lanes_sum(a);
		sb = lanes_sum(b);
		if (sa < best)
		{
			best = sa;
			which = c;
		}
		if (sb < best)
		{
			best = sb;
			which = c + 1;
		}
	}
	for (; c < k; c++)
	{
		const float *p = g->padded + (int64) c * dp;
		float		a[NOVELTY_LANES] = {0};
		float		sa;

		for (int j = 0; j < dp; j += NOVELTY_LANES)
			for (int l = 0; l < NOVELTY_LANES; l++)
			{
				float		d = z[j + l] - p[j + l];

				a[l] += d * d;
			}
		sa = lanes_sum(a);
		if (sa < best)
		{
			best = sa;
			which = c;
		}
	}
	if (nearest)
		*nearest = which;
	return best;
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
		default:
			break;
	}
	return NAN;
}
