/*-------------------------------------------------------------------------
 *
 * train_options.c
 *	  Parse and validate the jsonb options of nids_train.
 *
 * Unknown keys, values of the wrong type and values out of range are
 * refused with 22023 and a message naming the option; XGBoost parameters
 * are checked against the list nids passes through.  The defaults were
 * chosen by measurement on CIC-IDS2017 (bench/defaults.sh): the smallest
 * model whose hold-out quality matches larger ones; see README.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "train.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

/* defaults of the XGBoost parameters nids sets */
static const char *const default_params[][2] = {
	{"tree_method", "hist"},
	{"max_depth", "6"},
	{"eta", "0.3"},
	{"max_bin", "256"},
	{"min_child_weight", "1"},
	{"subsample", "1"},
	{"colsample_bytree", "1"},
};

#define DEFAULT_ROUNDS	50

typedef enum ParamKind
{
	P_NUMBER,
	P_INT,
	P_CHOICE
} ParamKind;

typedef struct ParamSpec
{
	const char *name;
	const char *canonical;		/* the name nids passes to XGBoost */
	ParamKind	kind;
	double		min;
	double		max;
	bool		min_open;		/* min itself not allowed */
	const char *choices;		/* for P_CHOICE, comma-separated */
} ParamSpec;

static const ParamSpec param_specs[] = {
	{"eta", "eta", P_NUMBER, 0, 1, true, NULL},
	{"learning_rate", "eta", P_NUMBER, 0, 1, true, NULL},
	{"max_depth", "max_depth", P_INT, 0, 32, false, NULL},
	{"min_child_weight", "min_child_weight", P_NUMBER, 0, 1e9, false, NULL},
	{"gamma", "gamma", P_NUMBER, 0, 1e9, false, NULL},
	{"min_split_loss", "gamma", P_NUMBER, 0, 1e9, false, NULL},
	{"subsample", "subsample", P_NUMBER, 0, 1, true, NULL},
	{"colsample_bytree", "colsample_bytree", P_NUMBER, 0, 1, true, NULL},
	{"colsample_bylevel", "colsample_bylevel", P_NUMBER, 0, 1, true, NULL},
	{"colsample_bynode", "colsample_bynode", P_NUMBER, 0, 1, true, NULL},
	{"lambda", "lambda", P_NUMBER, 0, 1e9, false, NULL},
	{"reg_lambda", "lambda", P_NUMBER, 0, 1e9, false, NULL},
	{"alpha", "alpha", P_NUMBER, 0, 1e9, false, NULL},
	{"reg_alpha", "alpha", P_NUMBER, 0, 1e9, false, NULL},
	{"max_delta_step", "max_delta_step", P_NUMBER, 0, 1e9, false, NULL},
	{"max_bin", "max_bin", P_INT, 2, 65535, false, NULL},
	{"max_leaves", "max_leaves", P_INT, 0, 1 << 20, false, NULL},
	{"num_parallel_tree", "num_parallel_tree", P_INT, 1, 100, false, NULL},
	{"tree_method", "tree_method", P_CHOICE, 0, 0, false, "hist,approx,exact,auto"},
	{"grow_policy", "grow_policy", P_CHOICE, 0, 0, false, "depthwise,lossguide"},
};

static void
bad_option(const char *name, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option %s must be %s", name, expected)));
}

static double
number_value(const JsonbValue *v, const char *name, const char *expected)
{
	if (v->type != jbvNumeric)
		bad_option(name, expected);
	/* beyond float8's range is +/-Infinity: out of range, 22023, not 22003 */
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
}

static double
number_in(const JsonbValue *v, const char *name, double min, double max,
		  bool min_open, bool integer)
{
	char	   *expected = min_open
		? psprintf("%s greater than %.15g and at most %.15g", integer ? "an integer" : "a number", min, max)
		: psprintf("%s between %.15g and %.15g", integer ? "an integer" : "a number", min, max);
	double		d = number_value(v, name, expected);

	if (isnan(d) || d > max || d < min || (min_open && d <= min) ||
		(integer && d != floor(d)))
		bad_option(name, expected);
	return d;
}

static char *
string_value(const JsonbValue *v, const char *name)
{
	if (v->type != jbvString || v->val.string.len == 0)
		bad_option(name, "a non-empty string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void
set_param(TrainOptions *opt, const char *key, const char *value)
{
	for (int i = 0; i < opt->nparams; i++)
		if (strcmp(opt->param_keys[i], key) == 0)
		{
			opt->param_values[i] = pstrdup(value);
			return;
		}
	if (opt->nparams >= NIDS_MAX_PARAMS)
		bad_option("xgboost", "an object of at most 48 parameters");
	opt->param_keys[opt->nparams] = pstrdup(key);
	opt->param_values[opt->nparams++] = pstrdup(value);
}

/* iterate the keys of a jsonb object container, one callback per pair */
typedef void (*PairFn) (const char *key, JsonbValue *value, TrainOptions *opt);

static void
for_each_pair(JsonbContainer *container, const char *what, PairFn fn, TrainOptions *opt)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JsonContainerIsObject(container) || JsonContainerIsScalar(container))
		bad_option(what, "a JSON object");
	it = JsonbIteratorInit(container);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

			tok = JsonbIteratorNext(&it, &v, true);
			fn(key, &v, opt);
		}
	}
}

static void
xgboost_pair(const char *key, JsonbValue *v, TrainOptions *opt)
{
	char	   *name = psprintf("xgboost.%s", key);

	if (strcmp(key, "num_boost_round") == 0 || strcmp(key, "n_estimators") == 0)
	{
		opt->rounds = (int) number_in(v, name, 1, 10000, false, true);
		return;
	}
	if (strcmp(key, "objective") == 0 || strcmp(key, "num_class") == 0 ||
		strcmp(key, "nthread") == 0 || strcmp(key, "seed") == 0 ||
		strcmp(key, "random_state") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option %s is set by nids", name),
				 errhint("The objective is multi:softprob over the label's classes; threads come from nids.threads, the seed from options.seed.")));
	for (size_t i = 0; i < lengthof(param_specs); i++)
	{
		const ParamSpec *p = &param_specs[i];

		if (strcmp(p->name, key) != 0)
			continue;
		if (p->kind == P_CHOICE)
		{
			char	   *s = string_value(v, name);
			char	   *list = pstrdup(p->choices);
			bool		ok = false;

			for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
				if (strcmp(tok, s) == 0)
					ok = true;
			if (!ok)
				bad_option(name, psprintf("one of %s", p->choices));
			set_param(opt, p->canonical, s);
		}
		else
		{
			double		d = number_in(v, name, p->min, p->max, p->min_open, p->kind == P_INT);

			set_param(opt, p->canonical, p->kind == P_INT ? psprintf("%d", (int) d)
					  : psprintf("%.17g", d));
		}
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown XGBoost parameter \"%s\" in options.xgboost", key),
			 errhint("Accepted: eta, max_depth, min_child_weight, gamma, subsample, colsample_bytree, colsample_bylevel, colsample_bynode, lambda, alpha, max_delta_step, max_bin, max_leaves, num_parallel_tree, tree_method, grow_policy, num_boost_round.")));
}

static void
novelty_pair(const char *key, JsonbValue *v, TrainOptions *opt)
{
	char	   *name = psprintf("novelty.%s", key);

	if (strcmp(key, "method") == 0)
	{
		char	   *s = string_value(v, name);

		opt->novelty_method = -1;
		for (int i = 0; i < NOVELTY_NUM_METHODS; i++)
			if (strcmp(s, novelty_method_names[i]) == 0)
				opt->novelty_method = i;
		if ((int) opt->novelty_method < 0)
			bad_option(name, "\"joint\", \"prototypes\", \"combined\", \"uncertainty\" or \"iforest\"");
	}
	else if (strcmp(key, "benign_fpr") == 0)
		opt->benign_fpr = number_in(v, name, 0, 0.5, true, false);
	else if (strcmp(key, "prototypes") == 0)
		opt->prototypes = (int) number_in(v, name, 1, 4096, false, true);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\" in options.novelty", key),
				 errhint("Accepted: method, benign_fpr, prototypes.")));
}

static void
iforest_pair(const char *key, JsonbValue *v, TrainOptions *opt)
{
	char	   *name = psprintf("iforest.%s", key);

	if (strcmp(key, "trees") == 0 || strcmp(key, "n_estimators") == 0)
		opt->iforest.num_trees = (int) number_in(v, name, 1, 10000, false, true);
	else if (strcmp(key, "sample_size") == 0 || strcmp(key, "max_samples") == 0)
		opt->iforest.sample_size = (int) number_in(v, name, 2, 1000000, false, true);
	else if (strcmp(key, "max_depth") == 0)
		opt->iforest.max_depth = (int) number_in(v, name, 1, 64, false, true);
	else if (strcmp(key, "benign_fpr") == 0)
		opt->benign_fpr = number_in(v, name, 0, 0.5, true, false);
	else if (strcmp(key, "scale") == 0)
	{
		char	   *s = string_value(v, name);

		opt->iforest.scale = -1;
		for (int i = 0; i < IFOREST_NUM_SCALES; i++)
			if (strcmp(s, iforest_scale_names[i]) == 0)
				opt->iforest.scale = i;
		if (opt->iforest.scale < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option %s must be \"linear\", \"log\" or \"mixed\"", name)));
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\" in options.iforest", key),
				 errhint("Accepted: trees, sample_size, max_depth, scale, benign_fpr.")));
}

/* an array of column names */
static char **
name_list(JsonbValue *v, const char *key, int *n)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	char	  **names;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad_option(key, "an array of column names");
	names = palloc(sizeof(char *) * (JsonContainerSize(v->val.binary.data) + 1));
	*n = 0;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			names[(*n)++] = string_value(&e, key);
	return names;
}

/* true, false or "if_better" */
static TrainDeploy
deploy_value(JsonbValue *v)
{
	if (v->type == jbvBool)
		return v->val.boolean ? DEPLOY_ALWAYS : DEPLOY_NEVER;
	if (v->type == jbvString && v->val.string.len == 9 &&
		memcmp(v->val.string.val, "if_better", 9) == 0)
		return DEPLOY_IF_BETTER;
	bad_option("deploy", "true, false or \"if_better\"");
	return DEPLOY_NEVER;		/* not reached */
}

static void
top_pair(const char *key, JsonbValue *v, TrainOptions *opt)
{
	if (strcmp(key, "exclude") == 0)
		opt->exclude = name_list(v, key, &opt->nexclude);
	else if (strcmp(key, "include") == 0)
		opt->include = name_list(v, key, &opt->ninclude);
	else if (strcmp(key, "correlation_threshold") == 0)
		opt->correlation_threshold = number_in(v, key, 0, 1, true, false);
	else if (strcmp(key, "test_size") == 0)
		opt->test_size = number_in(v, key, 0, 0.9, false, false);
	else if (strcmp(key, "seed") == 0)
		opt->seed = (uint64) number_in(v, key, 0, 2147483647, false, true);
	else if (strcmp(key, "deploy") == 0)
		opt->deploy = deploy_value(v);
	else if (strcmp(key, "benign_label") == 0)
		opt->benign_label = string_value(v, key);
	else if (strcmp(key, "xgboost") == 0)
	{
		if (v->type != jbvBinary)
			bad_option("xgboost", "a JSON object");
		for_each_pair(v->val.binary.data, "xgboost", xgboost_pair, opt);
	}
	else if (strcmp(key, "iforest") == 0)
	{
		if (v->type != jbvBinary)
			bad_option("iforest", "a JSON object");
		for_each_pair(v->val.binary.data, "iforest", iforest_pair, opt);
	}
	else if (strcmp(key, "novelty") == 0)
	{
		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			bad_option("novelty", "a JSON object");
		for_each_pair(v->val.binary.data, "novelty", novelty_pair, opt);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", key),
				 errhint("Accepted: exclude, include, correlation_threshold, test_size, seed, deploy, benign_label, xgboost, iforest, novelty.")));
}

void
train_options_parse(Jsonb *options, TrainOptions *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->correlation_threshold = 0.95;
	opt->test_size = 0.2;
	opt->seed = 42;
	opt->deploy = DEPLOY_DEFAULT;
	opt->benign_label = NIDS_DEFAULT_BENIGN_LABEL;
	opt->rounds = DEFAULT_ROUNDS;
	opt->iforest.num_trees = 100;
	opt->iforest.sample_size = 256;
	opt->iforest.max_depth = 0;
	opt->iforest.scale = IFOREST_SCALE_MIXED;
	opt->benign_fpr = 0.01;
	opt->novelty_method = NOVELTY_DEFAULT_METHOD;
	opt->prototypes = NOVELTY_DEFAULT_PROTOTYPES;
	for (size_t i = 0; i < lengthof(default_params); i++)
		set_param(opt, default_params[i][0], default_params[i][1]);
	if (options != NULL)
		for_each_pair(&options->root, "options", top_pair, opt);
	opt->iforest.seed = opt->seed;
}

/*
 * The value of an XGBoost parameter nids passes: the user's, or nids'
 * default (every parameter nids sets has one); NULL for one it does not set.
 */
const char *
train_param(const TrainOptions *opt, const char *key)
{
	for (int i = 0; i < opt->nparams; i++)
		if (strcmp(opt->param_keys[i], key) == 0)
			return opt->param_values[i];
	for (size_t i = 0; i < lengthof(default_params); i++)
		if (strcmp(default_params[i][0], key) == 0)
			return default_params[i][1];
	return NULL;
}
