/*-------------------------------------------------------------------------
 *
 * train.c
 *	  nids_train: read labelled flows, preprocess, train the XGBoost
 *	  classifier, the isolation forest and the drift reference, evaluate on
 *	  a stratified hold-out split, and register a new model version.
 *
 * The source is read through a cursor in chunks, with the caller's
 * privileges, into one float32 matrix (values mapped by nids_map_value).
 * Everything allocated lives in one memory context, and every XGBoost
 * handle is owned by it: an ERROR, a cancel or a statement_timeout in the
 * middle of training frees everything and registers nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include <xgboost/c_api.h>

#include "access/relation.h"
#include "access/table.h"
#include "canonical.h"
#include "catalog/pg_type.h"
#include "drift.h"
#include "feature_map.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nids.h"
#include "portability/instr_time.h"
#include "preprocess.h"
#include "train_options.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(nids_train);

#define FETCH_ROWS	10000

typedef struct TrainData
{
	int			d;				/* candidate feature columns */
	char	  **colnames;		/* relation column names */
	char	  **features;		/* canonical feature names */
	int64		n;
	int64		cap;
	float	   *x;				/* row-major n x d */
	int32	   *y;				/* class per row */
	int			nclasses;
	char	  **classes;
	int64		skipped;		/* rows with a NULL label */
} TrainData;

static double
elapsed_since(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_DOUBLE(now);
}

/*
 * The candidate feature columns: numeric, not the label, not excluded.
 */
static void
resolve_columns(Oid relid, const char *label, const TrainOptions *opt,
				TrainData *td, char **qualified)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		has_label = false;

	*qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											RelationGetRelationName(rel));
	td->colnames = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->features = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->d = 0;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		char		norm[NAMEDATALEN * 2];
		CanonicalKind kind;
		const char *canon;
		bool		excluded = false;

		if (att->attisdropped)
			continue;
		if (strcmp(name, label) == 0)
		{
			has_label = true;
			continue;
		}
		if (!nids_numeric_type(getBaseType(att->atttypid)))
			continue;
		canonical_normalise(name, strlen(name), norm, sizeof(norm));
		canon = canonical_name(norm, &kind);
		for (int e = 0; e < opt->nexclude; e++)
			if (strcmp(opt->exclude[e], name) == 0 || strcmp(opt->exclude[e], canon) == 0)
				excluded = true;
		if (excluded)
			continue;
		for (int j = 0; j < td->d; j++)
			if (strcmp(td->features[j], canon) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("columns \"%s\" and \"%s\" have the same canonical feature name \"%s\"",
								td->colnames[j], name, canon),
						 errhint("Exclude one of them with options.exclude.")));
		td->colnames[td->d] = pstrdup(name);
		td->features[td->d] = pstrdup(canon);
		td->d++;
	}
	relation_close(rel, AccessShareLock);
	if (!has_label)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("label column \"%s\" does not exist in %s", label, *qualified)));
	if (td->d == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no numeric feature column", *qualified),
				 errhint("Features are the numeric columns other than the label and options.exclude.")));
}

static int
class_of(TrainData *td, const char *label, HTAB *classes)
{
	bool		found;
	struct
	{
		char		key[NAMEDATALEN * 4];
		int			id;
	}		   *entry;
	char		key[NAMEDATALEN * 4];

	strlcpy(key, label, sizeof(key));
	entry = hash_search(classes, key, HASH_ENTER, &found);
	if (!found)
	{
		if (td->nclasses >= NIDS_MAX_CLASSES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the label column has more than %d distinct values", NIDS_MAX_CLASSES)));
		entry->id = td->nclasses;
		td->classes[td->nclasses++] = pstrdup(label);
	}
	return entry->id;
}

/*
 * Read the source through a cursor into td's float32 matrix.
 */
static void
read_source(const char *qualified, const char *label, TrainData *td,
			MemoryContext cxt)
{
	StringInfoData sql;
	Portal		portal;
	HASHCTL		ctl;
	HTAB	   *classes;
	instr_time	start;
	double		last_notice = 0;

	INSTR_TIME_SET_CURRENT(start);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s::text", quote_identifier(label));
	for (int j = 0; j < td->d; j++)
		appendStringInfo(&sql, ", %s::float8", quote_identifier(td->colnames[j]));
	appendStringInfo(&sql, " FROM %s", qualified);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN * 4;
	ctl.entrysize = NAMEDATALEN * 4 + sizeof(int);
	ctl.hcxt = cxt;
	classes = hash_create("nids train classes", 64, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	td->classes = MemoryContextAlloc(cxt, sizeof(char *) * NIDS_MAX_CLASSES);
	td->cap = 65536;
	td->x = MemoryContextAllocHuge(cxt, sizeof(float) * td->cap * td->d);
	td->y = MemoryContextAllocHuge(cxt, sizeof(int32) * td->cap);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, sql.data, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		CHECK_FOR_INTERRUPTS();
		if (td->n + (int64) SPI_processed > td->cap)
		{
			int64		newcap = Max(td->cap + td->cap / 2, td->n + (int64) SPI_processed);

			td->x = repalloc_huge(td->x, sizeof(float) * newcap * td->d);
			td->y = repalloc_huge(td->y, sizeof(int32) * newcap);
			td->cap = newcap;
		}
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		lab = SPI_getbinval(tup, desc, 1, &isnull);
			float	   *row = td->x + td->n * td->d;
			char	   *label_text;
			MemoryContext old;

			if (isnull)
			{
				td->skipped++;
				continue;
			}
			label_text = TextDatumGetCString(lab);
			old = MemoryContextSwitchTo(cxt);
			td->y[td->n] = class_of(td, label_text, classes);
			MemoryContextSwitchTo(old);
			pfree(label_text);
			for (int j = 0; j < td->d; j++)
			{
				Datum		v = SPI_getbinval(tup, desc, j + 2, &isnull);

				row[j] = isnull ? NAN : nids_map_value(DatumGetFloat8(v));
			}
			td->n++;
		}
		SPI_freetuptable(SPI_tuptable);
		if (elapsed_since(start) - last_notice > 5.0)
		{
			last_notice = elapsed_since(start);
			ereport(NOTICE,
					(errmsg("nids_train: read %lld rows, %.0f s", (long long) td->n, last_notice)));
		}
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

/* sort classes by name and renumber the rows' classes to match */
static void
order_classes(TrainData *td)
{
	int		   *order = palloc(sizeof(int) * td->nclasses);
	int		   *remap = palloc(sizeof(int) * td->nclasses);
	char	  **sorted = palloc(sizeof(char *) * td->nclasses);

	for (int i = 0; i < td->nclasses; i++)
		order[i] = i;
	for (int i = 1; i < td->nclasses; i++)
		for (int k = i; k > 0 && strcmp(td->classes[order[k - 1]], td->classes[order[k]]) > 0; k--)
		{
			int			t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	for (int i = 0; i < td->nclasses; i++)
	{
		remap[order[i]] = i;
		sorted[i] = td->classes[order[i]];
	}
	for (int64 r = 0; r < td->n; r++)
		td->y[r] = remap[td->y[r]];
	td->classes = sorted;
}

static uint64
split_next(uint64 *s)
{
	uint64		z = (*s += UINT64CONST(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/*
 * Stratified split: per class, a seeded shuffle puts round(test_size * n_c)
 * rows in the test split, keeping at least one in training.  Rows are then
 * permuted in place so that training rows come first.
 */
static int64
stratified_split(TrainData *td, double test_size, uint64 seed)
{
	int64	   *count = palloc0(sizeof(int64) * td->nclasses);
	int64	  **members = palloc(sizeof(int64 *) * td->nclasses);
	int64	   *fill = palloc0(sizeof(int64) * td->nclasses);
	bool	   *is_test = palloc_extended(sizeof(bool) * Max(td->n, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	int64	   *perm = palloc_extended(sizeof(int64) * Max(td->n, 1), MCXT_ALLOC_HUGE);
	int64		ntrain = 0,
				k = 0;
	uint64		state = seed;
	float	   *tmp = palloc(sizeof(float) * td->d);

	for (int64 r = 0; r < td->n; r++)
		count[td->y[r]]++;
	for (int c = 0; c < td->nclasses; c++)
		members[c] = palloc_extended(sizeof(int64) * Max(count[c], 1), MCXT_ALLOC_HUGE);
	for (int64 r = 0; r < td->n; r++)
		members[td->y[r]][fill[td->y[r]]++] = r;
	for (int c = 0; c < td->nclasses; c++)
	{
		int64		ntest = (int64) floor(test_size * count[c] + 0.5);

		ntest = Min(ntest, count[c] - 1);
		/* partial Fisher-Yates: the first ntest of the shuffle are test rows */
		for (int64 i = 0; i < ntest; i++)
		{
			int64		j = i + (int64) (split_next(&state) % (uint64) (count[c] - i));
			int64		t = members[c][i];

			members[c][i] = members[c][j];
			members[c][j] = t;
			is_test[members[c][i]] = true;
		}
		pfree(members[c]);
	}
	/* perm[k] = the row that goes to position k: training rows first */
	for (int64 r = 0; r < td->n; r++)
		if (!is_test[r])
			perm[k++] = r;
	ntrain = k;
	for (int64 r = 0; r < td->n; r++)
		if (is_test[r])
			perm[k++] = r;

	/* apply the permutation in place, cycle by cycle */
	for (int64 start = 0; start < td->n; start++)
	{
		int64		cur;
		int32		ylab;

		if (perm[start] < 0 || perm[start] == start)
			continue;
		memcpy(tmp, td->x + start * td->d, sizeof(float) * td->d);
		ylab = td->y[start];
		cur = start;
		for (;;)
		{
			int64		src = perm[cur];

			perm[cur] = -1;
			if (src == start)
			{
				memcpy(td->x + cur * td->d, tmp, sizeof(float) * td->d);
				td->y[cur] = ylab;
				break;
			}
			memcpy(td->x + cur * td->d, td->x + src * td->d, sizeof(float) * td->d);
			td->y[cur] = td->y[src];
			cur = src;
		}
	}
	pfree(is_test);
	pfree(perm);
	pfree(tmp);
	return ntrain;
}

static void
dmatrix_free_callback(void *arg)
{
	DMatrixHandle *h = (DMatrixHandle *) arg;

	if (*h)
		XGDMatrixFree(*h);
	*h = NULL;
}

static void
booster_free_callback(void *arg)
{
	BoosterHandle *h = (BoosterHandle *) arg;

	if (*h)
		XGBoosterFree(*h);
	*h = NULL;
}

static void *
owned_handle(void (*fn) (void *))
{
	void	  **h = palloc0(sizeof(void *));
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	cb->func = fn;
	cb->arg = h;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return h;
}

/*
 * Batches of the training rows for XGBoost's QuantileDMatrix, which
 * quantises the data as it reads it instead of copying it: the float32
 * matrix plus one byte per value, rather than three copies.  XGBoost calls
 * these back from inside its own C++ frames, so they must never raise a
 * PostgreSQL error: a failure is recorded and reported after the call.
 */
#define TRAIN_BATCH_ROWS	65536

typedef struct TrainIter
{
	DMatrixHandle proxy;
	const float *x;
	const float *label;
	const float *weight;
	int64		n;
	int			k;
	int64		pos;
	bool		failed;
	char		array[256];
} TrainIter;

static void
train_iter_reset(DataIterHandle handle)
{
	((TrainIter *) handle)->pos = 0;
}

static int
train_iter_next(DataIterHandle handle)
{
	TrainIter  *it = (TrainIter *) handle;
	int64		rows;

	if (it->pos >= it->n || it->failed)
		return 0;
	rows = Min((int64) TRAIN_BATCH_ROWS, it->n - it->pos);
	snprintf(it->array, sizeof(it->array),
			 "{\"data\": [%lu, true], \"shape\": [%lld, %d], \"typestr\": \"<f4\", \"version\": 3}",
			 (unsigned long) (uintptr_t) (it->x + it->pos * it->k), (long long) rows, it->k);
	if (XGProxyDMatrixSetDataDense(it->proxy, it->array) != 0 ||
		XGDMatrixSetFloatInfo(it->proxy, "label", it->label + it->pos, rows) != 0 ||
		XGDMatrixSetFloatInfo(it->proxy, "weight", it->weight + it->pos, rows) != 0)
	{
		it->failed = true;
		return 0;
	}
	it->pos += rows;
	return 1;
}

static const char *
train_param(const TrainOptions *opt, const char *key, const char *dflt)
{
	for (int i = 0; i < opt->nparams; i++)
		if (strcmp(opt->param_keys[i], key) == 0)
			return opt->param_values[i];
	return dflt;
}

/*
 * Train the booster on the first ntrain rows of the k-column matrix x.
 * Returns its JSON document.
 */
/*
 * Once XGBoost holds its own (quantised) training matrix, only the test
 * rows of ours are still needed: move them to the front and give the rest
 * back, before boosting allocates its gradients.
 */
static void
release_training_rows(TrainData *td, int64 ntrain, int k)
{
	int64		ntest = td->n - ntrain;

	memmove(td->x, td->x + ntrain * k, sizeof(float) * ntest * k);
	memmove(td->y, td->y + ntrain, sizeof(int32) * ntest);
	td->x = repalloc_huge(td->x, sizeof(float) * Max(ntest, 1) * k);
	td->y = repalloc_huge(td->y, sizeof(int32) * Max(ntest, 1));
	td->n = ntest;
}

static char *
train_booster(TrainData *td, int64 ntrain, int k, int nclasses,
			  const TrainOptions *opt, StringInfo params_json, size_t *json_len)
{
	const float *x = td->x;
	const int32 *y = td->y;
	DMatrixHandle *dm = owned_handle(dmatrix_free_callback);
	BoosterHandle *bst = owned_handle(booster_free_callback);
	float	   *label = palloc_extended(sizeof(float) * Max(ntrain, 1), MCXT_ALLOC_HUGE);
	float	   *weight = palloc_extended(sizeof(float) * Max(ntrain, 1), MCXT_ALLOC_HUGE);
	int64	   *count = palloc0(sizeof(int64) * nclasses);
	int			present = 0;
	instr_time	start;
	double		last_notice = 0;
	const char *json;
	bst_ulong	len;
	char	   *copy;

	xgb_init_backend();
	for (int64 r = 0; r < ntrain; r++)
		count[y[r]]++;
	for (int c = 0; c < nclasses; c++)
		if (count[c] > 0)
			present++;
	/* class-balancing weights n / (k * n_c): the data itself is untouched */
	for (int64 r = 0; r < ntrain; r++)
	{
		label[r] = (float) y[r];
		weight[r] = (float) ((double) ntrain / ((double) present * count[y[r]]));
	}
	if (strcmp(train_param(opt, "tree_method", "hist"), "hist") == 0)
	{
		/* hist: quantise batch by batch, no copy of the matrix */
		DMatrixHandle *proxy = owned_handle(dmatrix_free_callback);
		TrainIter  *it = palloc0(sizeof(TrainIter));
		char	   *config;

		xgb_check(XGProxyDMatrixCreate(proxy), "create a proxy matrix");
		it->proxy = *proxy;
		it->x = x;
		it->label = label;
		it->weight = weight;
		it->n = ntrain;
		it->k = k;
		config = psprintf("{\"missing\": NaN, \"nthread\": %d, \"max_bin\": %s}",
						  nids_threads, train_param(opt, "max_bin", "256"));
		if (XGQuantileDMatrixCreateFromCallback(it, *proxy, NULL, train_iter_reset,
												train_iter_next, config, dm) != 0 || it->failed)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("XGBoost could not build the training matrix"),
					 errdetail("%s", xgb_last_error())));
		dmatrix_free_callback(proxy);
	}
	else
	{
		xgb_check(XGDMatrixCreateFromMat(x, ntrain, k, NAN, dm), "build the training matrix");
		xgb_check(XGDMatrixSetFloatInfo(*dm, "label", label, ntrain), "set labels");
		xgb_check(XGDMatrixSetFloatInfo(*dm, "weight", weight, ntrain), "set weights");
	}
	pfree(label);
	pfree(weight);
	release_training_rows(td, ntrain, k);

	xgb_check(XGBoosterCreate(dm, 1, bst), "create a booster");
	xgb_check(XGBoosterSetParam(*bst, "nthread", psprintf("%d", nids_threads)), "set nthread");
	xgb_check(XGBoosterSetParam(*bst, "objective", "multi:softprob"), "set the objective");
	xgb_check(XGBoosterSetParam(*bst, "num_class", psprintf("%d", nclasses)), "set num_class");
	xgb_check(XGBoosterSetParam(*bst, "seed", psprintf("%llu", (unsigned long long) (opt->seed % 2147483647))), "set seed");
	xgb_check(XGBoosterSetParam(*bst, "verbosity", "0"), "set verbosity");
	appendStringInfo(params_json, "{\"objective\": \"multi:softprob\", \"num_class\": %d, \"rounds\": %d",
					 nclasses, opt->rounds);
	for (int i = 0; i < opt->nparams; i++)
	{
		if (XGBoosterSetParam(*bst, opt->param_keys[i], opt->param_values[i]) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("XGBoost refused parameter %s = %s",
							opt->param_keys[i], opt->param_values[i]),
					 errdetail("%s", xgb_last_error())));
		appendStringInfoString(params_json, ", ");
		escape_json(params_json, opt->param_keys[i]);
		appendStringInfoString(params_json, ": ");
		escape_json(params_json, opt->param_values[i]);
	}
	appendStringInfoChar(params_json, '}');

	INSTR_TIME_SET_CURRENT(start);
	for (int it = 0; it < opt->rounds; it++)
	{
		CHECK_FOR_INTERRUPTS();
		xgb_check(XGBoosterUpdateOneIter(*bst, it, *dm), "train a boosting round");
		if (elapsed_since(start) - last_notice > 5.0)
		{
			last_notice = elapsed_since(start);
			ereport(NOTICE,
					(errmsg("nids_train: round %d of %d, %.0f s", it + 1, opt->rounds, last_notice)));
		}
	}
	/* the training matrix is not needed any more: free it now */
	dmatrix_free_callback(dm);
	xgb_check(XGBoosterSaveModelToBuffer(*bst, "{\"format\": \"json\"}", &len, &json),
			  "save the model");
	copy = palloc_extended(len + 1, MCXT_ALLOC_HUGE);
	memcpy(copy, json, len);
	copy[len] = '\0';
	*json_len = len;
	booster_free_callback(bst);
	return copy;
}

static int
compare_score(const void *a, const void *b)
{
	double		x = ((const double *) a)[0];
	double		y = ((const double *) b)[0];

	return (x > y) - (x < y);
}

/* ROC-AUC of scores for positives vs negatives (Mann-Whitney, ties halved) */
static double
roc_auc(double *pairs, int64 n)
{
	int64		npos = 0,
				nneg = 0;
	double		rank_sum = 0;

	qsort(pairs, n, sizeof(double) * 2, compare_score);
	for (int64 i = 0; i < n;)
	{
		int64		j = i;
		double		avg_rank;

		while (j < n && pairs[j * 2] == pairs[i * 2])
			j++;
		avg_rank = (i + 1 + j) / 2.0;
		for (int64 k = i; k < j; k++)
		{
			if (pairs[k * 2 + 1] > 0)
			{
				npos++;
				rank_sum += avg_rank;
			}
			else
				nneg++;
		}
		i = j;
	}
	if (npos == 0 || nneg == 0)
		return NAN;
	return (rank_sum - npos * (npos + 1) / 2.0) / ((double) npos * nneg);
}

static void
json_number(StringInfo s, double v)
{
	if (isnan(v) || isinf(v))
		appendStringInfoString(s, "null");
	else
		appendStringInfo(s, "%.6g", v);
}

static void
json_names(StringInfo s, char **names, int n)
{
	appendStringInfoChar(s, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(s, ", ");
		escape_json(s, names[i]);
	}
	appendStringInfoChar(s, ']');
}

Datum
nids_train(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *label;
	char	   *model;
	TrainOptions opt;
	MemoryContext cxt,
				old;
	TrainData	td;
	char	   *qualified;
	int64		ntrain,
				ntest;
	Preprocessing pre;
	int			k;
	char	   *booster_json;
	size_t		booster_len;
	NidsForest *forest;
	StringInfoData m;
	StringInfoData params;
	instr_time	t0;
	double		t_read,
				t_pre,
				t_train,
				t_iforest,
				t_total;
	int64	   *confusion;
	int		   *pred;
	float	   *scratch;
	float	   *margin;
	double	   *proba;
	int			benign = -1;
	int64		nbenign = 0;
	NidsForest *iforest = NULL;
	double		threshold = NAN;
	double		threshold_train = NAN;
	ModelRecord rec;
	int32		version;
	Jsonb	   *result;
	bytea	   *reference;
	char	   *error;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source, label_column and model must not be NULL")));
	relid = PG_GETARG_OID(0);
	label = NameStr(*PG_GETARG_NAME(1));
	model = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strlen(model) == 0 || strlen(model) > 63)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must have 1 to 63 characters")));
	train_options_parse(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opt);

	INSTR_TIME_SET_CURRENT(t0);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "nids train", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&td, 0, sizeof(td));

	resolve_columns(relid, label, &opt, &td, &qualified);
	read_source(qualified, label, &td, cxt);
	if (td.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no labelled rows", qualified)));
	if (td.nclasses < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %d class in column \"%s\"; at least two are needed",
						qualified, td.nclasses, label)));
	order_classes(&td);
	t_read = elapsed_since(t0);

	ntrain = stratified_split(&td, opt.test_size, opt.seed);
	ntest = td.n - ntrain;

	preprocess_select(td.x, td.n, td.d, ntrain, td.colnames, opt.correlation_threshold, &pre);
	k = pre.nkept;
	if (k == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every feature column of %s is constant", qualified)));
	preprocess_compact(td.x, td.n, td.d, &pre);
	td.x = repalloc_huge(td.x, sizeof(float) * td.n * k);
	t_pre = elapsed_since(t0) - t_read;

	/*
	 * What needs the training rows comes first: the isolation forest on the
	 * benign ones (and its threshold on them, used when the hold-out has no
	 * benign flow), and the training distribution for ks_drift.
	 */
	for (int c = 0; c < td.nclasses; c++)
		if (pg_strcasecmp(td.classes[c], opt.benign_label) == 0)
			benign = c;
	scratch = palloc(sizeof(float) * (opt.iforest.num_trees + 2 * k + 1));
	if (benign >= 0)
	{
		int64	   *rows = palloc_extended(sizeof(int64) * Max(ntrain, 1), MCXT_ALLOC_HUGE);

		for (int64 r = 0; r < ntrain; r++)
			if (td.y[r] == benign)
				rows[nbenign++] = r;
		iforest = iforest_train(td.x, k, rows, nbenign, &opt.iforest);
		threshold_train = iforest_threshold(iforest, td.x, k, rows, nbenign, opt.benign_fpr, scratch);
		pfree(rows);
	}
	{
		int64	   *rows = palloc_extended(sizeof(int64) * Max(ntrain, 1), MCXT_ALLOC_HUGE);

		for (int64 r = 0; r < ntrain; r++)
			rows[r] = r;
		reference = drift_reference_build(td.x, k, rows, ntrain, opt.seed);
		pfree(rows);
	}
	t_iforest = elapsed_since(t0) - t_read - t_pre;

	/* from here on td holds the test rows only */
	initStringInfo(&params);
	booster_json = train_booster(&td, ntrain, k, td.nclasses, &opt, &params, &booster_len);
	{
		DocFormat	format;
		DocValue   *doc = doc_parse(booster_json, booster_len, &format, &error);

		forest = doc ? forest_from_xgboost(doc, &error) : NULL;
		if (forest == NULL)
			elog(ERROR, "XGBoost's own model did not convert: %s", error);
	}
	t_train = elapsed_since(t0) - t_read - t_pre - t_iforest;

	/* hold-out evaluation with the native evaluator that will score */
	confusion = palloc0(sizeof(int64) * td.nclasses * td.nclasses);
	pred = palloc_extended(sizeof(int) * Max(ntest, 1), MCXT_ALLOC_HUGE);
	scratch = repalloc(scratch, sizeof(float) * Max(forest_scratch_size(forest),
													opt.iforest.num_trees + 2 * k + 1));
	margin = palloc(sizeof(float) * forest->num_groups);
	proba = palloc(sizeof(double) * td.nclasses);
	for (int64 r = 0; r < ntest; r++)
	{
		int			best = 0;

		forest_predict_margin(forest, td.x + r * k, margin, scratch);
		forest_transform(forest, margin, proba);
		for (int c = 1; c < td.nclasses; c++)
			if (proba[c] > proba[best])
				best = c;
		pred[r] = best;
		confusion[td.y[r] * td.nclasses + best]++;
		if ((r & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}

	initStringInfo(&m);
	appendStringInfoString(&m, "{\"source\": \"nids_train\", \"relation\": ");
	escape_json(&m, qualified);
	appendStringInfoString(&m, ", \"label_column\": ");
	escape_json(&m, label);
	appendStringInfoString(&m, ", \"feature_names\": ");
	{
		char	  **kept = palloc(sizeof(char *) * k);

		for (int j = 0; j < k; j++)
			kept[j] = td.features[pre.kept[j]];
		json_names(&m, kept, k);
	}
	appendStringInfoString(&m, ", \"class_labels\": ");
	json_names(&m, td.classes, td.nclasses);
	appendStringInfoString(&m, ", \"dropped\": [");
	for (int i = 0; i < pre.ndropped; i++)
	{
		if (i > 0)
			appendStringInfoString(&m, ", ");
		appendStringInfoString(&m, "{\"column\": ");
		escape_json(&m, td.colnames[pre.dropped[i]]);
		appendStringInfoString(&m, ", \"reason\": ");
		escape_json(&m, pre.reasons[i]);
		appendStringInfoChar(&m, '}');
	}
	appendStringInfo(&m, "], \"rows\": {\"total\": %lld, \"train\": %lld, \"test\": %lld, \"null_label_skipped\": %lld}",
					 (long long) (ntrain + ntest), (long long) ntrain, (long long) ntest, (long long) td.skipped);

	/* classifier metrics */
	{
		double		f1sum = 0;
		int			nf1 = 0;
		int64		correct = 0;

		appendStringInfoString(&m, ", \"per_class\": {");
		for (int c = 0; c < td.nclasses; c++)
		{
			int64		tp = confusion[c * td.nclasses + c],
						fp = 0,
						fn = 0,
						support = 0;
			double		precision,
						recall,
						f1;

			for (int o = 0; o < td.nclasses; o++)
			{
				support += confusion[c * td.nclasses + o];
				if (o != c)
				{
					fp += confusion[o * td.nclasses + c];
					fn += confusion[c * td.nclasses + o];
				}
			}
			correct += tp;
			precision = (tp + fp) > 0 ? (double) tp / (tp + fp) : 0.0;
			recall = (tp + fn) > 0 ? (double) tp / (tp + fn) : 0.0;
			f1 = (precision + recall) > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
			if (support > 0)
			{
				f1sum += f1;
				nf1++;
			}
			if (c > 0)
				appendStringInfoString(&m, ", ");
			escape_json(&m, td.classes[c]);
			appendStringInfoString(&m, ": {\"precision\": ");
			json_number(&m, precision);
			appendStringInfoString(&m, ", \"recall\": ");
			json_number(&m, recall);
			appendStringInfoString(&m, ", \"f1\": ");
			json_number(&m, f1);
			appendStringInfo(&m, ", \"support\": %lld}", (long long) support);
		}
		appendStringInfoString(&m, "}, \"macro_f1\": ");
		json_number(&m, nf1 > 0 ? f1sum / nf1 : NAN);
		appendStringInfoString(&m, ", \"accuracy\": ");
		json_number(&m, ntest > 0 ? (double) correct / ntest : NAN);
		appendStringInfoString(&m, ", \"confusion_matrix\": {\"labels\": ");
		json_names(&m, td.classes, td.nclasses);
		appendStringInfoString(&m, ", \"rows_are\": \"true class\", \"matrix\": [");
		for (int c = 0; c < td.nclasses; c++)
		{
			appendStringInfoString(&m, c > 0 ? ", [" : "[");
			for (int o = 0; o < td.nclasses; o++)
				appendStringInfo(&m, o > 0 ? ", %lld" : "%lld",
								 (long long) confusion[c * td.nclasses + o]);
			appendStringInfoChar(&m, ']');
		}
		appendStringInfoString(&m, "]}");
	}

	/* the novelty gate */
	if (benign >= 0)
	{
		int64		nheld = 0;
		int64	   *held;
		double	   *pairs;
		double		auc;
		int64		verdicts[NIDS_NUM_VERDICTS] = {0, 0, 0};

		/* threshold: the (1 - benign_fpr) quantile of held-out benign scores */
		pairs = palloc_extended(sizeof(double) * 2 * Max(ntest, 1), MCXT_ALLOC_HUGE);
		held = palloc_extended(sizeof(int64) * Max(ntest, 1), MCXT_ALLOC_HUGE);
		for (int64 r = 0; r < ntest; r++)
		{
			pairs[r * 2] = iforest_score(iforest, td.x + r * k, scratch);
			pairs[r * 2 + 1] = td.y[r] != benign;
			if (td.y[r] == benign)
				held[nheld++] = r;
			if ((r & 4095) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		if (nheld > 0)
			threshold = iforest_threshold(iforest, td.x, k, held, nheld, opt.benign_fpr, scratch);
		else
			threshold = threshold_train;
		for (int64 r = 0; r < ntest; r++)
			verdicts[nids_verdict(pred[r], benign, pairs[r * 2], threshold)]++;
		auc = roc_auc(pairs, ntest);
		appendStringInfo(&m, ", \"iforest\": {\"trees\": %d, \"sample_size\": %d, \"max_depth\": %d, \"scale\": \"%s\", \"benign_training_rows\": %lld, \"benign_fpr\": ",
						 iforest->num_trees, iforest->sample_size,
						 opt.iforest.max_depth > 0 ? opt.iforest.max_depth
						 : (int) ceil(log2(Max(iforest->sample_size, 2))),
						 iforest_scale_names[opt.iforest.scale],
						 (long long) nbenign);
		json_number(&m, opt.benign_fpr);
		appendStringInfoString(&m, ", \"threshold\": ");
		json_number(&m, threshold);
		appendStringInfoString(&m, ", \"roc_auc\": ");
		json_number(&m, auc);
		appendStringInfo(&m, "}, \"ensemble\": {\"attack\": %lld, \"anomaly\": %lld, \"benign\": %lld}",
						 (long long) verdicts[NIDS_VERDICT_ATTACK],
						 (long long) verdicts[NIDS_VERDICT_ANOMALY],
						 (long long) verdicts[NIDS_VERDICT_BENIGN]);
	}
	else
	{
		appendStringInfoString(&m, ", \"iforest\": null, \"iforest_note\": ");
		escape_json(&m, psprintf("no class matches benign_label \"%s\"; the model has no isolation forest",
								 opt.benign_label));
	}
	t_total = elapsed_since(t0);
	appendStringInfoString(&m, ", \"params\": ");
	appendStringInfoString(&m, params.data);
	appendStringInfo(&m, ", \"seed\": %llu, \"test_size\": ", (unsigned long long) opt.seed);
	json_number(&m, opt.test_size);
	appendStringInfoString(&m, ", \"correlation_threshold\": ");
	json_number(&m, opt.correlation_threshold);
	appendStringInfoString(&m, ", \"timings\": {\"read_s\": ");
	json_number(&m, t_read);
	appendStringInfoString(&m, ", \"preprocess_s\": ");
	json_number(&m, t_pre);
	appendStringInfoString(&m, ", \"train_s\": ");
	json_number(&m, t_train);
	appendStringInfoString(&m, ", \"iforest_and_reference_s\": ");
	json_number(&m, t_iforest);
	appendStringInfoString(&m, ", \"total_s\": ");
	json_number(&m, t_total);
	appendStringInfoString(&m, "}}");

	/* register */
	{
		Datum	   *fd = palloc(sizeof(Datum) * k);
		Datum	   *cd = palloc(sizeof(Datum) * td.nclasses);
		bytea	   *booster = palloc_extended(VARHDRSZ + booster_len, MCXT_ALLOC_HUGE);

		for (int j = 0; j < k; j++)
			fd[j] = CStringGetTextDatum(td.features[pre.kept[j]]);
		for (int c = 0; c < td.nclasses; c++)
			cd[c] = CStringGetTextDatum(td.classes[c]);
		SET_VARSIZE(booster, VARHDRSZ + booster_len);
		memcpy(VARDATA(booster), booster_json, booster_len);
		memset(&rec, 0, sizeof(rec));
		rec.name = model;
		rec.booster = booster;
		rec.native = forest_serialize(forest);
		rec.feature_names = construct_array(fd, k, TEXTOID, -1, false, TYPALIGN_INT);
		rec.class_labels = construct_array(cd, td.nclasses, TEXTOID, -1, false, TYPALIGN_INT);
		rec.metrics_json = m.data;
		rec.deploy = opt.deploy;
		rec.iforest = iforest ? forest_serialize(iforest) : NULL;
		rec.anomaly_threshold = threshold;
		rec.reference = reference;
		rec.benign_label = opt.benign_label;
		version = catalog_register(&rec);
	}

	MemoryContextSwitchTo(old);
	{
		char	   *text = psprintf("%s", m.data);
		char	   *withversion;

		/* the registered metrics, with the version, are the result */
		text[strlen(text) - 1] = '\0';
		withversion = psprintf("%s, \"version\": %d}", text, version);
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(withversion)));
	}
	MemoryContextDelete(cxt);
	PG_RETURN_JSONB_P(result);
}
