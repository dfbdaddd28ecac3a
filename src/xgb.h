/*-------------------------------------------------------------------------
 *
 * xgb.h
 *	  The XGBoost boundary (xgb.c): no other file calls XGBoost's C API.
 *	  Loading and predicting serve scoring and explanations; training takes
 *	  a plain matrix and a parameter list, no training types.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_XGB_H
#define NIDS_XGB_H

#include "postgres.h"

#include "model.h"

/* what xgb_train needs, and nothing of the training's own state */
typedef struct XgbTrainSpec
{
	int			nclasses;
	int			rounds;
	uint64		seed;
	int			nparams;
	char	  *const *param_keys;
	char	  *const *param_values;
	const char *tree_method;
	const char *max_bin;
	const float *row_weight;	/* each row's weight within its class (NULL: 1) */
	/* called once the training matrix is built, to free the rows early */
	void		(*matrix_built) (void *arg);
	void	   *matrix_built_arg;
} XgbTrainSpec;

extern XgbBooster xgb_load(const char *data, size_t len);
extern void xgb_predict_proba(XgbBooster booster, const NidsForest *forest,
							  const float *x, int nrow, double *proba);
extern void xgb_predict_contribs(XgbBooster booster, const NidsForest *forest,
								 const float *x, int g, double *phi);
extern char *xgb_train(const float *x, const int32 *y, int64 ntrain, int k,
					   const XgbTrainSpec *spec, size_t *json_len);

#endif							/* NIDS_XGB_H */
