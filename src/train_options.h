/*-------------------------------------------------------------------------
 *
 * train_options.h
 *	  The options of nids_train, parsed and validated.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_TRAIN_OPTIONS_H
#define NIDS_TRAIN_OPTIONS_H

#include "nids.h"
#include "utils/jsonb.h"

#define NIDS_MAX_CLASSES	1000
#define NIDS_MAX_PARAMS		48

typedef struct TrainOptions
{
	char	  **exclude;
	int			nexclude;
	double		correlation_threshold;
	double		test_size;
	uint64		seed;
	bool		deploy;
	char	   *benign_label;
	int			rounds;
	int			nparams;
	char	   *param_keys[NIDS_MAX_PARAMS];
	char	   *param_values[NIDS_MAX_PARAMS];
	IForestParams iforest;
	double		benign_fpr;
} TrainOptions;

extern void train_options_parse(Jsonb *options, TrainOptions *opt);

#endif							/* NIDS_TRAIN_OPTIONS_H */
