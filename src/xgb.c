/*-------------------------------------------------------------------------
 *
 * xgb.c
 *	  The thin wrapper around XGBoost's C API.
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

#include <xgboost/c_api.h>

#include "nids.h"
#include "utils/memutils.h"

static bool xgb_initialised = false;

/* XGBoost's last error, without the stack trace it appends */
const char *
xgb_last_error(void)
{
	char	   *msg = pstrdup(XGBGetLastError());
	char	   *trace = strstr(msg, "\nStack trace");

	if (trace != NULL)
		*trace = '\0';
	return msg;
}

void
xgb_check(int rc, const char *what)
{
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("XGBoost could not %s", what),
				 errdetail("%s", xgb_last_error())));
}

void
xgb_init_backend(void)
{
	if (xgb_initialised)
		return;
	xgb_check(XGBSetGlobalConfig("{\"verbosity\": 0}"), "set its global configuration");
	xgb_initialised = true;
}

static void
xgb_free_callback(void *arg)
{
	BoosterHandle *handle = (BoosterHandle *) arg;

	if (*handle != NULL)
		XGBoosterFree(*handle);
	*handle = NULL;
}

/*
 * A booster owned by CurrentMemoryContext: freed when that context is reset
 * or deleted, on success, error and cancel alike.
 */
static BoosterHandle *
xgb_owned_booster(void)
{
	BoosterHandle *handle = palloc0(sizeof(BoosterHandle));
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	xgb_init_backend();
	cb->func = xgb_free_callback;
	cb->arg = handle;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	xgb_check(XGBoosterCreate(NULL, 0, handle), "create a booster");
	xgb_check(XGBoosterSetParam(*handle, "nthread",
								psprintf("%d", nids_threads)), "set nthread");
	return handle;
}

XgbBooster
xgb_load(const char *data, size_t len)
{
	BoosterHandle *handle = xgb_owned_booster();

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
