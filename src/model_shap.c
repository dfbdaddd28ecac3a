/*-------------------------------------------------------------------------
 *
 * model_shap.c
 *	  Exact per-flow explanations: path-dependent TreeSHAP (Lundberg, Erion
 *	  and Lee 2018, Algorithm 2) over the stored cover of every node, as
 *	  XGBoost computes pred_contribs, so that the contributions of a class
 *	  plus its bias sum to the class's margin.
 *
 * The walk follows XGBoost's: the branch the flow takes is "hot" (a missing
 * value takes the node's default branch), each node's share of its
 * parent's cover is its "zero fraction", and arithmetic is in float32 as
 * XGBoost's is.  The bias is the cover-weighted mean leaf value of every
 * tree of the class (computed once per model version) plus the base
 * margin.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "model.h"

typedef struct PathElement
{
	int			feature;
	float		zero_fraction;
	float		one_fraction;
	float		pweight;
} PathElement;

/*
 * The cover-weighted mean leaf value under each node of the tree starting
 * at node start, n nodes: children always follow their parent (the native
 * form guarantees it), so one pass from the last node up, no recursion.
 */
static void
tree_node_means(const NidsForest *f, int start, int n, float *mean)
{
	for (int i = n - 1; i >= 0; i--)
	{
		const NidsNode *node = &f->nodes[start + i];
		int			l = node->left;

		if (l == i)
			mean[start + i] = f->leaf_value[start + i];
		else
			mean[start + i] = (mean[start + l] * f->cover[start + l] +
							   mean[start + l + 1] * f->cover[start + l + 1]) /
				f->cover[start + i];
	}
}

/* every node's mean value, once per forest (in the forest's context) */
static void
forest_node_means(NidsForest *f, MemoryContext cxt)
{
	float	   *mean;

	if (f->node_mean != NULL)
		return;
	mean = MemoryContextAllocHuge(cxt, sizeof(float) * Max(f->num_nodes, 1));
	for (int t = 0; t < f->num_trees; t++)
		tree_node_means(f, f->tree_offset[t], f->tree_offset[t + 1] - f->tree_offset[t], mean);
	f->node_mean = mean;
}

static void
extend_path(PathElement *path, int depth, float zero_fraction, float one_fraction,
			int feature)
{
	path[depth].feature = feature;
	path[depth].zero_fraction = zero_fraction;
	path[depth].one_fraction = one_fraction;
	path[depth].pweight = depth == 0 ? 1.0f : 0.0f;
	for (int i = depth - 1; i >= 0; i--)
	{
		path[i + 1].pweight += one_fraction * path[i].pweight * (i + 1) / (float) (depth + 1);
		path[i].pweight = zero_fraction * path[i].pweight * (depth - i) / (float) (depth + 1);
	}
}

static void
unwind_path(PathElement *path, int depth, int index)
{
	float		one_fraction = path[index].one_fraction;
	float		zero_fraction = path[index].zero_fraction;
	float		next_one_portion = path[depth].pweight;

	for (int i = depth - 1; i >= 0; --i)
	{
		if (one_fraction != 0)
		{
			float		tmp = path[i].pweight;

			path[i].pweight = next_one_portion * (depth + 1) / (float) ((i + 1) * one_fraction);
			next_one_portion = tmp - path[i].pweight * zero_fraction * (depth - i) / (float) (depth + 1);
		}
		else
			path[i].pweight = (path[i].pweight * (depth + 1)) / (float) (zero_fraction * (depth - i));
	}
	for (int i = index; i < depth; ++i)
	{
		path[i].feature = path[i + 1].feature;
		path[i].zero_fraction = path[i + 1].zero_fraction;
		path[i].one_fraction = path[i + 1].one_fraction;
	}
}

static float
unwound_path_sum(const PathElement *path, int depth, int index)
{
	float		one_fraction = path[index].one_fraction;
	float		zero_fraction = path[index].zero_fraction;
	float		next_one_portion = path[depth].pweight;
	float		total = 0;

	for (int i = depth - 1; i >= 0; --i)
	{
		if (one_fraction != 0)
		{
			float		tmp = next_one_portion * (depth + 1) / (float) ((i + 1) * one_fraction);

			total += tmp;
			next_one_portion = path[i].pweight - tmp * zero_fraction * ((depth - i) / (float) (depth + 1));
		}
		else if (zero_fraction != 0)
			total += (path[i].pweight / zero_fraction) / ((depth - i) / (float) (depth + 1));
	}
	return total;
}

typedef struct ShapWalk
{
	const NidsForest *f;
	int			start;			/* the tree's first node */
	const float *x;
	float	   *phi;
} ShapWalk;

static void
tree_shap(ShapWalk *w, int i, int depth, PathElement *parent_path,
		  float parent_zero, float parent_one, int parent_feature)
{
	const NidsForest *f = w->f;
	const NidsNode *node = &f->nodes[w->start + i];
	PathElement *path = parent_path + depth + 1;

	/* depth is bounded by NIDS_MAX_TREE_DEPTH; the stack may still be small */
	check_stack_depth();
	memcpy(path, parent_path, sizeof(PathElement) * (depth + 1));
	extend_path(path, depth, parent_zero, parent_one, parent_feature);
	if (node->left == i)
	{
		for (int k = 1; k <= depth; ++k)
		{
			float		s = unwound_path_sum(path, depth, k);

			w->phi[path[k].feature] += s * (path[k].one_fraction - path[k].zero_fraction) *
				f->leaf_value[w->start + i];
		}
	}
	else
	{
		int			feature = (int) (node->feature_dl & NIDS_FEATURE_MASK);
		float		v = w->x[feature];
		int			hot,
					cold,
					k;
		float		cover = f->cover[w->start + i];
		float		incoming_zero = 1,
					incoming_one = 1;

		if (isnan(v))
			hot = (node->feature_dl & NIDS_DEFAULT_LEFT) ? node->left : node->left + 1;
		else
			hot = v < node->threshold ? node->left : node->left + 1;
		cold = hot == node->left ? node->left + 1 : node->left;

		/* a feature split on before: undo that split, to redo it here */
		for (k = 0; k <= depth; ++k)
			if (path[k].feature == feature)
				break;
		if (k != depth + 1)
		{
			incoming_zero = path[k].zero_fraction;
			incoming_one = path[k].one_fraction;
			unwind_path(path, depth, k);
			depth -= 1;
		}
		tree_shap(w, hot, depth + 1, path,
				  f->cover[w->start + hot] / cover * incoming_zero, incoming_one, feature);
		tree_shap(w, cold, depth + 1, path,
				  f->cover[w->start + cold] / cover * incoming_zero, 0, feature);
	}
}

/*
 * The SHAP values of x (num_features floats, NaN missing) for output group
 * g of the forest into phi[num_features + 1], the bias last; false when the
 * forest has no node covers (a version stored by nids 1.0).  cxt: where
 * the node means are kept (the model's context).
 */
bool
forest_contributions(NidsForest *f, MemoryContext cxt, const float *x, int g,
					 double *phi)
{
	int			nf = f->num_features;
	float	   *out = palloc0(sizeof(float) * (nf + 1));
	float	   *tree_phi = palloc(sizeof(float) * (nf + 1));
	size_t		max_depth = 0;
	PathElement *paths;
	ShapWalk	w;

	if (f->cover == NULL)
		return false;
	forest_node_means(f, cxt);
	for (int t = 0; t < f->num_trees; t++)
		max_depth = Max(max_depth, (size_t) f->tree_depth[t]);
	max_depth += 2;
	/* one path per level, each one longer: (d + 1)(d + 2) / 2 elements */
	paths = palloc_extended(sizeof(PathElement) * ((max_depth * (max_depth + 1)) / 2 + 1),
							MCXT_ALLOC_HUGE);
	w.f = f;
	w.x = x;
	w.phi = tree_phi;
	for (int t = 0; t < f->num_trees; t++)
	{
		if (f->tree_group[t] != g)
			continue;
		memset(tree_phi, 0, sizeof(float) * (nf + 1));
		w.start = f->tree_offset[t];
		tree_phi[nf] += f->node_mean[w.start];
		tree_shap(&w, 0, 0, paths, 1, 1, -1);
		for (int j = 0; j <= nf; j++)
			out[j] += tree_phi[j];
		if ((t & 255) == 255)
			CHECK_FOR_INTERRUPTS();
	}
	out[nf] += f->base_margin[g];
	for (int j = 0; j <= nf; j++)
		phi[j] = out[j];
	pfree(out);
	pfree(tree_phi);
	pfree(paths);
	return true;
}
