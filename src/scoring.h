/*-------------------------------------------------------------------------
 *
 * scoring.h
 *	  The scoring state shared by the scoring functions (scoring.c) and the
 *	  trigger (trigger.c): a model and buffers large enough for it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_SCORING_H
#define NIDS_SCORING_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "model.h"

typedef struct ScoreState
{
	FnModelCache cache;			/* finds the model per call */
	MemoryContext mcxt;			/* where the buffers live */
	NidsModel  *model;			/* the model the buffers are sized for */
	float	   *x;
	float	   *margin;
	float	   *scratch;
	double	   *proba;
	float	   *z;				/* the novelty gate's space */
	int			cap_features;
	int			cap_groups;
	int			cap_trees;
	int			cap_classes;
	int			cap_z;
	TupleDesc	verdict_desc;
} ScoreState;

extern void score_prepare(ScoreState *st, MemoryContext mcxt, text *model_name, int ready);
extern void score_state_for(ScoreState *st, NidsModel *model, MemoryContext mcxt);
extern int	score_tau_label(const NidsModel *model, const double *proba, int best);
extern int	score_classify(ScoreState *st);
extern int	score_label(ScoreState *st);
extern double score_anomaly(ScoreState *st);
extern double score_novelty(ScoreState *st, double *anomaly, bool *novel);
extern HeapTupleHeader score_verdict(FunctionCallInfo fcinfo, ScoreState *st);
extern NidsVerdict score_verdict_only(ScoreState *st);
extern void score_init_srf(FunctionCallInfo fcinfo);

#endif							/* NIDS_SCORING_H */
