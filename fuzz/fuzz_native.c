/*
 * libFuzzer harness: native forest bytes (a model row's "native" and
 * "iforest" columns, which a superuser could edit) -> validation -> walks
 * with both evaluators, which must give the same bits, the class alone
 * (forest_predict_label) against the class of the whole sum, and the exact
 * TreeSHAP of every group where the form stores covers (any depth
 * validation lets through must explain within its path buffers and
 * without recursion trouble), from the per-leaf tables and from the walk:
 * the same bits again.
 */
#include "postgres.h"

#include <math.h>

#include "model.h"

extern void fuzz_reset(void);
extern bool nids_compact_evaluator;
extern bool nids_explain_tables;
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *error = NULL;
	NidsForest *f = forest_deserialize((const char *) data, size, &error);

	if (f != NULL)
	{
		float	   *x = palloc(sizeof(float) * f->num_features);
		float	   *margin = palloc(sizeof(float) * f->num_groups);
		float	   *scratch = palloc(sizeof(float) * forest_scratch_size(f));
		double	   *proba = palloc(sizeof(double) * Max(forest_num_outputs(f), 2));

		for (int j = 0; j < f->num_features; j++)
			x[j] = (j % 2 == 0) ? NAN : (float) (j * 1000 - 5000);
		float	   *margin2 = palloc(sizeof(float) * f->num_groups);

		for (int pass = 0; pass < 2; pass++)
		{
			nids_compact_evaluator = (pass == 0);
			forest_predict_margin(f, x, pass == 0 ? margin : margin2, scratch);
			if (f->objective != NIDS_OBJ_ISOLATION)
				forest_transform(f, margin, proba);
		}
		nids_compact_evaluator = true;
		if (memcmp(margin, margin2, sizeof(float) * f->num_groups) != 0)
			abort();			/* the two walks must reach the same leaves */
		if (f->objective != NIDS_OBJ_ISOLATION)
		{
			int			n = forest_num_outputs(f);
			int			full = forest_predict_class(f, n, x, margin, proba, scratch);

			/* stopping once the bounds settle the class: the same class */
			if (forest_predict_label(f, n, x, margin, proba, scratch) != full)
				abort();
		}
		if (f->objective == NIDS_OBJ_ISOLATION && f->num_trees > 0 && f->sample_size > 0)
			(void) iforest_score(f, x, scratch);
		if (f->objective != NIDS_OBJ_ISOLATION && f->cover != NULL)
		{
			double	   *phi = palloc(sizeof(double) * (f->num_features + 1));
			double	   *phi2 = palloc(sizeof(double) * (f->num_features + 1));

			for (int t = 0; t < f->num_trees; t++)
				if (f->tree_depth[t] > NIDS_MAX_TREE_DEPTH)
					abort();
			for (int g = 0; g < f->num_groups; g++)
			{
				nids_explain_tables = true;
				(void) forest_contributions(f, NULL, x, g, phi);
				nids_explain_tables = false;
				(void) forest_contributions(f, NULL, x, g, phi2);
				nids_explain_tables = true;
				/* NaN leaves give NaN either way: compare the bits */
				if (memcmp(phi, phi2, sizeof(double) * (f->num_features + 1)) != 0)
					abort();
			}
		}
	}
	fuzz_reset();
	return 0;
}
