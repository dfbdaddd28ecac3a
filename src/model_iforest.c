/*-------------------------------------------------------------------------
 *
 * iforest.c
 *	  Isolation Forest (Liu, Ting and Zhou, 2008): the novelty gate.
 *
 * Trained on benign flows only.  Each tree isolates a sub-sample of psi
 * rows drawn without replacement, splitting on a feature drawn uniformly
 * among those not constant in the node, at a point drawn uniformly between
 * the node's minimum and maximum of it, up to height ceil(log2 psi).
 *
 * Where "uniformly" is measured is options.iforest.scale: on the values
 * themselves (linear, the paper's rule), on g(v) = sign(v) log(1 + |v|)
 * (log: the point is drawn between g(min) and g(max) and mapped back with
 * g's inverse), or, by default, one of the two by a coin per split (mixed).
 * Flow features (bytes per second, durations in microseconds) span many
 * orders of magnitude: linear cuts isolate extreme values quickly but seldom
 * split the bulk of the range, log cuts resolve every magnitude but isolate
 * extremes slowly; README.md has the measurements.  g is strictly
 * increasing, so every tree is an ordinary isolation tree over the raw
 * values and scoring is unchanged.
 *
 * The forest is stored and evaluated as a NidsForest (model_eval.c, model_format.c): same
 * layout, same lock-step evaluator, same validation of untrusted bytes.
 *
 * Missing values (NaN) follow one rule: at each split they go to the side
 * that received more of the node's training rows (left on a tie), in
 * training and in scoring alike.  Infinities arrive as +/-FLT_MAX (see
 * flow_map.c) and are ordinary, extreme values.
 *
 * Randomness comes from the one seeded generator (random.c), so a
 * forest depends on the data and the seed only, on every machine.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "miscadmin.h"
#include "model.h"
#include "random.h"

/* g(v) = sign(v) log(1 + |v|) and its inverse */
static inline double
log_scale(double v)
{
	return copysign(log1p(fabs(v)), v);
}

static inline double
log_scale_inverse(double g)
{
	return copysign(expm1(fabs(g)), g);
}

/* options.iforest.scale, indexed by IFOREST_SCALE_* */
const char *const iforest_scale_names[IFOREST_NUM_SCALES] = {
	"linear", "log", "mixed"
};

/*
 * A split point in [lo, hi] (lo < hi), uniform on the linear or on the log
 * scale, rounded to float and kept above lo so both sides get a row.
 */
static float
split_point(float lo, float hi, int scale, NidsRandom *rng)
{
	bool		on_log_scale = scale == IFOREST_SCALE_LOG ||
		(scale == IFOREST_SCALE_MIXED && (nids_random_next(rng) & 1));
	double		u = nids_random_unit(rng);
	double		t;
	float		threshold;

	if (on_log_scale)
		t = log_scale_inverse(log_scale(lo) + u * (log_scale(hi) - log_scale(lo)));
	else
		t = (double) lo + u * ((double) hi - (double) lo);
	threshold = (float) t;
	if (!(threshold > lo))
		threshold = nextafterf(lo, INFINITY);
	if (threshold > hi)
		threshold = hi;
	return threshold;
}

/* average path length of an unsuccessful search in a BST of n keys */
static double
average_path_length(double n)
{
	if (n <= 1.0)
		return 0.0;
	if (n <= 2.0)
		return 1.0;
	return 2.0 * (log(n - 1.0) + 0.5772156649015329) - 2.0 * (n - 1.0) / n;
}

typedef struct BuildItem
{
	int			pos;
	int			begin;
	int			end;
	int			depth;
} BuildItem;

static void
build_tree(NidsForest *f, int tree, const float *x, int nf, int64 *sample,
		   int n, int max_depth, int scale, NidsRandom *rng, BuildItem *queue,
		   int *candidates, float *fmin, float *fmax)
{
	NidsNode   *nodes = f->nodes + f->tree_offset[tree];
	float	   *leaf = f->leaf_value + f->tree_offset[tree];
	int			head = 0,
				tail = 0,
				placed = 1;

	queue[tail++] = (BuildItem) {0, 0, n, 0};
	while (head < tail)
	{
		BuildItem	it = queue[head++];
		int			size = it.end - it.begin;
		int			ncand = 0;
		int			feature;
		float		threshold;
		int			lo,
					hi,
					nleft = 0,
					nright = 0;
		bool		missing_left;

		if (it.depth < max_depth && size > 1)
		{
			for (int j = 0; j < nf; j++)
			{
				fmin[j] = INFINITY;
				fmax[j] = -INFINITY;
			}
			for (int i = it.begin; i < it.end; i++)
			{
				const float *row = x + sample[i] * nf;

				for (int j = 0; j < nf; j++)
				{
					if (row[j] < fmin[j])
						fmin[j] = row[j];
					if (row[j] > fmax[j])
						fmax[j] = row[j];
				}
			}
			for (int j = 0; j < nf; j++)
				if (fmin[j] < fmax[j])
					candidates[ncand++] = j;
		}
		if (ncand == 0)
		{
			nodes[it.pos].threshold = INFINITY;
			nodes[it.pos].feature_dl = NIDS_DEFAULT_LEFT;
			nodes[it.pos].left = it.pos;
			leaf[it.pos] = (float) (it.depth + average_path_length(size));
			f->tree_depth[tree] = Max(f->tree_depth[tree], it.depth);
			continue;
		}

		feature = candidates[nids_random_below(rng, ncand)];
		threshold = split_point(fmin[feature], fmax[feature], scale, rng);
		for (int i = it.begin; i < it.end; i++)
		{
			float		v = x[sample[i] * nf + feature];

			if (v < threshold)
				nleft++;
			else if (v >= threshold)
				nright++;
		}
		missing_left = nleft >= nright;

		/* partition [begin, end): left rows first */
		lo = it.begin;
		hi = it.end - 1;
		while (lo <= hi)
		{
			float		v = x[sample[lo] * nf + feature];
			bool		goes_left = isnan(v) ? missing_left : v < threshold;

			if (goes_left)
				lo++;
			else
			{
				int64		tmp = sample[lo];

				sample[lo] = sample[hi];
				sample[hi] = tmp;
				hi--;
			}
		}
		nodes[it.pos].threshold = threshold;
		nodes[it.pos].feature_dl = (uint32) feature | (missing_left ? NIDS_DEFAULT_LEFT : 0);
		nodes[it.pos].left = placed;
		leaf[it.pos] = 0.0f;
		queue[tail++] = (BuildItem) {placed, it.begin, lo, it.depth + 1};
		queue[tail++] = (BuildItem) {placed + 1, lo, it.end, it.depth + 1};
		placed += 2;
	}
	/* unused slots (trees smaller than the bound) are unreachable leaves */
	for (int i = placed; i < f->tree_offset[tree + 1] - f->tree_offset[tree]; i++)
	{
		nodes[i].threshold = INFINITY;
		nodes[i].feature_dl = NIDS_DEFAULT_LEFT;
		nodes[i].left = i;
		leaf[i] = 0.0f;
	}
}

/*
 * Train a forest on the rows[] (indices into the row-major matrix x of
 * num_features columns).
 */
NidsForest *
iforest_train(const float *x, int num_features, const int64 *rows,
			  int64 num_rows, const IForestParams *params)
{
	NidsForest *f = palloc0(sizeof(NidsForest));
	NidsRandom	rng;
	int			psi = (int) Min((int64) params->sample_size, num_rows);
	int			max_depth = params->max_depth > 0 ? params->max_depth
		: (int) ceil(log2(Max(psi, 2)));
	int			tree_nodes = 2 * psi - 1;
	int64	   *sample = palloc(sizeof(int64) * psi);
	BuildItem  *queue = palloc(sizeof(BuildItem) * tree_nodes);
	int		   *candidates = palloc(sizeof(int) * num_features);
	float	   *fmin = palloc(sizeof(float) * num_features);
	float	   *fmax = palloc(sizeof(float) * num_features);

	nids_random_init(&rng, params->seed);

	Assert(psi >= 1);
	f->objective = NIDS_OBJ_ISOLATION;
	f->num_features = num_features;
	f->num_groups = 1;
	f->num_trees = params->num_trees;
	f->num_nodes = tree_nodes * params->num_trees;
	f->sample_size = psi;
	f->base_margin = palloc0(sizeof(float));
	f->tree_group = palloc0(sizeof(int32) * f->num_trees);
	f->tree_offset = palloc(sizeof(int32) * (f->num_trees + 1));
	f->tree_depth = palloc0(sizeof(int32) * f->num_trees);
	f->nodes = palloc_extended(sizeof(NidsNode) * f->num_nodes, MCXT_ALLOC_HUGE);
	f->leaf_value = palloc_extended(sizeof(float) * f->num_nodes, MCXT_ALLOC_HUGE);
	for (int t = 0; t <= f->num_trees; t++)
		f->tree_offset[t] = t * tree_nodes;

	for (int t = 0; t < f->num_trees; t++)
	{
		CHECK_FOR_INTERRUPTS();
		/* psi distinct rows, uniformly (partial Fisher-Yates on the fly) */
		if (psi == num_rows)
			memcpy(sample, rows, sizeof(int64) * psi);
		else
		{
			int			k = 0;

			while (k < psi)
			{
				int64		r = rows[nids_random_below(&rng, num_rows)];
				bool		dup = false;

				for (int i = 0; i < k && !dup; i++)
					dup = (sample[i] == r);
				if (!dup)
					sample[k++] = r;
			}
		}
		build_tree(f, t, x, num_features, sample, psi, max_depth,
				   params->scale, &rng, queue, candidates, fmin, fmax);
	}
	pfree(sample);
	pfree(queue);
	pfree(candidates);
	pfree(fmin);
	pfree(fmax);

	/* evaluation order, as forest_deserialize would compute it */
	{
		bytea	   *bytes = forest_serialize(f);
		char	   *error;
		NidsForest *g = forest_deserialize(VARDATA(bytes), VARSIZE(bytes) - VARHDRSZ, &error);

		if (g == NULL)
			elog(ERROR, "isolation forest failed its own validation: %s", error);
		pfree(bytes);
		return g;
	}
}

double
iforest_score(const NidsForest *f, const float *x, float *scratch)
{
	float		sum;
	double		mean;

	forest_predict_margin(f, x, &sum, scratch);
	mean = (double) sum / f->num_trees;
	return pow(2.0, -mean / average_path_length(f->sample_size));
}

NidsForest *
iforest_deserialize(const char *data, size_t len, int num_features, char **error)
{
	NidsForest *f = forest_deserialize(data, len, error);

	if (f == NULL)
		return NULL;
	if (f->objective != NIDS_OBJ_ISOLATION || f->num_features != num_features ||
		f->num_trees < 1 || f->sample_size < 1)
	{
		*error = psprintf("isolation forest has %d features and %d trees; the model has %d features",
						  f->num_features, f->num_trees, num_features);
		return NULL;
	}
	return f;
}
