/*-------------------------------------------------------------------------
 *
 * model_eval.c
 *	  The native tree-ensemble evaluator: XGBoost boosters converted once
 *	  per model version into flat node arrays, and scored without XGBoost.
 *
 * One prediction call into XGBoost costs tens of microseconds of fixed
 * overhead; scoring one row per SQL call cannot pay that.  A booster is
 * converted here into one node array per tree, laid out breadth-first so
 * that the two children of a node are adjacent (right = left + 1) and
 * always come after their parent.  A leaf points at itself with threshold
 * +Inf and "missing goes left", so a traversal step on a leaf stays put:
 * trees of equal depth can then be walked in lock-step, several at a time,
 * without a branch per node.  Trees are evaluated in order of depth and
 * their leaf values summed in XGBoost's own tree order, in float32, onto
 * base_score, as XGBoost's CPU predictor does; the split rule is XGBoost's:
 * left when x < threshold, a missing value (NaN) follows the default
 * direction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "model.h"

#define LOCKSTEP		16

/*
 * What forest_predict_label needs: each tree's smallest and largest leaf,
 * and the trees in chunks of whole boosting rounds, by depth within each.
 */
typedef struct LabelBounds
{
	int			chunk;			/* trees per chunk */
	float	   *leaf_min;		/* [num_trees] */
	float	   *leaf_max;		/* [num_trees] */
	double	   *group_min;		/* [num_groups] sum of leaf_min over a group */
	double	   *group_max;		/* [num_groups] */
	double	   *group_err;		/* [num_groups] bound on float32 rounding */
	int32	   *chunk_order;	/* [num_trees] a chunk's trees class by
								 * class, by depth within a class */
	int32	   *chunk_offset;	/* [num_trees] first compact node of each */
	int32	   *class_start;	/* [chunks * num_groups + 1] where a class's
								 * trees start in chunk_order */
	double	   *chunk_min;		/* [chunks][num_groups] sums of leaf_min */
	double	   *chunk_max;		/* [chunks][num_groups] */
} LabelBounds;

/* the least gap between margins that keeps softmax's order strict */
#define LABEL_GAP	1e-5

const char *
objective_name(NidsObjective objective)
{
	switch (objective)
	{
		case NIDS_OBJ_SOFTPROB:
			return "multi:softprob";
		case NIDS_OBJ_SOFTMAX:
			return "multi:softmax";
		case NIDS_OBJ_LOGISTIC:
			return "binary:logistic";
		case NIDS_OBJ_ISOLATION:
			return "isolation forest";
	}
	return "unknown";
}

int
forest_num_outputs(const NidsForest *forest)
{
	if (forest->objective == NIDS_OBJ_ISOLATION)
		return 1;
	return forest->objective == NIDS_OBJ_LOGISTIC ? 2 : forest->num_groups;
}


/*
 * Scratch floats forest_predict_margin needs: a leaf value per tree, and a
 * copy of the input with the always-missing slot after it.
 */
int
forest_scratch_size(const NidsForest *forest)
{
	/*
	 * forest_predict_label's bounds (two doubles a class), sums and dropped
	 * flags first, where doubles are aligned; then a leaf value per tree
	 * and the doubled input
	 */
	return 6 * forest->num_groups + forest->num_trees + 2 * forest->num_features + 1;
}

/* the compact copy, when every index fits in 16 bits */
static void
forest_compact(NidsForest *f)
{
	if (2 * f->num_features + 1 > PG_UINT16_MAX)
		return;
	for (int t = 0; t < f->num_trees; t++)
		if (f->tree_offset[t + 1] - f->tree_offset[t] > 65536)
			return;
	/* one more node: an idle leaf for the unused places of a lock step */
	f->cnodes = palloc_extended(sizeof(NidsNodeC) * (f->num_nodes + 1), MCXT_ALLOC_HUGE);
	f->cnodes[f->num_nodes].value = 0.0f;
	f->cnodes[f->num_nodes].skip = 0;
	f->cnodes[f->num_nodes].input = (uint16) (2 * f->num_features);
	for (int t = 0; t < f->num_trees; t++)
	{
		int			start = f->tree_offset[t];

		for (int i = 0; i < f->tree_offset[t + 1] - start; i++)
		{
			const NidsNode *n = &f->nodes[start + i];
			NidsNodeC  *c = &f->cnodes[start + i];

			if (n->left == i)
			{
				c->value = f->leaf_value[start + i];
				c->skip = 0;
				c->input = (uint16) (2 * f->num_features);
			}
			else
			{
				/* children come after their parent: 0 < skip < 65536 */
				c->value = n->threshold;
				c->skip = (uint16) (n->left - i);
				c->input = (uint16) ((n->feature_dl & NIDS_FEATURE_MASK) +
									 ((n->feature_dl & NIDS_DEFAULT_LEFT) ? f->num_features : 0));
			}
		}
	}
}

/*
 * The bounds forest_predict_label uses, for multi-class forests walked in
 * the compact form with one tree per class per round.
 */
static void
forest_label_bounds(NidsForest *f)
{
	LabelBounds *b;
	int			ng = f->num_groups;
	int			maxdepth = 0;
	double	   *absum;
	int		   *count;
	int			nchunks;

	if (f->cnodes == NULL || !f->round_robin || ng < 2 ||
		(f->objective != NIDS_OBJ_SOFTPROB && f->objective != NIDS_OBJ_SOFTMAX))
		return;
	b = palloc(sizeof(LabelBounds));
	b->chunk = LOCKSTEP * ng;	/* a lock step of each class's trees */
	b->leaf_min = palloc(sizeof(float) * f->num_trees);
	b->leaf_max = palloc(sizeof(float) * f->num_trees);
	b->group_min = palloc0(sizeof(double) * ng);
	b->group_max = palloc0(sizeof(double) * ng);
	b->group_err = palloc(sizeof(double) * ng);
	absum = palloc(sizeof(double) * ng);
	count = palloc0(sizeof(int) * ng);
	for (int g = 0; g < ng; g++)
		absum[g] = fabs(f->base_margin[g]);
	for (int t = 0; t < f->num_trees; t++)
	{
		int			start = f->tree_offset[t];
		float		lo = INFINITY,
					hi = -INFINITY;
		int			g = f->tree_group[t];

		/* every leaf, reachable or not: the bounds only widen */
		for (int i = 0; i < f->tree_offset[t + 1] - start; i++)
			if (f->nodes[start + i].left == i)
			{
				lo = fminf(lo, f->leaf_value[start + i]);
				hi = fmaxf(hi, f->leaf_value[start + i]);
			}
		b->leaf_min[t] = lo;
		b->leaf_max[t] = hi;
		b->group_min[g] += lo;
		b->group_max[g] += hi;
		absum[g] += Max(fabs(lo), fabs(hi));
		count[g]++;
		maxdepth = Max(maxdepth, f->tree_depth[t]);
	}

	/*
	 * A float32 sum of n terms is within n * 2^-24 * (the sum of their
	 * magnitudes) of the exact sum; twice that, for the doubles' rounding
	 * as well.
	 */
	for (int g = 0; g < ng; g++)
	{
		b->group_err[g] = (count[g] + 1) * ldexp(1.0, -23) * absum[g];

		/* a float32 sum that may overflow has no bounds worth the name */
		if (!(absum[g] < 1e30))
		{
			pfree(absum);
			pfree(count);
			return;
		}
	}
	pfree(absum);
	pfree(count);

	/* each chunk's trees class by class, by depth, and its sums */
	b->chunk_order = palloc(sizeof(int32) * f->num_trees);
	b->chunk_offset = palloc(sizeof(int32) * f->num_trees);
	nchunks = (f->num_trees + b->chunk - 1) / b->chunk;
	b->chunk_min = palloc0(sizeof(double) * ng * nchunks);
	b->chunk_max = palloc0(sizeof(double) * ng * nchunks);
	b->class_start = palloc(sizeof(int32) * (ng * nchunks + 1));
	for (int c = 0, n = 0; c < nchunks; c++)
	{
		int			c0 = c * b->chunk;
		int			c1 = Min(c0 + b->chunk, f->num_trees);

		for (int t = c0; t < c1; t++)
		{
			b->chunk_min[c * ng + f->tree_group[t]] += b->leaf_min[t];
			b->chunk_max[c * ng + f->tree_group[t]] += b->leaf_max[t];
		}
		for (int g = 0; g < ng; g++)
		{
			b->class_start[c * ng + g] = n;
			for (int d = 0; d <= maxdepth; d++)
				for (int t = c0; t < c1; t++)
					if (f->tree_group[t] == g && f->tree_depth[t] == d)
					{
						b->chunk_order[n] = t;
						b->chunk_offset[n++] = f->tree_offset[t];
					}
		}
		b->class_start[ng * nchunks] = n;
	}
	f->bounds = b;
}

/*
 * Derived fields every forest needs before it is walked: evaluation order,
 * the round-robin flag and the compact copy.  Called by the converter, the
 * deserialiser and the isolation-forest trainer.
 */
void
forest_finish(NidsForest *f)
{
	int32	   *order = palloc(sizeof(int32) * Max(f->num_trees, 1));
	int			n = 0;
	int			maxdepth = 0;

	/* counting sort of trees by depth keeps XGBoost order within a depth */
	for (int t = 0; t < f->num_trees; t++)
		maxdepth = Max(maxdepth, f->tree_depth[t]);
	for (int d = 0; d <= maxdepth; d++)
		for (int t = 0; t < f->num_trees; t++)
			if (f->tree_depth[t] == d)
				order[n++] = t;
	f->eval_order = order;
	f->eval_offset = palloc(sizeof(int32) * Max(f->num_trees, 1));
	for (int t = 0; t < f->num_trees; t++)
		f->eval_offset[t] = f->tree_offset[order[t]];
	f->round_robin = true;
	for (int t = 0; t < f->num_trees; t++)
		if (f->tree_group[t] != t % f->num_groups)
			f->round_robin = false;
	forest_compact(f);
	forest_label_bounds(f);
}


/* ---------------- evaluation ---------------- */

static inline int32
node_step(const NidsNode *tree, int32 i, const float *x)
{
	const NidsNode *node = &tree[i];
	float		v = x[node->feature_dl & NIDS_FEATURE_MASK];
	int			dl = (node->feature_dl & NIDS_DEFAULT_LEFT) != 0;
	int			right = (!(v < node->threshold)) ^ (isnan(v) & dl);

	return node->left + right;
}

/* one step down a compact tree; a leaf stays where it is */
static inline const NidsNodeC *
cnode_step(const NidsNodeC *node, const float *in)
{
	return node + node->skip + !(in[node->input] < node->value);
}

/*
 * The compact walk of the n trees order[] (ascending depth; first nodes at
 * offset[]): leaf values come from the nodes themselves.
 */
static void
predict_compact(const NidsForest *f, const int32 *order, const int32 *offset, int n,
				const float *x, float *leaf)
{
	const NidsNodeC *nodes = f->cnodes;
	const NidsNodeC *idle = nodes + f->num_nodes;	/* a leaf, for spare places */

	for (int t = 0; t < n; t += LOCKSTEP)
	{
		const NidsNodeC *p[LOCKSTEP];
		int			m = Min(LOCKSTEP, n - t);
		int			depth = f->tree_depth[order[t + m - 1]];

		for (int k = 0; k < LOCKSTEP; k++)
			p[k] = k < m ? nodes + offset[t + k] : idle;
		for (int d = 0; d < depth; d++)
		{
#pragma GCC unroll 16
			for (int k = 0; k < LOCKSTEP; k++)
				p[k] = cnode_step(p[k], x);
		}
		for (int k = 0; k < m; k++)
			leaf[order[t + k]] = p[k]->value;
	}
}

/* the wide walk, for trees or feature counts beyond 16 bits */
static void
predict_wide(const NidsForest *f, const float *x, float *leaf)
{
	const int32 *order = f->eval_order;
	int			t = 0;

	for (; t + LOCKSTEP <= f->num_trees; t += LOCKSTEP)
	{
		const NidsNode *tree[LOCKSTEP];
		int32		pos[LOCKSTEP];
		int			depth = f->tree_depth[order[t + LOCKSTEP - 1]];

		for (int k = 0; k < LOCKSTEP; k++)
		{
			tree[k] = f->nodes + f->tree_offset[order[t + k]];
			pos[k] = 0;
		}
		for (int d = 0; d < depth; d++)
			for (int k = 0; k < LOCKSTEP; k++)
				pos[k] = node_step(tree[k], pos[k], x);
		for (int k = 0; k < LOCKSTEP; k++)
			leaf[order[t + k]] = f->leaf_value[f->tree_offset[order[t + k]] + pos[k]];
	}
	for (; t < f->num_trees; t++)
	{
		const NidsNode *tree = f->nodes + f->tree_offset[order[t]];
		int32		pos = 0;
		int			depth = f->tree_depth[order[t]];

		for (int d = 0; d < depth; d++)
			pos = node_step(tree, pos, x);
		leaf[order[t]] = f->leaf_value[f->tree_offset[order[t]] + pos];
	}
}

/*
 * Sum the trees for one feature vector x[num_features] into
 * margin[num_groups].  scratch must hold forest_scratch_size() floats.
 * Leaves are added in XGBoost's tree order, whatever order they were
 * reached in, so the float32 sums are XGBoost's.
 */
/* the doubled input of the compact walk (see NidsNodeC) */
static void
compact_input(const NidsForest *f, const float *x, float *in)
{
	int			nf = f->num_features;

	for (int j = 0; j < nf; j++)
	{
		bool		missing = isnan(x[j]);

		in[j] = missing ? INFINITY : x[j];
		in[nf + j] = missing ? -INFINITY : x[j];
	}
	in[2 * nf] = -INFINITY;
}

void
forest_predict_margin(const NidsForest *f, const float *x, float *margin,
					  float *scratch)
{
	float	   *leaf = scratch;

	if (f->cnodes && nids_compact_evaluator)
	{
		float	   *in = scratch + f->num_trees;

		compact_input(f, x, in);
		predict_compact(f, f->eval_order, f->eval_offset, f->num_trees, in, leaf);
	}
	else
		predict_wide(f, x, leaf);

	for (int g = 0; g < f->num_groups; g++)
		margin[g] = f->base_margin[g];
	if (f->round_robin)
	{
		/* one boosting round at a time: independent adds, in tree order */
		int			ng = f->num_groups;
		int			i = 0;

		for (; i + ng <= f->num_trees; i += ng)
			for (int g = 0; g < ng; g++)
				margin[g] += leaf[i + g];
		for (int g = 0; i < f->num_trees; i++, g++)
			margin[g] += leaf[i];
	}
	else
		for (int i = 0; i < f->num_trees; i++)
			margin[f->tree_group[i]] += leaf[i];
}

/*
 * Turn margins into class probabilities as XGBoost's objectives do
 * (softmax in float32 with a double sum; the logistic sigmoid).
 */
void
forest_transform(const NidsForest *f, const float *margin, double *proba)
{
	if (f->objective == NIDS_OBJ_LOGISTIC)
	{
		float		p = 1.0f / (1.0f + expf(-margin[0]));

		proba[0] = 1.0 - (double) p;
		proba[1] = p;
	}
	else
	{
		float		wmax = margin[0];
		double		wsum = 0.0;
		float		e;

		for (int g = 1; g < f->num_groups; g++)
			wmax = fmaxf(margin[g], wmax);
		for (int g = 0; g < f->num_groups; g++)
		{
			e = expf(margin[g] - wmax);
			proba[g] = e;
			wsum += e;
		}
		for (int g = 0; g < f->num_groups; g++)
			proba[g] = (float) proba[g] / (float) wsum;
	}
}

/*
 * The class the forest predicts for x (probabilities in proba): the
 * arg max of the probabilities, of the margins for multi:softmax (as
 * XGBoost predicts it), and proba[1] > 0.5 for binary:logistic.
 */
int
forest_predict_class(const NidsForest *f, int num_classes, const float *x,
					 float *margin, double *proba, float *scratch)
{
	forest_predict_margin(f, x, margin, scratch);
	forest_transform(f, margin, proba);
	return forest_pick_class(f, num_classes, margin, proba);
}

/* the class sums and bounds of forest_predict_label, in its scratch */
typedef struct LabelState
{
	double	   *lo;				/* the smallest leaves still to add, summed */
	double	   *hi;				/* the largest */
	float	   *sum;			/* the class sums so far (float32, XGBoost's order) */
	int32	   *dead;			/* classes that can no longer win */
	float	   *leaf;			/* the leaves of one chunk */
	float	   *in;				/* the compact input */
} LabelState;

/*
 * Chunk c (trees c0 .. c1-1): each live class's trees in one lock step,
 * the sums on in XGBoost's tree order, a round at a time (chunks are whole
 * rounds of one tree per class), and the bounds of what is still to add
 */
static inline void
label_chunk(const NidsForest *f, const LabelBounds *b, LabelState *ls, int c0, int c1)
{
	int			ng = f->num_groups;
	int			c = c0 / b->chunk;
	const double *cmin = b->chunk_min + c * ng;
	const double *cmax = b->chunk_max + c * ng;
	const int32 *start = b->class_start + c * ng;
	int			t = c0;

	for (int g = 0; g < ng; g++)
	{
		int			k = start[g];
		int			m = start[g + 1] - k;

		if (!ls->dead[g])
			predict_compact(f, b->chunk_order + k, b->chunk_offset + k, m, ls->in, ls->leaf);
		else
			for (int j = k; j < k + m; j++)
				ls->leaf[b->chunk_order[j]] = 0.0f; /* its sum is never read */
	}
	for (; t + ng <= c1; t += ng)
		for (int g = 0; g < ng; g++)
			ls->sum[g] += ls->leaf[t + g];
	/* a last round with fewer trees than classes */
	for (int g = 0; t < c1; t++, g++)
		ls->sum[g] += ls->leaf[t];
	for (int g = 0; g < ng; g++)
		if (!ls->dead[g])
		{
			ls->lo[g] -= cmin[g];
			ls->hi[g] -= cmax[g];
		}
}

/*
 * A class's final margin lies within [sum + lo - err, sum + hi + err]: lo
 * and hi sum the smallest and largest leaf of every tree still to add, err
 * bounds the rounding of the adds.  Classes that cannot reach the best
 * one's lowest margin are dropped; returns the best class when no other is
 * left, else -1.
 */
static inline int
label_prune(const LabelBounds *b, LabelState *ls, int ng)
{
	int			best = -1;
	double		best_lo = -INFINITY;
	int			alive = 0;

	for (int g = 0; g < ng; g++)
		if (!ls->dead[g] && ls->sum[g] + ls->lo[g] - b->group_err[g] > best_lo)
		{
			best_lo = ls->sum[g] + ls->lo[g] - b->group_err[g];
			best = g;
		}
	for (int g = 0; g < ng; g++)
	{
		if (ls->dead[g] || g == best)
			continue;
		if (ls->sum[g] + ls->hi[g] + b->group_err[g] < best_lo - LABEL_GAP)
			ls->dead[g] = 1;
		else
			alive++;
	}
	return alive == 0 ? best : -1;
}

/*
 * Every tree of the live classes is added: their sums are the margins the
 * whole sum gives, and every dropped class is below them.  softmax picks
 * the largest margin; softprob the largest probability, whose order is that
 * of expf(margin - max) unless two are within 2^-20 of each other, where
 * the division by the sum of all of them (dropped classes included) could
 * round them equal: then -1, and every tree is added.
 */
static inline int
label_decide(const NidsForest *f, const LabelState *ls, int ng)
{
	int			best = -1;
	float		wmax;
	float		e_best = -1.0f,
				e_next = -1.0f;

	for (int g = 0; g < ng; g++)
		if (!ls->dead[g] && (best < 0 || ls->sum[g] > ls->sum[best]))
			best = g;
	if (f->objective == NIDS_OBJ_SOFTMAX)
		return best;
	wmax = ls->sum[best];
	best = -1;
	for (int g = 0; g < ng; g++)
	{
		float		e;

		if (ls->dead[g])
			continue;
		e = expf(ls->sum[g] - wmax);
		if (e > e_best)
		{
			e_next = e_best;
			e_best = e;
			best = g;
		}
		else if (e > e_next)
			e_next = e;
	}
	return e_next < e_best * (1.0f - ldexpf(1.0f, -20)) ? best : -1;
}

/*
 * The class alone, for callers that need no probability (nids_classify):
 * the trees are added a chunk of whole rounds at a time, and a class whose
 * largest possible final margin is below the smallest possible final
 * margin of the leader is dropped (its trees are no longer walked).  Once
 * one class is left, and its smallest possible margin exceeds every other
 * class's largest by LABEL_GAP, it is the class the whole sum picks: the
 * possible final margins allow for every tree not added (its smallest and
 * largest leaf) and for the rounding of XGBoost's float32 sum, and the gap
 * keeps softmax's probabilities in the same strict order.  Otherwise, and
 * for forests without bounds, every tree is added (forest_predict_class).
 * margin and proba are set only then.
 */
int
forest_predict_label(const NidsForest *f, int num_classes, const float *x,
					 float *margin, double *proba, float *scratch)
{
	const LabelBounds *b = f->bounds;
	int			ng = f->num_groups;
	LabelState	ls;
	int			label;

	if (b == NULL || !nids_label_bounds || !nids_compact_evaluator || num_classes != ng)
		return forest_predict_class(f, num_classes, x, margin, proba, scratch);
	ls.lo = (double *) scratch;
	ls.hi = ls.lo + ng;
	ls.sum = (float *) (ls.hi + ng);
	ls.dead = (int32 *) (ls.sum + ng);
	ls.leaf = (float *) (ls.dead + ng);
	ls.in = ls.leaf + f->num_trees;
	compact_input(f, x, ls.in);
	for (int g = 0; g < ng; g++)
	{
		ls.sum[g] = f->base_margin[g];
		ls.lo[g] = b->group_min[g];
		ls.hi[g] = b->group_max[g];
		ls.dead[g] = 0;
	}
	for (int c0 = 0; c0 < f->num_trees; c0 += b->chunk)
	{
		label_chunk(f, b, &ls, c0, Min(c0 + b->chunk, f->num_trees));
		if ((label = label_prune(b, &ls, ng)) >= 0)
			return label;
	}
	if ((label = label_decide(f, &ls, ng)) >= 0)
		return label;
	return forest_predict_class(f, num_classes, x, margin, proba, scratch);
}

/*
 * The one rule for the predicted class, from a flow's margins (NULL when
 * only probabilities are known: XGBoost's predictor) and probabilities:
 * logistic above 0.5, softmax's largest margin, else the most probable
 * class, ties to the first.
 */
int
forest_pick_class(const NidsForest *f, int num_classes, const float *margin,
				  const double *proba)
{
	int			best = 0;

	if (f->objective == NIDS_OBJ_LOGISTIC)
		return proba[1] > 0.5 ? 1 : 0;
	if (f->objective == NIDS_OBJ_SOFTMAX && margin != NULL)
	{
		for (int g = 1; g < f->num_groups; g++)
			if (margin[g] > margin[best])
				best = g;
		return best;
	}
	for (int c = 1; c < num_classes; c++)
		if (proba[c] > proba[best])
			best = c;
	return best;
}
