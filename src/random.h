/*-------------------------------------------------------------------------
 *
 * random.h
 *	  The one seeded generator (random.c): every random choice nids makes,
 *	  in training, the isolation forest, drift references and health.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_RANDOM_H
#define NIDS_RANDOM_H

#include "postgres.h"

typedef struct NidsRandom
{
	uint64		state;
} NidsRandom;

extern void nids_random_init(NidsRandom *r, uint64 seed);
extern uint64 nids_random_next(NidsRandom *r);
extern double nids_random_unit(NidsRandom *r);
extern uint64 nids_random_below(NidsRandom *r, uint64 n);
extern int64 *nids_random_permutation(int64 n, uint64 seed);

#endif							/* NIDS_RANDOM_H */
