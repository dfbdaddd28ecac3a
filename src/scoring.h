/*-------------------------------------------------------------------------
 *
 * scoring.h
 *	  Per-call-site scoring state, shared by the scoring functions and the
 *	  trigger.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_SCORING_H
#define NIDS_SCORING_H

#include "nids.h"
#include "access/tupdesc.h"

typedef struct ScoreState
{
	FnModelCache cache;			/* must be first */
	NidsModel  *model;			/* the model the buffers are sized for */
	float	   *x;
	float	   *margin;
	float	   *scratch;
	double	   *proba;
	int			cap_features;
	int			cap_groups;
	int			cap_trees;
	int			cap_classes;
	TupleDesc	verdict_desc;
} ScoreState;

extern ScoreState *score_state(FunctionCallInfo fcinfo, text *model_name);
extern int	score_classify(ScoreState *st);
extern double score_anomaly(ScoreState *st);
extern HeapTupleHeader score_verdict(FunctionCallInfo fcinfo, ScoreState *st);

#endif							/* NIDS_SCORING_H */
