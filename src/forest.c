/*-------------------------------------------------------------------------
 *
 * forest.c
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

#include "nids.h"

#define FOREST_MAGIC	0x4E494446	/* "NIDF" */
#define FOREST_FORMAT	1
#define LOCKSTEP		16

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

/* ---------------- conversion from an XGBoost document ---------------- */

/* an XGBoost parameter: a string holding a number, or a number */
static bool
doc_param_number(const DocValue *obj, const char *key, double *out)
{
	DocValue   *v = doc_get(obj, key);
	char	   *s,
			   *endp;

	if (v == NULL)
		return false;
	if (v->type == DOC_NUMBER)
	{
		*out = v->u.number;
		return true;
	}
	if (v->type == DOC_NUMARRAY && v->len == 1)
	{
		*out = v->u.numbers[0];
		return true;
	}
	if (v->type != DOC_STRING)
		return false;
	s = pnstrdup(v->u.string, v->len);
	/* XGBoost 2.1 writes base_score as "[5E-1]" */
	if (s[0] == '[')
	{
		s++;
		if (strchr(s, ',') != NULL)
			return false;
	}
	*out = strtod(s, &endp);
	return endp != s && (*endp == '\0' || *endp == ']');
}

static const double *
tree_array(const DocValue *tree, const char *key, int n, char **error, int t)
{
	DocValue   *v = doc_get(tree, key);

	if (n == 0 && v != NULL && v->type == DOC_ARRAY && v->len == 0)
		return NULL;
	if (v == NULL || v->type != DOC_NUMARRAY || v->len != n)
	{
		*error = psprintf("tree %d: \"%s\" is missing or does not have %d numbers",
						  t, key, n);
		return NULL;
	}
	return v->u.numbers;
}

/*
 * Scratch floats forest_predict_margin needs: a leaf value per tree, and a
 * copy of the input with the always-missing slot after it.
 */
int
forest_scratch_size(const NidsForest *forest)
{
	return forest->num_trees + 2 * forest->num_features + 1;
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
	f->cnodes = palloc_extended(sizeof(NidsNodeC) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
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

static void
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
}

NidsForest *
forest_from_xgboost(const DocValue *doc, char **error)
{
	DocValue   *learner = doc_get(doc, "learner");
	DocValue   *lmp = doc_get(learner, "learner_model_param");
	DocValue   *objective = doc_get(learner, "objective");
	DocValue   *objname = doc_get(objective, "name");
	DocValue   *gb = doc_get(learner, "gradient_booster");
	DocValue   *gbname = doc_get(gb, "name");
	DocValue   *model = doc_get(gb, "model");
	DocValue   *trees = doc_get(model, "trees");
	DocValue   *tree_info = doc_get(model, "tree_info");
	NidsForest *f = palloc0(sizeof(NidsForest));
	double		num_class = 0,
				num_feature = 0,
				base_score = 0.5;
	int			total_nodes = 0;
	int			max_nodes = 1;
	int32	   *stack;
	int32	   *newpos;

	*error = NULL;
	if (learner == NULL || lmp == NULL || gb == NULL)
	{
		*error = pstrdup("the document has no \"learner\" with \"learner_model_param\" and \"gradient_booster\"; it is not an XGBoost model");
		return NULL;
	}
	if (gbname == NULL || gbname->type != DOC_STRING ||
		strncmp(gbname->u.string, "gbtree", gbname->len) != 0 || gbname->len != 6)
	{
		*error = psprintf("gradient booster \"%s\" is not supported; only gbtree is",
						  gbname && gbname->type == DOC_STRING
						  ? pnstrdup(gbname->u.string, gbname->len) : "?");
		return NULL;
	}
	if (objname == NULL || objname->type != DOC_STRING)
	{
		*error = pstrdup("the model has no objective name");
		return NULL;
	}
	if (strcmp(pnstrdup(objname->u.string, objname->len), "multi:softprob") == 0)
		f->objective = NIDS_OBJ_SOFTPROB;
	else if (strcmp(pnstrdup(objname->u.string, objname->len), "multi:softmax") == 0)
		f->objective = NIDS_OBJ_SOFTMAX;
	else if (strcmp(pnstrdup(objname->u.string, objname->len), "binary:logistic") == 0)
		f->objective = NIDS_OBJ_LOGISTIC;
	else
	{
		*error = psprintf("objective \"%s\" is not supported; expected multi:softprob, multi:softmax or binary:logistic",
						  pnstrdup(objname->u.string, objname->len));
		return NULL;
	}
	/* positive tests throughout: NaN must fail them */
	if (!doc_param_number(lmp, "num_feature", &num_feature) ||
		!(num_feature >= 1 && num_feature <= 100000) || num_feature != floor(num_feature))
	{
		*error = pstrdup("learner_model_param.num_feature is missing or out of range");
		return NULL;
	}
	doc_param_number(lmp, "num_class", &num_class);
	if (!doc_param_number(lmp, "base_score", &base_score) || !isfinite(base_score))
	{
		*error = pstrdup("learner_model_param.base_score is missing or is not a single number");
		return NULL;
	}
	f->num_features = (int32) num_feature;
	if (f->objective == NIDS_OBJ_LOGISTIC)
	{
		if (num_class > 1)
		{
			*error = psprintf("binary:logistic model has num_class %g", num_class);
			return NULL;
		}
		if (!(base_score > 0.0 && base_score < 1.0))
		{
			*error = pstrdup("binary:logistic model has base_score outside (0, 1)");
			return NULL;
		}
		f->num_groups = 1;
	}
	else
	{
		if (!(num_class >= 2 && num_class <= 10000) || num_class != floor(num_class))
		{
			*error = psprintf("multi-class model has num_class %g; expected at least 2", num_class);
			return NULL;
		}
		f->num_groups = (int32) num_class;
	}
	f->base_margin = palloc(sizeof(float) * f->num_groups);
	for (int g = 0; g < f->num_groups; g++)
	{
		/* XGBoost's ProbToMargin: logit for logistic, identity for softmax */
		if (f->objective == NIDS_OBJ_LOGISTIC)
			f->base_margin[g] = -logf(1.0f / (float) base_score - 1.0f);
		else
			f->base_margin[g] = (float) base_score;
	}

	if (trees == NULL || (trees->type != DOC_ARRAY && trees->type != DOC_NUMARRAY))
	{
		*error = pstrdup("gradient_booster.model.trees is missing");
		return NULL;
	}
	if (trees->type == DOC_NUMARRAY)
	{
		*error = pstrdup("gradient_booster.model.trees is not an array of trees");
		return NULL;
	}
	f->num_trees = trees->len;
	if (f->num_trees > 0 &&
		(tree_info == NULL || tree_info->type != DOC_NUMARRAY ||
		 tree_info->len != f->num_trees))
	{
		*error = pstrdup("gradient_booster.model.tree_info does not have one group per tree");
		return NULL;
	}
	f->tree_group = palloc(sizeof(int32) * Max(f->num_trees, 1));
	f->tree_offset = palloc(sizeof(int32) * (f->num_trees + 1));
	f->tree_depth = palloc0(sizeof(int32) * Max(f->num_trees, 1));

	/* first pass: sizes */
	for (int t = 0; t < f->num_trees; t++)
	{
		DocValue   *tree = &trees->u.items[t];
		DocValue   *tp = doc_get(tree, "tree_param");
		double		nn = 0,
					leafvec = 0;
		double		g = tree_info->u.numbers[t];

		if (tree->type != DOC_OBJECT || tp == NULL ||
			!doc_param_number(tp, "num_nodes", &nn) || !(nn >= 1 && nn <= 1 << 24) ||
			nn != floor(nn))
		{
			*error = psprintf("tree %d has no valid tree_param.num_nodes", t);
			return NULL;
		}
		if (doc_param_number(tp, "size_leaf_vector", &leafvec) && leafvec > 1)
		{
			*error = psprintf("tree %d has vector leaves (multi-target trees are not supported)", t);
			return NULL;
		}
		if (!(g >= 0 && g < f->num_groups) || g != floor(g))
		{
			*error = psprintf("tree %d belongs to output group %g, but the model has %d",
							  t, g, f->num_groups);
			return NULL;
		}
		f->tree_group[t] = (int32) g;
		f->tree_offset[t] = total_nodes;
		if (total_nodes > PG_INT32_MAX / 2 - (int) nn)
		{
			*error = pstrdup("the model has too many nodes");
			return NULL;
		}
		total_nodes += (int) nn;
		max_nodes = Max(max_nodes, (int) nn);
	}
	f->tree_offset[f->num_trees] = total_nodes;
	f->num_nodes = total_nodes;
	f->nodes = palloc_extended(sizeof(NidsNode) * Max(total_nodes, 1), MCXT_ALLOC_HUGE);
	f->leaf_value = palloc_extended(sizeof(float) * Max(total_nodes, 1), MCXT_ALLOC_HUGE);

	/* second pass: validate each tree and lay it out breadth first */
	stack = palloc(sizeof(int32) * 2 * max_nodes);
	newpos = palloc(sizeof(int32) * max_nodes);
	for (int t = 0; t < f->num_trees; t++)
	{
		DocValue   *tree = &trees->u.items[t];
		int			n = f->tree_offset[t + 1] - f->tree_offset[t];
		const double *left = tree_array(tree, "left_children", n, error, t);
		const double *right = tree_array(tree, "right_children", n, error, t);
		const double *split = tree_array(tree, "split_indices", n, error, t);
		const double *cond = tree_array(tree, "split_conditions", n, error, t);
		const double *dleft = tree_array(tree, "default_left", n, error, t);
		DocValue   *stype = doc_get(tree, "split_type");
		NidsNode   *out = f->nodes + f->tree_offset[t];
		float	   *leaf = f->leaf_value + f->tree_offset[t];
		int32	   *depth = stack + n;	/* second half of the scratch area */
		int			head = 0,
					tail = 0,
					placed = 1;

		if (*error)
			return NULL;
		if (stype && stype->type == DOC_NUMARRAY)
		{
			for (int i = 0; i < stype->len; i++)
				if (stype->u.numbers[i] != 0)
				{
					*error = psprintf("tree %d has categorical splits, which are not supported", t);
					return NULL;
				}
		}
		for (int i = 0; i < n; i++)
			newpos[i] = -1;

		/* breadth-first walk from the root: every node reached once */
		stack[tail++] = 0;
		newpos[0] = 0;
		depth[0] = 0;
		while (head < tail)
		{
			int			i = stack[head];
			int			d = depth[head];
			int			p = newpos[i];

			head++;
			if (left[i] == -1)
			{
				if (right[i] != -1)
				{
					*error = psprintf("tree %d node %d has one child", t, i);
					return NULL;
				}
				if (!isfinite(cond[i]) || fabs(cond[i]) > FLT_MAX)
				{
					*error = psprintf("tree %d node %d has a leaf value that is not finite", t, i);
					return NULL;
				}
				out[p].threshold = INFINITY;
				out[p].feature_dl = NIDS_DEFAULT_LEFT;
				out[p].left = p;
				leaf[p] = (float) cond[i];
				f->tree_depth[t] = Max(f->tree_depth[t], d);
				continue;
			}
			if (left[i] < 1 || left[i] >= n || right[i] < 1 || right[i] >= n ||
				left[i] != floor(left[i]) || right[i] != floor(right[i]))
			{
				*error = psprintf("tree %d node %d has a child index out of range", t, i);
				return NULL;
			}
			if (newpos[(int) left[i]] != -1 || newpos[(int) right[i]] != -1 ||
				left[i] == right[i])
			{
				*error = psprintf("tree %d node %d: a node is reached twice (the tree has a cycle or shared nodes)", t, i);
				return NULL;
			}
			if (split[i] < 0 || split[i] >= f->num_features || split[i] != floor(split[i]))
			{
				*error = psprintf("tree %d node %d splits on feature %g, but the model has %d features",
								  t, i, split[i], f->num_features);
				return NULL;
			}
			if (isnan(cond[i]) || fabs(cond[i]) > FLT_MAX)
			{
				*error = psprintf("tree %d node %d has a threshold that is not finite", t, i);
				return NULL;
			}
			out[p].threshold = (float) cond[i];
			out[p].feature_dl = (uint32) split[i] | (dleft[i] != 0 ? NIDS_DEFAULT_LEFT : 0);
			out[p].left = placed;
			leaf[p] = 0.0f;
			newpos[(int) left[i]] = placed;
			newpos[(int) right[i]] = placed + 1;
			stack[tail] = (int) left[i];
			depth[tail++] = d + 1;
			stack[tail] = (int) right[i];
			depth[tail++] = d + 1;
			placed += 2;
		}
		/* deleted nodes (XGBoost's pruner leaves them) are dropped */
		for (int i = placed; i < n; i++)
		{
			out[i].threshold = INFINITY;
			out[i].feature_dl = NIDS_DEFAULT_LEFT;
			out[i].left = i;
			leaf[i] = 0.0f;
		}
	}
	pfree(stack);
	pfree(newpos);
	forest_finish(f);
	return f;
}

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
	size_t		size = forest_payload_size(f->num_groups, f->num_trees, f->num_nodes);
	bytea	   *out = palloc_extended(VARHDRSZ + size, MCXT_ALLOC_HUGE);
	char	   *p = VARDATA(out);
	ForestHeader h = {FOREST_MAGIC, FOREST_FORMAT, f->objective, f->num_features,
	f->num_groups, f->num_trees, f->num_nodes, f->sample_size};

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
	return out;
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
	if (h.magic != FOREST_MAGIC || h.format != FOREST_FORMAT)
	{
		*error = pstrdup("native model has an unknown format");
		return NULL;
	}
	if (h.objective < NIDS_OBJ_SOFTPROB || h.objective > NIDS_OBJ_ISOLATION ||
		h.sample_size < 0 ||
		h.num_features < 1 || h.num_groups < 1 || h.num_trees < 0 ||
		h.num_nodes < 0 || h.num_groups > 10000 || h.num_features > 100000 ||
		forest_payload_size(h.num_groups, h.num_trees, h.num_nodes) != len)
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
			return NULL;
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
					return NULL;
				}
				f->tree_depth[t] = Max(f->tree_depth[t], depth[i]);
				continue;
			}
			if (nodes[i].left <= i || nodes[i].left > n - 2 ||
				(nodes[i].feature_dl & NIDS_FEATURE_MASK) >= (uint32) f->num_features ||
				isnan(nodes[i].threshold))
			{
				*error = psprintf("native model tree %d node %d is invalid", t, i);
				return NULL;
			}
			/* parents come first, so depth[i] is final when i is reached */
			depth[nodes[i].left] = Max(depth[nodes[i].left], depth[i] + 1);
			depth[nodes[i].left + 1] = Max(depth[nodes[i].left + 1], depth[i] + 1);
		}
		pfree(depth);
	}
	forest_finish(f);
	return f;
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

/* the compact walk: leaf values come from the nodes themselves */
static void
predict_compact(const NidsForest *f, const float *x, float *leaf)
{
	const int32 *order = f->eval_order;
	const NidsNodeC *nodes = f->cnodes;
	int			t = 0;

	for (; t + LOCKSTEP <= f->num_trees; t += LOCKSTEP)
	{
		const NidsNodeC *p[LOCKSTEP];
		int			depth = f->tree_depth[order[t + LOCKSTEP - 1]];

		for (int k = 0; k < LOCKSTEP; k++)
			p[k] = nodes + f->eval_offset[t + k];
		for (int d = 0; d < depth; d++)
		{
#pragma GCC unroll 16
			for (int k = 0; k < LOCKSTEP; k++)
				p[k] = cnode_step(p[k], x);
		}
		for (int k = 0; k < LOCKSTEP; k++)
			leaf[order[t + k]] = p[k]->value;
	}
	for (; t < f->num_trees; t++)
	{
		const NidsNodeC *p = nodes + f->eval_offset[t];

		for (int d = 0; d < f->tree_depth[order[t]]; d++)
			p = cnode_step(p, x);
		leaf[order[t]] = p->value;
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
void
forest_predict_margin(const NidsForest *f, const float *x, float *margin,
					  float *scratch)
{
	float	   *leaf = scratch;

	if (f->cnodes && nids_compact_evaluator)
	{
		float	   *in = scratch + f->num_trees;
		int			nf = f->num_features;

		for (int j = 0; j < nf; j++)
		{
			bool		missing = isnan(x[j]);

			in[j] = missing ? INFINITY : x[j];
			in[nf + j] = missing ? -INFINITY : x[j];
		}
		in[2 * nf] = -INFINITY;
		predict_compact(f, in, leaf);
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
