/*-------------------------------------------------------------------------
 *
 * preprocess.h
 *	  Deterministic feature selection before training.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_PREPROCESS_H
#define NIDS_PREPROCESS_H

#include "postgres.h"

#define NIDS_CORR_SAMPLE	100000

typedef struct Preprocessing
{
	int			nkept;
	int		   *kept;			/* column indices, in column order */
	int			ndropped;
	int		   *dropped;		/* column indices, in column order */
	char	  **reasons;		/* why each was dropped */
} Preprocessing;

extern void preprocess_select(const float *x, int64 n, int d, int64 ntrain,
							  char **colnames, double threshold,
							  Preprocessing *out);
extern void preprocess_compact(float *x, int64 n, int d, const Preprocessing *pre);

#endif							/* NIDS_PREPROCESS_H */
