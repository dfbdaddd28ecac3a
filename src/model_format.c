/*-------------------------------------------------------------------------
 *
 * model_format.c
 *	  The native byte form of a forest (the classifier's and the isolation
 *	  forest's), as stored in nids.model_versions.native and .iforest.
 *
 * Stored bytes may have been edited by hand or restored from anywhere, so
 * deserialisation checks everything a traversal relies on before a forest
 * is used.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include <float.h>
#include <math.h>

#include "miscadmin.h"
#include "model.h"

#define FOREST_MAGIC	0x4E494446	/* "NIDF" */
#define FOREST_FORMAT	1			/* nids 1.0: no node covers */
#define FOREST_FORMAT_COVER	2		/* 1.1: a cover per node follows */

/* ---------------- native serialization ---------------- */

typedef struct ForestHeader
{
	uint32		magic;
	uint32		format;
	int32		objective;
	int32		num_features;
	int32		num_groups;
	int32		num_trees;
	int32		num_nodes;
	int32		sample_size;
} ForestHeader;

static size_t
forest_payload_size(int64 groups, int64 trees, int64 nodes)
{
	return sizeof(ForestHeader) + sizeof(float) * groups +
		sizeof(int32) * (trees + trees + 1) +
		(sizeof(NidsNode) + sizeof(float)) * nodes;
}

bytea *
forest_serialize(const NidsForest *f)
{
	size_t		size = forest_payload_size(f->num_groups, f->num_trees, f->num_nodes) +
		(f->cover ? sizeof(float) * f->num_nodes : 0);
	bytea	   *out = palloc_extended(VARHDRSZ + size, MCXT_ALLOC_HUGE);
	char	   *p = VARDATA(out);
	ForestHeader h = {FOREST_MAGIC, f->cover ? FOREST_FORMAT_COVER : FOREST_FORMAT,
		f->objective, f->num_features, f->num_groups, f->num_trees, f->num_nodes,
	f->sample_size};

	SET_VARSIZE(out, VARHDRSZ + size);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	memcpy(p, f->base_margin, sizeof(float) * f->num_groups);
	p += sizeof(float) * f->num_groups;
	memcpy(p, f->tree_group, sizeof(int32) * f->num_trees);
	p += sizeof(int32) * f->num_trees;
	memcpy(p, f->tree_offset, sizeof(int32) * (f->num_trees + 1));
	p += sizeof(int32) * (f->num_trees + 1);
	memcpy(p, f->nodes, sizeof(NidsNode) * f->num_nodes);
	p += sizeof(NidsNode) * f->num_nodes;
	memcpy(p, f->leaf_value, sizeof(float) * f->num_nodes);
	p += sizeof(float) * f->num_nodes;
	if (f->cover)
		memcpy(p, f->cover, sizeof(float) * f->num_nodes);
	return out;
}

/*
 * Tree t of a deserialised forest: everything a traversal relies on (node
 * offsets, children after their parent and inside the tree, features in
 * range, finite leaves), and its depth; false and *error when it fails.
 */
static bool
check_native_tree(NidsForest *f, int t, char **error)
{
	int			start = f->tree_offset[t];
	int			n;
	NidsNode   *nodes;
	int32	   *depth;

	/* offsets must rise through [0, num_nodes]: no tree reads past its nodes */
	if (start < 0 || f->tree_offset[t + 1] > f->num_nodes ||
		f->tree_offset[t + 1] <= start ||
		f->tree_group[t] < 0 || f->tree_group[t] >= f->num_groups)
	{
		*error = psprintf("native model tree %d has bad node offsets or a bad group", t);
		return false;
	}
	n = f->tree_offset[t + 1] - start;
	nodes = f->nodes + start;
	depth = palloc0(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
	{
		if (nodes[i].left == i)
		{
			/* a leaf: make the self-loop exact whatever was stored */
			nodes[i].threshold = INFINITY;
			nodes[i].feature_dl = NIDS_DEFAULT_LEFT;
			if (!isfinite(f->leaf_value[start + i]))
			{
				*error = psprintf("native model tree %d has a leaf that is not finite", t);
				return false;
			}
			f->tree_depth[t] = Max(f->tree_depth[t], depth[i]);
			continue;
		}
		if (nodes[i].left <= i || nodes[i].left > n - 2 ||
			(nodes[i].feature_dl & NIDS_FEATURE_MASK) >= (uint32) f->num_features ||
			isnan(nodes[i].threshold) || nodes[i].threshold == -INFINITY)
		{
			*error = psprintf("native model tree %d node %d is invalid", t, i);
			return false;
		}
		/* parents come first, so depth[i] is final when i is reached */
		if (depth[nodes[i].left] != 0 || depth[nodes[i].left + 1] != 0)
		{
			*error = psprintf("native model tree %d node %d is the child of two nodes", t,
							  nodes[i].left);
			return false;
		}
		if (depth[i] + 1 > NIDS_MAX_TREE_DEPTH)
		{
			*error = psprintf("native model tree %d is deeper than %d levels", t,
							  NIDS_MAX_TREE_DEPTH);
			return false;
		}
		depth[nodes[i].left] = depth[i] + 1;
		depth[nodes[i].left + 1] = depth[i] + 1;
	}
	pfree(depth);
	return true;
}

/*
 * Rebuild a forest from its native bytes, checking everything a traversal
 * relies on: sizes, tree ranges, children after their parent and inside the
 * tree, feature indices in range.
 */
NidsForest *
forest_deserialize(const char *data, size_t len, char **error)
{
	ForestHeader h;
	NidsForest *f;
	const char *p = data;

	*error = NULL;
	if (len < sizeof(h))
	{
		*error = pstrdup("native model is truncated");
		return NULL;
	}
	memcpy(&h, p, sizeof(h));
	p += sizeof(h);
	if (h.magic != FOREST_MAGIC || (h.format != FOREST_FORMAT && h.format != FOREST_FORMAT_COVER))
	{
		*error = pstrdup("native model has an unknown format");
		return NULL;
	}
	if (h.objective < NIDS_OBJ_SOFTPROB || h.objective > NIDS_OBJ_ISOLATION ||
		h.sample_size < 0 ||
		h.num_features < 1 || h.num_groups < 1 || h.num_trees < 0 ||
		h.num_nodes < 0 || h.num_groups > 10000 || h.num_features > 100000 ||
		forest_payload_size(h.num_groups, h.num_trees, h.num_nodes) +
		(h.format == FOREST_FORMAT_COVER ? sizeof(float) * (size_t) h.num_nodes : 0) != len)
	{
		*error = pstrdup("native model header is inconsistent with its size");
		return NULL;
	}
	/* one margin for binary and isolation forests, one per class otherwise */
	if ((h.objective == NIDS_OBJ_LOGISTIC || h.objective == NIDS_OBJ_ISOLATION)
		? h.num_groups != 1 : h.num_groups < 2)
	{
		*error = pstrdup("native model has a number of outputs its objective cannot have");
		return NULL;
	}
	f = palloc0(sizeof(NidsForest));
	f->objective = h.objective;
	f->num_features = h.num_features;
	f->num_groups = h.num_groups;
	f->num_trees = h.num_trees;
	f->num_nodes = h.num_nodes;
	f->sample_size = h.sample_size;
	f->base_margin = palloc(sizeof(float) * f->num_groups);
	memcpy(f->base_margin, p, sizeof(float) * f->num_groups);
	p += sizeof(float) * f->num_groups;
	f->tree_group = palloc(sizeof(int32) * Max(f->num_trees, 1));
	memcpy(f->tree_group, p, sizeof(int32) * f->num_trees);
	p += sizeof(int32) * f->num_trees;
	f->tree_offset = palloc(sizeof(int32) * (f->num_trees + 1));
	memcpy(f->tree_offset, p, sizeof(int32) * (f->num_trees + 1));
	p += sizeof(int32) * (f->num_trees + 1);
	f->nodes = palloc_extended(sizeof(NidsNode) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
	memcpy(f->nodes, p, sizeof(NidsNode) * f->num_nodes);
	p += sizeof(NidsNode) * f->num_nodes;
	f->leaf_value = palloc_extended(sizeof(float) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
	memcpy(f->leaf_value, p, sizeof(float) * f->num_nodes);
	p += sizeof(float) * f->num_nodes;
	if (h.format == FOREST_FORMAT_COVER)
	{
		f->cover = palloc_extended(sizeof(float) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
		memcpy(f->cover, p, sizeof(float) * f->num_nodes);
		for (int i = 0; i < f->num_nodes; i++)
			if (!(f->cover[i] >= 0) || isinf(f->cover[i]))
			{
				*error = pstrdup("native model has a node cover that is negative or not finite");
				return NULL;
			}
	}
	f->tree_depth = palloc0(sizeof(int32) * Max(f->num_trees, 1));

	if (f->tree_offset[0] != 0 || f->tree_offset[f->num_trees] != f->num_nodes)
	{
		*error = pstrdup("native model tree offsets do not cover its nodes");
		return NULL;
	}
	for (int g = 0; g < f->num_groups; g++)
		if (!isfinite(f->base_margin[g]))
		{
			*error = pstrdup("native model base margin is not finite");
			return NULL;
		}
	for (int t = 0; t < f->num_trees; t++)
	{
		if ((t & (NIDS_CHECK_EVERY - 1)) == NIDS_CHECK_EVERY - 1)
			CHECK_FOR_INTERRUPTS();
		if (!check_native_tree(f, t, error))
			return NULL;
	}
	forest_finish(f);
	return f;
}
