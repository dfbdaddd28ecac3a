/*-------------------------------------------------------------------------
 *
 * xgb.c
 *	  The boundary with XGBoost: every call into its C API is in this file
 *	  (training a booster, loading one, predicting with it).
 *
 * XGBoost is only ever called from a backend, never from the postmaster
 * (libgomp does not survive fork): nothing here runs at library load.
 * Every return code is checked and XGBoost's own message goes into the
 * ERROR's detail.  Output buffers belong to the booster and are copied out
 * before the next call.  A booster handle is always owned by a memory
 * context, whose reset callback frees it, so an ERROR or a cancel in the
 * middle of anything leaks no handle.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include <xgboost/c_api.h>

#include "miscadmin.h"
#include "nids.h"
#include "portability/instr_time.h"
#include "utils/memutils.h"
#include "xgb.h"

static bool xgb_initialised = false;

static const char *xgb_last_error(void);
static void xgb_check(int rc, const char *what);
static void xgb_init_backend(void);

/* XGBoost's last error, without the stack trace it appends */
static const char *
xgb_last_error(void)
{
	char	   *msg = pstrdup(XGBGetLastError());
	char	   *trace = strstr(msg, "\nStack trace");

	if (trace != NULL)
		*trace = '\0';
	return msg;
}

static void
xgb_check(int rc, const char *what)
{
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("XGBoost could not %s", what),
				 errdetail("%s", xgb_last_error())));
}

static void
xgb_init_backend(void)
{
	if (xgb_initialised)
		return;
	xgb_check(XGBSetGlobalConfig("{\"verbosity\": 0}"), "set its global configuration");
	xgb_initialised = true;
}

static void
booster_free_callback(void *arg)
{
	BoosterHandle *handle = (BoosterHandle *) arg;

	if (*handle != NULL)
		XGBoosterFree(*handle);
	*handle = NULL;
}

static void
dmatrix_free_callback(void *arg)
{
	DMatrixHandle *handle = (DMatrixHandle *) arg;

	if (*handle != NULL)
		XGDMatrixFree(*handle);
	*handle = NULL;
}

/*
 * A handle slot owned by CurrentMemoryContext: free_fn frees what it holds
 * when that context is reset or deleted, on success, error and cancel
 * alike.  Calling free_fn on the slot earlier is safe.
 */
static void **
owned_handle(void (*free_fn) (void *))
{
	void	  **handle = palloc0(sizeof(void *));
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	xgb_init_backend();
	cb->func = free_fn;
	cb->arg = handle;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return handle;
}

/* a booster owned by CurrentMemoryContext, on nids.threads threads */
static BoosterHandle *
xgb_owned_booster(const DMatrixHandle *train)
{
	BoosterHandle *handle = (BoosterHandle *) owned_handle(booster_free_callback);

	xgb_check(XGBoosterCreate(train, train ? 1 : 0, handle), "create a booster");
	xgb_check(XGBoosterSetParam(*handle, "nthread",
								psprintf("%d", nids_threads)), "set nthread");
	return handle;
}

XgbBooster
xgb_load(const char *data, size_t len)
{
	BoosterHandle *handle = xgb_owned_booster(NULL);

	if (XGBoosterLoadModelFromBuffer(*handle, data, len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("XGBoost could not load the model bytes"),
				 errdetail("%s", xgb_last_error())));
	return (XgbBooster) handle;
}

/*
 * Class probabilities for nrow dense rows x through XGBoost's own
 * predictor, in the same layout forest_transform produces.
 */
void
xgb_predict_proba(XgbBooster booster, const NidsForest *forest, const float *x,
				  int nrow, double *proba)
{
	BoosterHandle handle = *(BoosterHandle *) booster;
	char	   *array;
	const bst_ulong *shape;
	bst_ulong	dim;
	const float *result;
	int			outputs = forest_num_outputs(forest);
	bool		softmax = forest->objective == NIDS_OBJ_SOFTMAX;

	array = psprintf("{\"data\": [%lu, true], \"shape\": [%d, %d], \"typestr\": \"<f4\", \"version\": 3}",
					 (unsigned long) (uintptr_t) x, nrow, forest->num_features);
	/* type 1 is the raw margin: multi:softmax's own output is a class index */
	xgb_check(XGBoosterPredictFromDense(handle, array,
										softmax ?
										"{\"cache_id\": 0, \"type\": 1, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}" :
										"{\"cache_id\": 0, \"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}",
										NULL, &shape, &dim, &result),
			  "predict");
	for (int r = 0; r < nrow; r++)
	{
		if (forest->objective == NIDS_OBJ_LOGISTIC)
		{
			proba[r * 2] = 1.0 - (double) result[r];
			proba[r * 2 + 1] = result[r];
		}
		else if (softmax)
			forest_transform(forest, result + (size_t) r * outputs, proba + (size_t) r * outputs);
		else
			for (int g = 0; g < outputs; g++)
				proba[(size_t) r * outputs + g] = result[(size_t) r * outputs + g];
	}
	pfree(array);
}

/*
 * XGBoost's own TreeSHAP (pred_contribs) of one row for output group g
 * into phi[num_features + 1], the bias last: what nids.predictor = xgboost
 * makes nids_contributions return, to check nids' own against it.
 */
void
xgb_predict_contribs(XgbBooster booster, const NidsForest *forest, const float *x,
					 int g, double *phi)
{
	BoosterHandle handle = *(BoosterHandle *) booster;
	DMatrixHandle dmat;
	const bst_ulong *shape;
	bst_ulong	dim;
	const float *result;
	int			nf = forest->num_features;

	xgb_check(XGDMatrixCreateFromMat(x, 1, nf, NAN, &dmat), "create a matrix");
	if (XGBoosterPredictFromDMatrix(handle, dmat,
									"{\"type\": 2, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false}",
									&shape, &dim, &result) != 0)
	{
		char	   *msg = pstrdup(XGBGetLastError());

		XGDMatrixFree(dmat);
		elog(ERROR, "XGBoost could not predict contributions: %s", msg);
	}
	/* (groups, features + 1) for more than one group, else (features + 1) */
	for (int j = 0; j <= nf; j++)
		phi[j] = result[(size_t) (forest->num_groups > 1 ? g : 0) * (nf + 1) + j];
	XGDMatrixFree(dmat);
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

/* hist: quantise batch by batch into dm, no copy of the matrix */
static void
quantile_matrix(DMatrixHandle *dm, const float *x, const float *label,
				const float *weight, int64 ntrain, int k, const XgbTrainSpec *spec)
{
	DMatrixHandle *proxy = (DMatrixHandle *) owned_handle(dmatrix_free_callback);
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
					  nids_threads, spec->max_bin);
	if (XGQuantileDMatrixCreateFromCallback(it, *proxy, NULL, train_iter_reset,
											train_iter_next, config, dm) != 0 || it->failed)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("XGBoost could not build the training matrix"),
				 errdetail("%s", xgb_last_error())));
	dmatrix_free_callback(proxy);
	pfree(it);
}

/*
 * The training matrix of the first ntrain rows of x (k columns), labels y,
 * with class-balancing weights n / (classes present * n_c), each times
 * the row's weight within its class where spec->row_weight gives one: the
 * data itself is untouched.  spec->matrix_built is called once it is built.
 */
static DMatrixHandle *
training_matrix(const float *x, const int32 *y, int64 ntrain, int k,
				const XgbTrainSpec *spec)
{
	DMatrixHandle *dm = (DMatrixHandle *) owned_handle(dmatrix_free_callback);
	float	   *label = palloc_extended(sizeof(float) * Max(ntrain, 1), MCXT_ALLOC_HUGE);
	float	   *weight = palloc_extended(sizeof(float) * Max(ntrain, 1), MCXT_ALLOC_HUGE);
	int64	   *count = palloc0(sizeof(int64) * spec->nclasses);
	int			present = 0;

	for (int64 r = 0; r < ntrain; r++)
		count[y[r]]++;
	for (int c = 0; c < spec->nclasses; c++)
		if (count[c] > 0)
			present++;
	for (int64 r = 0; r < ntrain; r++)
	{
		label[r] = (float) y[r];
		weight[r] = (float) ((double) ntrain / ((double) present * count[y[r]]));
		if (spec->row_weight)
			weight[r] *= spec->row_weight[r];
	}
	if (strcmp(spec->tree_method, "hist") == 0)
		quantile_matrix(dm, x, label, weight, ntrain, k, spec);
	else
	{
		xgb_check(XGDMatrixCreateFromMat(x, ntrain, k, NAN, dm), "build the training matrix");
		xgb_check(XGDMatrixSetFloatInfo(*dm, "label", label, ntrain), "set labels");
		xgb_check(XGDMatrixSetFloatInfo(*dm, "weight", weight, ntrain), "set weights");
	}
	pfree(label);
	pfree(weight);
	pfree(count);
	if (spec->matrix_built)
		spec->matrix_built(spec->matrix_built_arg);
	return dm;
}

static void
set_training_params(BoosterHandle bst, const XgbTrainSpec *spec)
{
	xgb_check(XGBoosterSetParam(bst, "objective", "multi:softprob"), "set the objective");
	xgb_check(XGBoosterSetParam(bst, "num_class", psprintf("%d", spec->nclasses)), "set num_class");
	xgb_check(XGBoosterSetParam(bst, "seed", psprintf("%llu", (unsigned long long) (spec->seed % 2147483647))), "set seed");
	xgb_check(XGBoosterSetParam(bst, "verbosity", "0"), "set verbosity");
	for (int i = 0; i < spec->nparams; i++)
		if (XGBoosterSetParam(bst, spec->param_keys[i], spec->param_values[i]) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("XGBoost refused parameter %s = %s",
							spec->param_keys[i], spec->param_values[i]),
					 errdetail("%s", xgb_last_error())));
}

/*
 * Train the booster on the first ntrain rows of the k-column matrix x
 * with labels y; returns XGBoost's JSON document, copied out of the
 * booster.
 */
char *
xgb_train(const float *x, const int32 *y, int64 ntrain, int k,
		  const XgbTrainSpec *spec, size_t *json_len)
{
	DMatrixHandle *dm = training_matrix(x, y, ntrain, k, spec);
	BoosterHandle *bst = xgb_owned_booster(dm);
	instr_time	start;
	double		last_notice = 0;
	const char *json;
	bst_ulong	len;
	char	   *copy;

	set_training_params(*bst, spec);
	INSTR_TIME_SET_CURRENT(start);
	for (int it = 0; it < spec->rounds; it++)
	{
		instr_time	now;
		double		elapsed;

		CHECK_FOR_INTERRUPTS();
		xgb_check(XGBoosterUpdateOneIter(*bst, it, *dm), "train a boosting round");
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		elapsed = INSTR_TIME_GET_DOUBLE(now);
		if (elapsed - last_notice > 5.0)
		{
			last_notice = elapsed;
			ereport(NOTICE,
					(errmsg("nids_train: round %d of %d, %.0f s", it + 1, spec->rounds, last_notice)));
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
