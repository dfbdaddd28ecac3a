/*-------------------------------------------------------------------------
 *
 * model_convert.c
 *	  Conversion of an XGBoost model document (JSON or UBJSON, read by
 *	  model_doc.c) into the native forest that model_eval.c walks.
 *
 * Every index, count and value of the document is checked here: the
 * document comes from users.  Trees are laid out breadth-first so that the
 * two children of a node are adjacent and come after their parent (see
 * model_eval.c).
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include <errno.h>
#include <float.h>
#include <math.h>

#include "miscadmin.h"
#include "model.h"

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
	/* XGBoost 2.1 writes base_score as "[5E-1]": one number in brackets */
	if (s[0] == '[')
	{
		*out = strtod(s + 1, &endp);
		return endp != s + 1 && endp[0] == ']' && endp[1] == '\0';
	}
	*out = strtod(s, &endp);
	return endp != s && *endp == '\0';
}

/*
 * The number arrays of a tree.  XGBoost reads index arrays as integers and
 * the others as floats, and refuses an array whose numbers are written the
 * other way (1 where it wants a float, 1.0 where it wants an integer).
 */
static bool
integer_array(const char *key)
{
	return strcmp(key, "left_children") == 0 || strcmp(key, "right_children") == 0 ||
		strcmp(key, "parents") == 0 || strcmp(key, "split_indices") == 0 ||
		strcmp(key, "default_left") == 0;
}

static const double *
tree_array(const DocValue *tree, const char *key, int n, char **error, int t)
{
	DocValue   *v = doc_get(tree, key);

	if (v != NULL && v->type == DOC_NUMARRAY &&
		(integer_array(key) ? !v->is_integer : v->any_integer))
	{
		*error = psprintf("tree %d: \"%s\" holds %s", t, key,
						  integer_array(key) ? "numbers that are not written as integers"
						  : "numbers written as integers where XGBoost reads floats");
		return NULL;
	}

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
 * XGBoost parses the members of its parameter objects it knows as C++
 * streams do, and refuses the whole document when one does not parse: an
 * integer must be all digits (white space around it allowed), a float what
 * strtod reads whole.  Members it does not know are ignored, by both.
 * XGBoost 2.x writes base_score as "[5E-1]": accepted there.
 */
static bool
param_parses(const DocValue *v, bool integer, bool bracketed)
{
	char	   *s = pnstrdup(v->u.string, v->len);	/* check_params: a string */
	char	   *endp;

	if (bracketed && s[0] == '[')
		s++;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (integer)
	{
		errno = 0;
		(void) strtol(s, &endp, 10);
		if (errno != 0)
			return false;
	}
	else
		(void) strtod(s, &endp);
	if (endp == s)
		return false;
	if (bracketed && *endp == ']')
		endp++;
	while (*endp == ' ' || *endp == '\t' || *endp == '\n' || *endp == '\r')
		endp++;
	return *endp == '\0';
}

/*
 * Every member of a parameter object is a string (XGBoost reads them all as
 * strings), and the members it knows parse; the lists end with NULL.
 */
static bool
check_params(const DocValue *obj, const char *const *ints, const char *const *floats,
			 const char *what, char **error)
{
	if (obj == NULL || obj->type != DOC_OBJECT)
	{
		*error = psprintf("%s is not an object", what);
		return false;
	}
	for (int i = 0; i < obj->len; i++)
		if (obj->u.object.values[i].type != DOC_STRING)
		{
			*error = psprintf("%s.%s is not a string", what, obj->u.object.keys[i]);
			return false;
		}
	for (int pass = 0; pass < 2; pass++)
		for (const char *const *k = pass == 0 ? ints : floats; k && *k; k++)
		{
			const DocValue *v = doc_get(obj, *k);

			if (v != NULL && !param_parses(v, pass == 0, strcmp(*k, "base_score") == 0))
			{
				*error = psprintf("%s.%s is not a valid %s", what, *k, pass == 0 ? "integer" : "number");
				return false;
			}
		}
	return true;
}

static const char *const lmp_ints[] = {"num_class", "num_feature", "num_target", "boost_from_average", NULL};
static const char *const lmp_floats[] = {"base_score", NULL};
static const char *const gmp_ints[] = {"num_trees", "num_parallel_tree", "size_leaf_vector", "num_roots", "num_feature", "num_output_group", NULL};
static const char *const tp_ints[] = {"num_nodes", "num_deleted", "num_feature", "size_leaf_vector", "num_roots", NULL};
static const char *const softmax_ints[] = {"num_class", NULL};
static const char *const logistic_floats[] = {"scale_pos_weight", NULL};

/*
 * The largest size_leaf_vector of a tree with scalar leaves: 0 before
 * XGBoost 2.0, which reuses the parameter with 1 for scalar leaves.
 */
static int
scalar_leaf_vector(const DocValue *doc)
{
	const DocValue *version = doc_get(doc, "version");

	return (version != NULL && version->type == DOC_NUMARRAY && version->len >= 1 &&
			version->u.numbers[0] >= 2) ? 1 : 0;
}

/*
 * What XGBoost requires of the document although nids does not use it:
 * a "version" array, and the model's gbtree_model_param: num_trees the
 * number of trees (XGBoost's predictor walks num_trees trees, whatever the
 * document holds: fuzz_xgboost_diff crashed it with a misspelt one),
 * num_parallel_tree at least 1 where given.
 */
static bool
check_xgboost_document(const DocValue *doc, const DocValue *model, char **error)
{
	const DocValue *version = doc_get(doc, "version");
	const DocValue *gmp = doc_get(model, "gbtree_model_param");
	const DocValue *trees = doc_get(model, "trees");
	double		parallel;
	double		num_trees;

	if (version == NULL || version->type != DOC_NUMARRAY || version->len != 3 ||
		!version->is_integer)
	{
		*error = pstrdup("the document has no \"version\" of three integers; it is not an XGBoost model");
		return false;
	}
	if (gmp == NULL || gmp->type != DOC_OBJECT ||
		(doc_get(gmp, "num_parallel_tree") != NULL &&
		 !(doc_param_number(gmp, "num_parallel_tree", &parallel) && parallel >= 1)))
	{
		*error = pstrdup("gradient_booster.model has no valid \"gbtree_model_param\"");
		return false;
	}
	if (!check_params(gmp, gmp_ints, NULL, "gbtree_model_param", error))
		return false;
	/* vector leaves: XGBoost 1.7 loads them and then cannot predict */
	if (doc_param_number(gmp, "size_leaf_vector", &parallel) && parallel > scalar_leaf_vector(doc))
	{
		*error = pstrdup("gbtree_model_param.size_leaf_vector is not 0 (vector leaves are not supported)");
		return false;
	}
	if (!doc_param_number(gmp, "num_trees", &num_trees) || trees == NULL ||
		(trees->type != DOC_ARRAY && trees->type != DOC_NUMARRAY) || num_trees != trees->len)
	{
		*error = pstrdup("gbtree_model_param.num_trees is not the number of trees");
		return false;
	}
	return true;
}

/*
 * What XGBoost requires of the learner although nids does not use it (see
 * check_xgboost_tree): the three counts of learner_model_param, num_target
 * 1 where given, the objective's own parameter object, the
 * learner's attributes.
 */
static bool
check_xgboost_learner(const DocValue *learner, const DocValue *lmp,
					  const DocValue *objective, NidsObjective obj, char **error)
{
	const char *param = obj == NIDS_OBJ_LOGISTIC ? "reg_loss_param" : "softmax_multiclass_param";
	const DocValue *p = doc_get(objective, param);
	double		v;

	if (doc_get(lmp, "num_class") == NULL || doc_get(lmp, "num_feature") == NULL ||
		doc_get(lmp, "base_score") == NULL)
	{
		*error = pstrdup("learner_model_param needs base_score, num_class and num_feature");
		return false;
	}
	/* several targets are several outputs per row: not a model nids scores */
	if (doc_get(lmp, "num_target") != NULL &&
		!(doc_param_number(lmp, "num_target", &v) && v == 1))
	{
		*error = pstrdup("learner_model_param.num_target is not 1: multi-target models are not supported");
		return false;
	}
	if (p == NULL || p->type != DOC_OBJECT)
	{
		*error = psprintf("the objective has no \"%s\" object", param);
		return false;
	}
	/* softmax's num_class has no default in XGBoost: it must be the model's */
	if (obj != NIDS_OBJ_LOGISTIC)
	{
		double		ours,
					theirs;

		if (!doc_param_number(p, "num_class", &theirs) ||
			!doc_param_number(lmp, "num_class", &ours) || theirs != ours)
		{
			*error = psprintf("%s.num_class is missing or not learner_model_param.num_class", param);
			return false;
		}
	}
	if (!check_params(doc_get(learner, "attributes"), NULL, NULL, "attributes", error) ||
		!check_params(lmp, lmp_ints, lmp_floats, "learner_model_param", error) ||
		!check_params(p, obj == NIDS_OBJ_LOGISTIC ? NULL : softmax_ints,
					  obj == NIDS_OBJ_LOGISTIC ? logistic_floats : NULL, param, error))
		return false;
	if (doc_get(learner, "attributes") == NULL || doc_get(learner, "attributes")->type != DOC_OBJECT)
	{
		*error = pstrdup("the learner has no \"attributes\" object");
		return false;
	}
	/* nids does not read them, but XGBoost refuses anything but strings */
	for (int k = 0; k < 2; k++)
	{
		const char *key = k == 0 ? "feature_names" : "feature_types";
		const DocValue *v = doc_get(learner, key);

		if (v == NULL)
			continue;
		if (v->type != DOC_ARRAY)
		{
			*error = psprintf("learner.%s is not an array of strings", key);
			return false;
		}
		for (int i = 0; i < v->len; i++)
			if (v->u.items[i].type != DOC_STRING)
			{
				*error = psprintf("learner.%s is not an array of strings", key);
				return false;
			}
	}
	return true;
}

/*
 * The learner's objective, feature and class counts and base margin, from
 * learner_model_param; false (and *error) when unusable.
 */
static bool
convert_learner(const DocValue *doc, NidsForest *f, char **error)
{
	DocValue   *learner = doc_get(doc, "learner");
	DocValue   *lmp = doc_get(learner, "learner_model_param");
	DocValue   *objective = doc_get(learner, "objective");
	DocValue   *objname = doc_get(objective, "name");
	DocValue   *gb = doc_get(learner, "gradient_booster");
	DocValue   *gbname = doc_get(gb, "name");
	double		num_class = 0,
				num_feature = 0,
				base_score = 0.5;

	if (learner == NULL || lmp == NULL || gb == NULL)
	{
		*error = pstrdup("the document has no \"learner\" with \"learner_model_param\" and \"gradient_booster\"; it is not an XGBoost model");
		return false;
	}
	if (gbname == NULL || gbname->type != DOC_STRING ||
		strncmp(gbname->u.string, "gbtree", gbname->len) != 0 || gbname->len != 6)
	{
		*error = psprintf("gradient booster \"%s\" is not supported; only gbtree is",
						  gbname && gbname->type == DOC_STRING
						  ? pnstrdup(gbname->u.string, gbname->len) : "?");
		return false;
	}
	if (objname == NULL || objname->type != DOC_STRING)
	{
		*error = pstrdup("the model has no objective name");
		return false;
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
		return false;
	}
	if (!check_xgboost_learner(learner, lmp, objective, f->objective, error))
		return false;
	/* positive tests throughout: NaN must fail them */
	if (!doc_param_number(lmp, "num_feature", &num_feature) ||
		!(num_feature >= 1 && num_feature <= 100000) || num_feature != floor(num_feature))
	{
		*error = pstrdup("learner_model_param.num_feature is missing or out of range");
		return false;
	}
	doc_param_number(lmp, "num_class", &num_class);
	if (!doc_param_number(lmp, "base_score", &base_score) ||
		!isfinite((float) base_score))
	{
		*error = pstrdup("learner_model_param.base_score is missing or is not a single float32 number");
		return false;
	}
	f->num_features = (int32) num_feature;
	if (f->objective == NIDS_OBJ_LOGISTIC)
	{
		if (num_class > 1)
		{
			*error = psprintf("binary:logistic model has num_class %g", num_class);
			return false;
		}
		if (!(base_score > 0.0 && base_score < 1.0))
		{
			*error = pstrdup("binary:logistic model has base_score outside (0, 1)");
			return false;
		}
		f->num_groups = 1;
	}
	else
	{
		if (!(num_class >= 2 && num_class <= 10000) || num_class != floor(num_class))
		{
			*error = psprintf("multi-class model has num_class %g; expected at least 2", num_class);
			return false;
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
		if (!isfinite(f->base_margin[g]))
		{
			*error = psprintf("learner_model_param.base_score %g gives a base margin that is not finite in float32",
							  base_score);
			return false;
		}
	}
	return true;
}

/*
 * Each tree's group and node range (first pass over the trees); sets
 * *max_nodes to the largest tree's size.
 */
static bool
convert_tree_sizes(const DocValue *trees, const DocValue *tree_info, NidsForest *f,
				   int scalar_leaf, int *max_nodes, char **error)
{
	int			total_nodes = 0;

	if (trees == NULL || (trees->type != DOC_ARRAY && trees->type != DOC_NUMARRAY))
	{
		*error = pstrdup("gradient_booster.model.trees is missing");
		return false;
	}
	if (trees->type == DOC_NUMARRAY)
	{
		*error = pstrdup("gradient_booster.model.trees is not an array of trees");
		return false;
	}
	f->num_trees = trees->len;
	if (f->num_trees > 0 &&
		(tree_info == NULL || tree_info->type != DOC_NUMARRAY ||
		 tree_info->len != f->num_trees || !tree_info->is_integer))
	{
		*error = pstrdup("gradient_booster.model.tree_info does not have one group per tree");
		return false;
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
			return false;
		}
		if (doc_param_number(tp, "size_leaf_vector", &leafvec) && leafvec > scalar_leaf)
		{
			*error = psprintf("tree %d has vector leaves (multi-target trees are not supported)", t);
			return false;
		}
		if (!(g >= 0 && g < f->num_groups) || g != floor(g))
		{
			*error = psprintf("tree %d belongs to output group %g, but the model has %d",
							  t, g, f->num_groups);
			return false;
		}
		f->tree_group[t] = (int32) g;
		f->tree_offset[t] = total_nodes;
		if (total_nodes > PG_INT32_MAX / 2 - (int) nn)
		{
			*error = pstrdup("the model has too many nodes");
			return false;
		}
		total_nodes += (int) nn;
		*max_nodes = Max(*max_nodes, (int) nn);
	}
	f->tree_offset[f->num_trees] = total_nodes;
	f->num_nodes = total_nodes;
	return true;
}

/* the arrays of categorical splits, present (and empty) whenever split_type is */
static const char *const category_keys[] = {
	"categories", "categories_nodes", "categories_segments", "categories_sizes"
};

/*
 * default_left is 0 or 1.  XGBoost counts a node deleted when its split
 * index is 2^31 - 1 with default left, and refuses a tree whose
 * tree_param.num_deleted (0 when absent) is another count.
 */
static bool
check_deleted_nodes(const DocValue *tree, int t, int n, char **error)
{
	const double *split = tree_array(tree, "split_indices", n, error, t);
	const double *dleft = tree_array(tree, "default_left", n, error, t);
	double		declared = 0;
	int			deleted = 0;

	if (*error)
		return false;
	(void) doc_param_number(doc_get(tree, "tree_param"), "num_deleted", &declared);
	for (int i = 0; i < n; i++)
	{
		/* XGBoost reads default_left as a bit: 5 would be false there */
		if (dleft[i] != 0 && dleft[i] != 1)
		{
			*error = psprintf("tree %d node %d: default_left is %g, not 0 or 1", t, i, dleft[i]);
			return false;
		}
		if (i > 0 && split[i] == 2147483647.0 && dleft[i] != 0)
			deleted++;
	}
	if (declared != deleted)
	{
		*error = psprintf("tree %d: tree_param.num_deleted is %g, but %d nodes are marked deleted",
						  t, declared, deleted);
		return false;
	}
	return true;
}

/*
 * XGBoost follows "parents" as indices (a wrong one crashed its loader):
 * the root's is 2^31 - 1, every node reached from the root has the parent
 * it is reached from, and every other entry is a node index.  newpos[i] is
 * -1 for a node not reached.
 */
static bool
check_parents(const DocValue *tree, int t, int n, const double *left,
			  const double *right, const int32 *newpos, char **error)
{
	const double *parents = tree_array(tree, "parents", n, error, t);

	if (parents == NULL)
		return false;
	for (int i = 0; i < n; i++)
	{
		bool		ok = (i == 0) ? parents[0] == 2147483647.0
			: ((parents[i] >= 0 && parents[i] < n) ||
			   (newpos[i] == -1 && parents[i] == 2147483647.0));

		if (ok && newpos[i] != -1 && left[i] != -1)
			ok = parents[(int) left[i]] == i && parents[(int) right[i]] == i;
		if (!ok)
		{
			*error = psprintf("tree %d: \"parents\" does not match the children at node %d", t, i);
			return false;
		}
	}
	return true;
}

/*
 * What XGBoost requires of a tree although nids does not use it: a document
 * XGBoost would refuse is refused here too (fuzz/fuzz_xgboost_diff.c).
 */
static bool
check_xgboost_tree(const DocValue *tree, int t, int n, char **error)
{
	DocValue   *id = doc_get(tree, "id");

	/* XGBoost puts a tree where its id says: two with one id crashed it */
	if (id == NULL || id->type != DOC_NUMBER || !id->is_integer || id->u.number != t)
	{
		*error = psprintf("tree %d does not have \"id\" %d", t, t);
		return false;
	}
	if (!check_params(doc_get(tree, "tree_param"), tp_ints, NULL, "tree_param", error))
		return false;
	if (doc_get(tree, "split_type") != NULL)
		for (int k = 0; k < lengthof(category_keys); k++)
		{
			DocValue   *v = doc_get(tree, category_keys[k]);

			if (v == NULL || (v->type != DOC_ARRAY && v->type != DOC_NUMARRAY))
			{
				*error = psprintf("tree %d has \"split_type\" but no \"%s\" array", t, category_keys[k]);
				return false;
			}
			/* no categorical split is scored: XGBoost 1.7 crashed on such arrays */
			if (v->len != 0)
			{
				*error = psprintf("tree %d has categorical splits (\"%s\" is not empty), which are not supported",
								  t, category_keys[k]);
				return false;
			}
		}
	(void) tree_array(tree, "loss_changes", n, error, t);
	(void) tree_array(tree, "sum_hessian", n, error, t);
	(void) tree_array(tree, "base_weights", n, error, t);
	return *error == NULL && check_deleted_nodes(tree, t, n, error);
}

/* the per-node arrays of one XGBoost tree */
typedef struct TreeArrays
{
	const double *left;
	const double *right;
	const double *split;
	const double *cond;
	const double *dleft;
	const double *gain;
} TreeArrays;

/*
 * Node i of tree t (n nodes), a split, checked and placed at native
 * position p with its children at placed and placed + 1.
 */
static bool
convert_split(NidsForest *f, int t, int n, int i, int p, int placed,
			  const TreeArrays *ta, const int32 *newpos, char **error)
{
	const double *left = ta->left;
	const double *right = ta->right;
	const double *split = ta->split;
	const double *cond = ta->cond;
	NidsNode   *out = f->nodes + f->tree_offset[t];
	float	   *leaf = f->leaf_value + f->tree_offset[t];

	if (left[i] < 1 || left[i] >= n || right[i] < 1 || right[i] >= n ||
		left[i] != floor(left[i]) || right[i] != floor(right[i]))
	{
		*error = psprintf("tree %d node %d has a child index out of range", t, i);
		return false;
	}
	/*
	 * XGBoost's writer puts a split's children side by side, and its
	 * predictor counts on it (right = left + 1, whatever right_children
	 * says): a document that does not would score one way in XGBoost and
	 * another as written.
	 */
	if (right[i] != left[i] + 1)
	{
		*error = psprintf("tree %d node %d: the right child is not the node after the left child, as XGBoost's predictor assumes", t, i);
		return false;
	}
	if (newpos[(int) left[i]] != -1 || newpos[(int) right[i]] != -1 ||
		left[i] == right[i])
	{
		*error = psprintf("tree %d node %d: a node is reached twice (the tree has a cycle or shared nodes)", t, i);
		return false;
	}
	if (split[i] < 0 || split[i] >= f->num_features || split[i] != floor(split[i]))
	{
		*error = psprintf("tree %d node %d splits on feature %g, but the model has %d features",
						  t, i, split[i], f->num_features);
		return false;
	}

	/*
	 * As float32: XGBoost writes FLT_MAX as 3.4028235E38, above FLT_MAX
	 * in double.  +Inf is a split XGBoost makes on a column holding
	 * FLT_MAX (Infinity in the data): every value goes left, a missing
	 * one its default way.  -Inf would defeat the doubled input of the
	 * compact evaluator, and XGBoost never writes it: refused.
	 */
	if (isnan((float) cond[i]) || (float) cond[i] == -INFINITY)
	{
		*error = psprintf("tree %d node %d has a threshold that is NaN or -Infinity", t, i);
		return false;
	}
	out[p].threshold = (float) cond[i];
	out[p].feature_dl = (uint32) split[i] | (ta->dleft[i] != 0 ? NIDS_DEFAULT_LEFT : 0);
	f->gain[f->tree_offset[t] + p] = isfinite(ta->gain[i]) ? (float) ta->gain[i] : 0.0f;
	out[p].left = placed;
	leaf[p] = 0.0f;
	return true;
}

/*
 * Validate tree t of the document and lay it out breadth first at its
 * range of f's nodes.  stack and newpos are scratch for max_nodes nodes.
 */
static bool
convert_tree(const DocValue *tree, int t, NidsForest *f, int32 *stack, int32 *newpos,
			 char **error)
{
	int			n = f->tree_offset[t + 1] - f->tree_offset[t];
	const double *left = tree_array(tree, "left_children", n, error, t);
	const double *right = tree_array(tree, "right_children", n, error, t);
	const double *split = tree_array(tree, "split_indices", n, error, t);
	const double *cond = tree_array(tree, "split_conditions", n, error, t);
	const double *dleft = tree_array(tree, "default_left", n, error, t);
	const double *hess = tree_array(tree, "sum_hessian", n, error, t);
	TreeArrays	ta = {left, right, split, cond, dleft,
	tree_array(tree, "loss_changes", n, error, t)};

	DocValue   *stype = doc_get(tree, "split_type");
	NidsNode   *out = f->nodes + f->tree_offset[t];
	float	   *leaf = f->leaf_value + f->tree_offset[t];
	int32	   *depth = stack + n;	/* second half of the scratch area */
	int			head = 0,
				tail = 0,
				placed = 1;

	if (*error)
		return false;
	if (!check_xgboost_tree(tree, t, n, error))
		return false;
	/* split_type, where given, is one integer per node, all 0 (numerical) */
	if (stype != NULL &&
		!(stype->type == DOC_NUMARRAY && stype->is_integer && stype->len == n))
	{
		*error = psprintf("tree %d: \"split_type\" does not have %d integers", t, n);
		return false;
	}
	if (stype != NULL)
	{
		for (int i = 0; i < stype->len; i++)
			if (stype->u.numbers[i] != 0)
			{
				*error = psprintf("tree %d has categorical splits, which are not supported", t);
				return false;
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
		/* the cover, for TreeSHAP: as float32, finite, not negative */
		if (!((float) hess[i] >= 0) || isinf((float) hess[i]))
		{
			*error = psprintf("tree %d node %d has a sum_hessian that is negative or not finite", t, i);
			return false;
		}
		f->cover[f->tree_offset[t] + p] = (float) hess[i];
		if (left[i] == -1)
		{
			if (right[i] != -1)
			{
				*error = psprintf("tree %d node %d has one child", t, i);
				return false;
			}
			/* values are float32 in XGBoost: checked as float32 */
			if (!isfinite((float) cond[i]))
			{
				*error = psprintf("tree %d node %d has a leaf value that is not finite", t, i);
				return false;
			}
			out[p].threshold = INFINITY;
			out[p].feature_dl = NIDS_DEFAULT_LEFT;
			out[p].left = p;
			leaf[p] = (float) cond[i];
			f->tree_depth[t] = Max(f->tree_depth[t], d);
			continue;
		}
		if (d + 1 > NIDS_MAX_TREE_DEPTH)
		{
			*error = psprintf("tree %d is deeper than %d levels", t, NIDS_MAX_TREE_DEPTH);
			return false;
		}
		if (!convert_split(f, t, n, i, p, placed, &ta, newpos, error))
			return false;
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
		f->cover[f->tree_offset[t] + i] = 0.0f;
	}
	return check_parents(tree, t, n, left, right, newpos, error);
}

NidsForest *
forest_from_xgboost(const DocValue *doc, char **error)
{
	DocValue   *model = doc_get(doc_get(doc_get(doc, "learner"), "gradient_booster"), "model");
	DocValue   *trees = doc_get(model, "trees");
	DocValue   *tree_info = doc_get(model, "tree_info");
	NidsForest *f = palloc0(sizeof(NidsForest));
	int			max_nodes = 1;
	int32	   *stack;
	int32	   *newpos;

	*error = NULL;
	if (!convert_learner(doc, f, error))
		return NULL;
	if (!check_xgboost_document(doc, model, error))
		return NULL;
	if (!convert_tree_sizes(trees, tree_info, f, scalar_leaf_vector(doc), &max_nodes, error))
		return NULL;
	f->nodes = palloc_extended(sizeof(NidsNode) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
	f->leaf_value = palloc_extended(sizeof(float) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
	f->cover = palloc_extended(sizeof(float) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE);
	f->gain = palloc_extended(sizeof(float) * Max(f->num_nodes, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	/* second pass: validate each tree and lay it out breadth first */
	stack = palloc(sizeof(int32) * 2 * max_nodes);
	newpos = palloc(sizeof(int32) * max_nodes);
	for (int t = 0; t < f->num_trees; t++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!convert_tree(&trees->u.items[t], t, f, stack, newpos, error))
			return NULL;
	}
	pfree(stack);
	pfree(newpos);
	forest_finish(f);
	return f;
}

/*
 * Per feature, over the splits of a forest just converted (which knows
 * each split's gain): the number of splits, their total gain (XGBoost's
 * loss_changes) and total cover (sum_hessian), as XGBoost's
 * get_score(importance_type = "total_gain" / "total_cover") counts them.
 */
void
forest_importance(const NidsForest *f, double *gain, double *cover, int64 *splits)
{
	memset(gain, 0, sizeof(double) * f->num_features);
	memset(cover, 0, sizeof(double) * f->num_features);
	memset(splits, 0, sizeof(int64) * f->num_features);
	if (f->gain == NULL || f->cover == NULL)
		return;
	for (int t = 0; t < f->num_trees; t++)
	{
		int			start = f->tree_offset[t];

		for (int i = 0; i < f->tree_offset[t + 1] - start; i++)
		{
			const NidsNode *node = &f->nodes[start + i];
			int			j = (int) (node->feature_dl & NIDS_FEATURE_MASK);

			if (node->left == i)
				continue;
			gain[j] += f->gain[start + i];
			cover[j] += f->cover[start + i];
			splits[j]++;
		}
	}
}
