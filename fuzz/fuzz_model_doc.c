/*
 * libFuzzer harness: XGBoost JSON/UBJSON bytes -> document -> native forest
 * -> serialized -> validated again -> one prediction; and back to JSON.
 * The path nids_import_xgboost and nids_export_xgboost take with user bytes.
 */
#include "postgres.h"

#include <math.h>

#include "model.h"

extern void fuzz_reset(void);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DocFormat	format;
	char	   *error = NULL;
	DocValue   *doc = doc_parse((const char *) data, size, &format, &error);

	if (doc != NULL)
	{
		NidsForest *f = forest_from_xgboost(doc, &error);
		size_t		len;

		(void) doc_to_json(doc, &len);
		if (f != NULL)
		{
			bytea	   *bytes = forest_serialize(f);
			NidsForest *g = forest_deserialize(VARDATA(bytes), VARSIZE(bytes) - VARHDRSZ, &error);

			if (g == NULL)
				abort();		/* what we convert must validate */
			{
				float	   *x = palloc(sizeof(float) * g->num_features);
				float	   *margin = palloc(sizeof(float) * g->num_groups);
				float	   *scratch = palloc(sizeof(float) * forest_scratch_size(g));
				double	   *proba = palloc(sizeof(double) * forest_num_outputs(g));

				for (int j = 0; j < g->num_features; j++)
					x[j] = (j % 3 == 0) ? NAN : (float) j;
				forest_predict_margin(g, x, margin, scratch);
				forest_transform(g, margin, proba);
			}
		}
	}
	fuzz_reset();
	return 0;
}
