/*-------------------------------------------------------------------------
 *
 * explain.h
 *	  Explanations (explain.c, explain_verdict.c): the exact TreeSHAP
 *	  contributions of a class, the novelty gate's terms, and the verdict
 *	  explained in an analyst's terms against the benign reference.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_EXPLAIN_H
#define NIDS_EXPLAIN_H

#include "postgres.h"

#include "scoring.h"
#include "utils/jsonb.h"

/* one line of nids_explain_verdict */
typedef struct VerdictReason
{
	int			feature;
	double		value;			/* NaN: missing */
	double		benign_median;	/* NaN: no benign reference */
	double		benign_percentile;
	double		weight;
	char	   *reason;
} VerdictReason;

extern ScoreState *explain_args(FunctionCallInfo fcinfo, double **raw);
extern double *explain_contributions(ScoreState *st, int c);
extern double *explain_gate_terms(ScoreState *st);
extern int	explain_verdict(ScoreState *st, const double *raw, int top,
							VerdictReason *out, NidsVerdict *verdict);
extern Jsonb *explain_verdict_jsonb(ScoreState *st, const double *raw, int top);

#endif							/* NIDS_EXPLAIN_H */
