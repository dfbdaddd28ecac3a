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
 * What a leaf adds depends on the flow only through which way it went at
 * each split on the leaf's path: the hot branch or the cold one.  So each
 * leaf keeps a table, made the first time its tree is explained, of what
 * it adds for every such pattern, computed by the same steps the walk
 * would make (the same float32 operations in the same order: the same
 * bits).  Explaining a flow is then one branch-free pass over a tree's
 * splits, which gives each leaf its pattern and its place in the walk's
 * order (hot branch first), and the sum of the leaves' rows in that
 * order: the walk's additions without its O(depth^2) work per leaf.
 * Rows are read ahead for every tree of the class before any is summed.
 * Tables cost 2^depth rows per leaf; trees deeper than
 * SHAP_TABLE_MAX_DEPTH, or beyond SHAP_TABLE_BUDGET bytes per forest and
 * backend, are walked as before (nids.explain_tables = off walks all).
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

#define SHAP_TABLE_MAX_DEPTH	10
#define SHAP_TABLE_BUDGET		((Size) 64 * 1024 * 1024)

/*
 * A tree's tables: for each leaf, at meta[leaf_at[node]]: the number of
 * path elements d, their d features, and the offset in value[] of its
 * table, 2^depth rows of d contributions, one row per pattern (bit j set:
 * the flow took the hot branch at the path's j-th split).
 */
typedef struct ShapTree
{
	int			num_features;	/* the features its leaves' rows add to */
	int32	   *features;
	int32	   *leaf_at;		/* [nodes] -1 for a split */
	int32	   *meta;
	float	   *value;

	/*
	 * Where each leaf comes in a flow's walk, without walking: the walk
	 * takes the hot child of a split first, so the hot child's leaves
	 * start where its parent's do and the cold child's after them.  One
	 * pass over the splits, parents first, gives every node its first
	 * place and its pattern.
	 */
	int			num_leaves;
	int			num_splits;
	struct ShapSplit *split;	/* [num_splits] in node order */
	int32	   *leaf_node;		/* [num_leaves] */
	int32	   *num_under;		/* [nodes] leaves under each node */

	/*
	 * When the tree has at most SHAP_LANES features: each row again, as
	 * SHAP_LANES floats, lane k for features[k] (+0 off the leaf's path),
	 * so a leaf is added with vector adds.  Adding +0 changes nothing: a
	 * sum that starts at +0 is never -0.  dense_at[node]: a leaf's first
	 * row.  NULL otherwise.
	 */
	float	   *dense;
	int32	   *dense_at;
} ShapTree;

#define SHAP_LANES	16

/* a split, with what the pass that places the leaves needs of it */
typedef struct ShapSplit
{
	int32		node;
	int32		feature;
	float		threshold;
	int32		left;			/* its left child; the right one follows */
	int32		under[2];		/* leaves under the left and right child */
	uint32		bit;			/* 1 << its depth */
	bool		default_left;
} ShapSplit;

/* a leaf a flow reaches: its meta, and its table's row for the flow */
typedef struct ShapRow
{
	const int32 *meta;
	const float *value;
} ShapRow;

typedef struct ShapTables
{
	Size		used;			/* bytes of tables made so far */
	bool	   *tried;			/* [num_trees] */
	ShapTree  **tree;			/* [num_trees] NULL: walked */
	ShapRow    *rows;			/* [num_nodes] scratch: a tree's leaves in
								 * walk order */
	uint64	   *place;			/* [num_nodes] scratch: a node's first place
								 * (high half) and its pattern so far */
} ShapTables;

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

/*
 * A feature split on before: undo that split, to redo it here.  Its
 * fractions go to *zero and *one (left as they are when the feature is
 * new); returns the path's depth after.
 */
static int
unwind_repeat(PathElement *path, int depth, int feature, float *zero, float *one)
{
	for (int k = 0; k <= depth; ++k)
		if (path[k].feature == feature)
		{
			*zero = path[k].zero_fraction;
			*one = path[k].one_fraction;
			unwind_path(path, depth, k);
			return depth - 1;
		}
	return depth;
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
					cold;
		float		cover = f->cover[w->start + i];
		float		incoming_zero = 1,
					incoming_one = 1;

		if (isnan(v))
			hot = (node->feature_dl & NIDS_DEFAULT_LEFT) ? node->left : node->left + 1;
		else
			hot = v < node->threshold ? node->left : node->left + 1;
		cold = hot == node->left ? node->left + 1 : node->left;

		depth = unwind_repeat(path, depth, feature, &incoming_zero, &incoming_one);
		tree_shap(w, hot, depth + 1, path,
				  f->cover[w->start + hot] / cover * incoming_zero, incoming_one, feature);
		tree_shap(w, cold, depth + 1, path,
				  f->cover[w->start + cold] / cover * incoming_zero, 0, feature);
	}
}


/*
 * What leaf (path[plen], reached through the nodes path[0..plen)) adds
 * when the flow takes the hot branch at the path's j-th split exactly when
 * bit j of pattern is set: the steps of tree_shap along that path.  The d
 * contributions go to out[], their features to feature[]; returns d.
 */
static int
shap_leaf_row(const NidsForest *f, int start, const int32 *path_nodes, int plen,
			  uint32 pattern, PathElement *path, float *out, int32 *feature)
{
	int			depth = 0;
	float		parent_zero = 1,
				parent_one = 1;
	int			parent_feature = -1;
	int			leaf = path_nodes[plen];

	for (int j = 0;; j++)
	{
		int			i = path_nodes[j];
		const NidsNode *node = &f->nodes[start + i];
		int			split;
		int			child;
		float		incoming_zero = 1,
					incoming_one = 1;

		extend_path(path, depth, parent_zero, parent_one, parent_feature);
		if (j == plen)
			break;
		split = (int) (node->feature_dl & NIDS_FEATURE_MASK);
		child = path_nodes[j + 1];
		depth = unwind_repeat(path, depth, split, &incoming_zero, &incoming_one);
		parent_zero = f->cover[start + child] / f->cover[start + i] * incoming_zero;
		parent_one = ((pattern >> j) & 1) ? incoming_one : 0;
		parent_feature = split;
		depth += 1;
	}
	for (int k = 1; k <= depth; ++k)
	{
		float		s = unwound_path_sum(path, depth, k);

		out[k - 1] = s * (path[k].one_fraction - path[k].zero_fraction) *
			f->leaf_value[start + leaf];
		feature[k - 1] = path[k].feature;
	}
	return depth;
}

/*
 * The parents of tree t's nodes (-2: a node no walk reaches), its leaves,
 * and the bytes of its tables: 2^(leaf depth) rows of at most depth
 * contributions a leaf
 */
static int32 *
shap_tree_parents(const NidsForest *f, int start, int n, int *nleaves, Size *need)
{
	int32	   *parent = palloc(sizeof(int32) * n);

	*nleaves = 0;
	*need = 0;
	for (int i = 0; i < n; i++)
		parent[i] = -2;
	parent[0] = -1;
	for (int i = 0; i < n; i++)
	{
		const NidsNode *node = &f->nodes[start + i];

		/* children come after their parent */
		if (parent[i] != -2 && node->left != i)
		{
			parent[node->left] = i;
			parent[node->left + 1] = i;
		}
	}
	for (int i = 0; i < n; i++)
		if (parent[i] != -2 && f->nodes[start + i].left == i)
		{
			int			d = 0;

			for (int p = parent[i]; p >= 0; p = parent[p])
				d++;
			(*nleaves)++;
			*need += sizeof(float) * ((Size) d << d);
		}
	*need += sizeof(int32) * (n + (Size) (*nleaves) * (SHAP_TABLE_MAX_DEPTH + 2));
	return parent;
}

/*
 * Each leaf's rows: its contributions for every hot/cold pattern of its
 * path, by TreeSHAP's own steps (shap_leaf_row), into st->value, and its
 * meta (depth, features, offset of its rows) into st->meta
 */
static void
shap_fill_rows(const NidsForest *f, ShapTree *st, int start, int n, int depth, const int32 *parent)
{
	int32	   *path_nodes = palloc(sizeof(int32) * (depth + 1));
	PathElement *path = palloc(sizeof(PathElement) * (depth + 2));
	float	   *row = palloc(sizeof(float) * (depth + 1));
	int32	   *feature = palloc(sizeof(int32) * (depth + 1));
	int			nmeta = 0;
	Size		nvalue = 0;

	for (int i = 0; i < n; i++)
	{
		int			plen = 0;
		int			d = 0;

		st->leaf_at[i] = -1;
		if (parent[i] == -2 || f->nodes[start + i].left != i)
			continue;
		/* the path from the root */
		for (int p = i; p >= 0; p = parent[p])
			plen++;
		plen--;
		for (int p = i, j = plen; p >= 0; p = parent[p], j--)
			path_nodes[j] = p;
		st->leaf_at[i] = nmeta;
		CHECK_FOR_INTERRUPTS();
		for (uint32 pattern = 0; pattern < ((uint32) 1 << plen); pattern++)
		{
			d = shap_leaf_row(f, start, path_nodes, plen, pattern, path, row, feature);
			memcpy(st->value + nvalue + (Size) pattern * d, row, sizeof(float) * d);
		}
		st->meta[nmeta] = d;
		memcpy(st->meta + nmeta + 1, feature, sizeof(int32) * d);
		st->meta[nmeta + 1 + d] = (int32) nvalue;
		nmeta += d + 2;
		nvalue += (Size) d << plen;
	}
	pfree(path_nodes);
	pfree(path);
	pfree(row);
	pfree(feature);
}

/* leaves, splits (parents first), their depths, leaves under each */
static void
shap_tree_layout(const NidsForest *f, ShapTree *st, int start, int n, const int32 *parent,
				 MemoryContext cxt)
{
	int32	   *depth_of = palloc0(sizeof(int32) * n);

	st->num_under = MemoryContextAllocZero(cxt, sizeof(int32) * n);
	for (int i = n - 1; i >= 0; i--)
	{
		const NidsNode *node = &f->nodes[start + i];

		if (parent[i] == -2)
			continue;
		st->num_under[i] = node->left == i ? 1 :
			st->num_under[node->left] + st->num_under[node->left + 1];
	}
	st->split = MemoryContextAlloc(cxt, sizeof(ShapSplit) * n);
	st->leaf_node = MemoryContextAlloc(cxt, sizeof(int32) * n);
	st->num_leaves = 0;
	st->num_splits = 0;
	for (int i = 0; i < n; i++)
	{
		if (parent[i] == -2)
			continue;
		if (i > 0)
			depth_of[i] = depth_of[parent[i]] + 1;
		if (f->nodes[start + i].left == i)
			st->leaf_node[st->num_leaves++] = i;
		else
		{
			const NidsNode *node = &f->nodes[start + i];
			ShapSplit  *sp = &st->split[st->num_splits++];

			sp->node = i;
			sp->feature = node->feature_dl & NIDS_FEATURE_MASK;
			sp->threshold = node->threshold;
			sp->left = node->left;
			sp->under[0] = st->num_under[node->left];
			sp->under[1] = st->num_under[node->left + 1];
			sp->bit = (uint32) 1 << depth_of[i];
			sp->default_left = (node->feature_dl & NIDS_DEFAULT_LEFT) != 0;
		}
	}
	pfree(depth_of);
}

/* the distinct features of the rows, in order of first use */
static void
shap_tree_features(ShapTree *st, int n, MemoryContext cxt)
{
	st->features = MemoryContextAlloc(cxt, sizeof(int32) * Max(n, 1));
	st->num_features = 0;
	for (int i = 0; i < n; i++)
	{
		const int32 *m;

		if (st->leaf_at[i] < 0)
			continue;
		m = st->meta + st->leaf_at[i];
		for (int k = 0; k < m[0]; k++)
		{
			int			j;

			for (j = 0; j < st->num_features; j++)
				if (st->features[j] == m[1 + k])
					break;
			if (j == st->num_features)
				st->features[st->num_features++] = m[1 + k];
		}
	}
}

/*
 * The rows again, dense, when the lanes hold the tree's features and the
 * budget allows; the sparse rows are then given back.  Returns the bytes
 * the tree's tables now take (need: before).
 */
static Size
shap_tree_dense(ShapTables *tabs, ShapTree *st, int n, const int32 *parent, Size need,
				Size sparse_bytes, MemoryContext cxt)
{
	Size		nrows = 0;
	Size		bytes;
	char	   *raw;

	st->dense = NULL;
	if (st->num_features > SHAP_LANES)
		return need;
	for (int l = 0; l < st->num_leaves; l++)
	{
		int			p = 0;

		for (int i = parent[st->leaf_node[l]]; i >= 0; i = parent[i])
			p++;
		nrows += (Size) 1 << p;
	}
	bytes = nrows * SHAP_LANES * sizeof(float) + 64;
	if (tabs->used + need + bytes > SHAP_TABLE_BUDGET)
		return need;
	raw = MemoryContextAllocHuge(cxt, bytes);
	st->dense = (float *) TYPEALIGN(64, raw);
	st->dense_at = MemoryContextAlloc(cxt, sizeof(int32) * n);
	nrows = 0;
	for (int l = 0; l < st->num_leaves; l++)
	{
		int			i = st->leaf_node[l];
		const int32 *m = st->meta + st->leaf_at[i];
		int			p = 0;
		int			lane[SHAP_TABLE_MAX_DEPTH + 1];

		for (int q = parent[i]; q >= 0; q = parent[q])
			p++;
		for (int k = 0; k < m[0]; k++)
			for (lane[k] = 0; st->features[lane[k]] != m[1 + k]; lane[k]++)
				;
		st->dense_at[i] = (int32) nrows;
		for (Size r = 0; r < ((Size) 1 << p); r++)
		{
			float	   *dst = st->dense + (nrows + r) * SHAP_LANES;
			const float *src = st->value + m[m[0] + 1] + r * m[0];

			for (int k = 0; k < SHAP_LANES; k++)
				dst[k] = 0.0f;
			for (int k = 0; k < m[0]; k++)
				dst[lane[k]] = src[k];
		}
		nrows += (Size) 1 << p;
	}
	/* the sparse rows are no longer read: give them back */
	pfree(st->value);
	st->value = NULL;
	return need + bytes - Max(sparse_bytes, sizeof(float));
}

/* tree t's tables, or NULL when it is to be walked */
static ShapTree *
shap_tree_tables(NidsForest *f, MemoryContext cxt, int t)
{
	ShapTables *tabs;
	ShapTree   *st;
	int			start = f->tree_offset[t];
	int			n = f->tree_offset[t + 1] - start;
	int			depth = f->tree_depth[t];
	Size		need;
	int			nleaves;
	int32	   *parent;

	if (f->shap == NULL)
	{
		tabs = MemoryContextAllocZero(cxt, sizeof(ShapTables));
		tabs->tried = MemoryContextAllocZero(cxt, sizeof(bool) * Max(f->num_trees, 1));
		tabs->tree = MemoryContextAllocZero(cxt, sizeof(ShapTree *) * Max(f->num_trees, 1));
		tabs->rows = MemoryContextAllocHuge(cxt, sizeof(ShapRow) * Max(f->num_nodes, 1));
		tabs->place = MemoryContextAllocHuge(cxt, sizeof(uint64) * Max(f->num_nodes, 1));
		f->shap = tabs;
	}
	tabs = f->shap;
	if (!nids_explain_tables)
		return NULL;
	if (tabs->tried[t])
		return tabs->tree[t];
	tabs->tried[t] = true;
	if (depth > SHAP_TABLE_MAX_DEPTH)
		return NULL;

	parent = shap_tree_parents(f, start, n, &nleaves, &need);
	if (tabs->used + need > SHAP_TABLE_BUDGET)
	{
		pfree(parent);
		return NULL;
	}
	st = MemoryContextAlloc(cxt, sizeof(ShapTree));
	st->leaf_at = MemoryContextAlloc(cxt, sizeof(int32) * n);
	st->meta = MemoryContextAlloc(cxt, sizeof(int32) * nleaves * (SHAP_TABLE_MAX_DEPTH + 2));
	st->value = MemoryContextAllocHuge(cxt, Max(need, sizeof(float)));
	shap_fill_rows(f, st, start, n, depth, parent);
	shap_tree_layout(f, st, start, n, parent, cxt);
	shap_tree_features(st, n, cxt);
	need = shap_tree_dense(tabs, st, n, parent, need, need, cxt);
	pfree(parent);
	tabs->used += need;
	tabs->tree[t] = st;
	return st;
}

/*
 * The leaves of a tree in the order tree_shap adds them for x, as
 * pointers to their meta and to their table row for x's pattern, into
 * rows[st->num_leaves].  No walk: one pass over the splits, parents
 * first, hands each child its first place and pattern.
 */
static void
tree_shap_rows(const ShapTree *st, const float *x, ShapRow *rows, uint64 *pp)
{
	/* pp: each node's first place (high half) and pattern (low half) */
	pp[0] = 0;
	for (int s = 0; s < st->num_splits; s++)
	{
		const ShapSplit *sp = &st->split[s];
		float		xv = x[sp->feature];

		/* XGBoost's rule, without a branch: x < threshold, NaN by default */
		int			right = !((xv < sp->threshold) | ((xv != xv) & sp->default_left));
		uint64		here = pp[sp->node];

		pp[sp->left + right] = here | sp->bit;
		/* the cold child's leaves come after the hot one's (an index: no branch) */
		pp[sp->left + 1 - right] = here + ((uint64) sp->under[right] << 32);
	}
	if (st->dense)
		for (int l = 0; l < st->num_leaves; l++)
		{
			int			i = st->leaf_node[l];
			ShapRow    *row = &rows[pp[i] >> 32];

			row->value = st->dense + ((Size) st->dense_at[i] + (uint32) pp[i]) * SHAP_LANES;
			__builtin_prefetch(row->value);
		}
	else
		for (int l = 0; l < st->num_leaves; l++)
		{
			int			i = st->leaf_node[l];
			const int32 *m = st->meta + st->leaf_at[i];
			ShapRow    *row = &rows[pp[i] >> 32];

			row->meta = m;
			row->value = st->value + m[m[0] + 1] + (Size) (uint32) pp[i] * m[0];
			__builtin_prefetch(row->value);
		}
}

#if defined(__GNUC__)
/* four native 4-float vectors (SSE2 at least): the sums stay in registers */
typedef float ShapQuad __attribute__((vector_size(4 * sizeof(float))));

/* the dense rows of a tree summed lane by lane, in order, into sum[] */
static void
shap_sum_dense(const ShapRow *rows, int n, float *sum)
{
	ShapQuad	a0 = {0},
				a1 = {0},
				a2 = {0},
				a3 = {0};

	StaticAssertStmt(SHAP_LANES == 16, "four quads of lanes");
	for (int r = 0; r < n; r++)
	{
		const ShapQuad *v = (const ShapQuad *) rows[r].value;	/* 64-byte aligned */

		a0 += v[0];
		a1 += v[1];
		a2 += v[2];
		a3 += v[3];
	}
	memcpy(sum, &a0, sizeof(a0));
	memcpy(sum + 4, &a1, sizeof(a1));
	memcpy(sum + 8, &a2, sizeof(a2));
	memcpy(sum + 12, &a3, sizeof(a3));
}
#else
static void
shap_sum_dense(const ShapRow *rows, int n, float *sum)
{
	for (int k = 0; k < SHAP_LANES; k++)
		sum[k] = 0.0f;
	for (int r = 0; r < n; r++)
		for (int k = 0; k < SHAP_LANES; k++)
			sum[k] += rows[r].value[k];
}
#endif

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
	PathElement *paths = NULL;
	ShapWalk	w;

	/* the class's trees: every num_groups-th from g when round robin */
	int			first = f->round_robin ? g : 0;
	int			step = f->round_robin ? f->num_groups : 1;
	int			walked = 0;

	if (f->cover == NULL)
		return false;
	forest_node_means(f, cxt);
	w.f = f;
	w.x = x;
	w.phi = tree_phi;

	/*
	 * First the rows every tree with tables reaches, each read ahead
	 * (prefetched): a flow reaches a row in a table of its own, seldom in
	 * cache, and the reads overlap when they are all asked for at once.
	 */
	{
		ShapRow    *rows = NULL;
		int			nrows = 0;

		for (int t = first; t < f->num_trees; t += step)
		{
			ShapTree   *st;

			if (f->tree_group[t] != g)
				continue;
			st = shap_tree_tables(f, cxt, t);
			rows = f->shap->rows;
			if (st)
			{
				tree_shap_rows(st, x, rows + nrows, f->shap->place);
				nrows += st->num_leaves;
			}
		}
	}

	/* then each tree's sum, in tree order */
	for (int t = first, r = 0; t < f->num_trees; t += step)
	{
		ShapTree   *st;
		const ShapRow *rows;

		if (f->tree_group[t] != g)
			continue;
		st = nids_explain_tables ? f->shap->tree[t] : NULL;
		rows = f->shap->rows + r;
		w.start = f->tree_offset[t];
		if (st && st->dense)
		{
			float		sum[SHAP_LANES];

			shap_sum_dense(rows, st->num_leaves, sum);
			for (int k = 0; k < st->num_features; k++)
				out[st->features[k]] += sum[k];
			out[nf] += 0.0f + f->node_mean[w.start];
		}
		else if (st)
		{
			/*
			 * Only the tree's features change: out[j] += 0 would leave the
			 * others as they are (a sum that starts at +0 is never -0).
			 */
			for (int k = 0; k < st->num_features; k++)
				tree_phi[st->features[k]] = 0;
			for (int l = 0; l < st->num_leaves; l++)
			{
				const int32 *m = rows[l].meta;
				const float *v = rows[l].value;

				for (int k = 0; k < m[0]; k++)
					tree_phi[m[1 + k]] += v[k];
			}
			for (int k = 0; k < st->num_features; k++)
				out[st->features[k]] += tree_phi[st->features[k]];
			out[nf] += 0.0f + f->node_mean[w.start];
		}
		else
		{
			if (paths == NULL)
			{
				size_t		max_depth = 0;

				for (int u = 0; u < f->num_trees; u++)
					max_depth = Max(max_depth, (size_t) f->tree_depth[u]);
				max_depth += 2;
				/* one path per level, each one longer: (d + 1)(d + 2) / 2 */
				paths = palloc_extended(sizeof(PathElement) *
										((max_depth * (max_depth + 1)) / 2 + 1),
										MCXT_ALLOC_HUGE);
			}
			memset(tree_phi, 0, sizeof(float) * (nf + 1));
			tree_phi[nf] += f->node_mean[w.start];
			tree_shap(&w, 0, 0, paths, 1, 1, -1);
			for (int j = 0; j <= nf; j++)
				out[j] += tree_phi[j];
		}
		if (st)
			r += st->num_leaves;
		else if ((++walked & 63) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	out[nf] += f->base_margin[g];
	for (int j = 0; j <= nf; j++)
		phi[j] = out[j];
	pfree(out);
	pfree(tree_phi);
	if (paths)
		pfree(paths);
	return true;
}
