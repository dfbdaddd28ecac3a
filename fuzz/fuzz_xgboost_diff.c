/*
 * fuzz/fuzz_xgboost_diff.c: nids and XGBoost must read the same model.
 * Every document nids accepts (parsed and converted) is loaded by XGBoost's
 * own loader and both predict a few vectors (missing values included); the
 * harness aborts when XGBoost refuses it, crashes on it, or predicts
 * otherwise.  FUZZ_LENIENT=1 counts the refusals instead (to survey them),
 * FUZZ_VERBOSE=1 prints XGBoost's reason and keeps the document in /tmp.
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>

#include <xgboost/c_api.h>

#include "model.h"

/* the C library's, not libpgport's (not linked here) */
#undef snprintf
#undef fprintf

extern void fuzz_reset(void);

#define NVEC 4

static long accepted = 0;
static long xgb_refused = 0;

static void
report(void)
{
	fprintf(stderr, "xgboost_diff: nids accepted %ld documents, XGBoost refused %ld of them\n",
			accepted, xgb_refused);
}

/* nids' probabilities, in the layout xgb_predict_proba uses */
static void
nids_proba(const NidsForest *f, const float *x, double *proba, float *margin_out)
{
	float	   *margin = palloc(sizeof(float) * f->num_groups);
	float	   *scratch = palloc(sizeof(float) * forest_scratch_size(f));

	forest_predict_margin(f, x, margin, scratch);
	forest_transform(f, margin, proba);
	memcpy(margin_out, margin, sizeof(float) * f->num_groups);
}

static bool
newer_than_installed(const DocValue *doc)
{
	const DocValue *v = doc_get(doc, "version");
	int			major,
				minor,
				patch;

	XGBoostVersion(&major, &minor, &patch);
	return v != NULL && v->type == DOC_NUMARRAY && v->len >= 1 && v->u.numbers[0] > major;
}

static bool
close_enough(double a, double b)
{
	return fabs(a - b) <= 1e-5 * Max(1.0, Max(fabs(a), fabs(b))) ||
		(isnan(a) && isnan(b));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool registered = false;
	DocFormat	format;
	char	   *error = NULL;
	DocValue   *doc;
	NidsForest *f = NULL;
	BoosterHandle bst;

	if (!registered)
	{
		atexit(report);
		XGBSetGlobalConfig("{\"verbosity\": 0}");
		registered = true;
	}
	doc = doc_parse((const char *) data, size, &format, &error);
	if (doc != NULL)
		f = forest_from_xgboost(doc, &error);
	if (f == NULL)
	{
		fuzz_reset();
		return 0;
	}
	accepted++;
	if (XGBoosterCreate(NULL, 0, &bst) != 0)
		abort();
	XGBoosterSetParam(bst, "nthread", "1");
	if (XGBoosterLoadModelFromBuffer(bst, data, size) != 0)
	{
		if (getenv("FUZZ_VERBOSE"))
		{
			const char *e = XGBGetLastError();
			const char *nl = strchr(e, '\n');

			char		path[64];
			FILE	   *out;

			fprintf(stderr, "refused by XGBoost (/tmp/refused-%ld): %.*s\n", xgb_refused, nl ? (int) (nl - e) : (int) strlen(e), e);
			snprintf(path, sizeof(path), "/tmp/refused-%ld", xgb_refused);
			if ((out = fopen(path, "wb")) != NULL)
			{
				fwrite(data, 1, size, out);
				fclose(out);
			}
		}
		xgb_refused++;
		/* the installed XGBoost (1.7) is no oracle for a 2.x document */
		if (getenv("FUZZ_LENIENT") == NULL && !newer_than_installed(doc))
			abort();			/* nids accepted what XGBoost refuses */
		XGBoosterFree(bst);
		fuzz_reset();
		return 0;
	}
	{
		int			nf = f->num_features;
		int			outputs = forest_num_outputs(f);
		bool		softmax = f->objective == NIDS_OBJ_SOFTMAX;
		float	   *x = palloc(sizeof(float) * NVEC * nf);
		char		array[256];
		const bst_ulong *shape;
		bst_ulong	dim;
		const float *result;

		for (int r = 0; r < NVEC; r++)
			for (int j = 0; j < nf; j++)
				x[r * nf + j] = ((j + r) % 4 == 0) ? NAN : (float) ((j * 7919 + r * 104729) % 2001 - 1000) / 10.0f;
		snprintf(array, sizeof(array),
				 "{\"data\": [%lu, true], \"shape\": [%d, %d], \"typestr\": \"<f4\", \"version\": 3}",
				 (unsigned long) (uintptr_t) x, NVEC, nf);
		if (XGBoosterPredictFromDense(bst, array,
									  softmax ?
									  "{\"cache_id\": 0, \"type\": 1, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}" :
									  "{\"cache_id\": 0, \"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}",
									  NULL, &shape, &dim, &result) != 0)
		{
			/* XGBoost loaded it but cannot predict with it: nids can */
			fprintf(stderr, "XGBoost loaded a document but could not predict: %s\n", XGBGetLastError());
			abort();
		}
		for (int r = 0; r < NVEC; r++)
		{
			double	   *proba = palloc(sizeof(double) * Max(outputs, 2));
			float	   *margin = palloc(sizeof(float) * f->num_groups);

			nids_proba(f, x + r * nf, proba, margin);
			{
				/* the class alone (bounds, chunks) is the whole sum's class */
				float	   *scratch = palloc(sizeof(float) * forest_scratch_size(f));
				double	   *p2 = palloc(sizeof(double) * Max(outputs, 2));
				float	   *m2 = palloc(sizeof(float) * f->num_groups);
				int			full = forest_predict_class(f, outputs, x + r * nf, m2, p2, scratch);

				if (forest_predict_label(f, outputs, x + r * nf, m2, p2, scratch) != full)
					abort();
			}
			for (int g = 0; g < (f->objective == NIDS_OBJ_LOGISTIC ? 1 : f->num_groups); g++)
			{
				double		theirs = result[(size_t) r * f->num_groups + g];
				double		ours = softmax ? margin[g]
					: (f->objective == NIDS_OBJ_LOGISTIC ? proba[1] : proba[g]);

				if (!close_enough(ours, theirs))
				{
					fprintf(stderr, "row %d output %d: nids %.9g, XGBoost %.9g\n", r, g, ours, theirs);
					abort();
				}
			}
		}
	}
	XGBoosterFree(bst);
	fuzz_reset();
	return 0;
}
