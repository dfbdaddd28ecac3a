/*-------------------------------------------------------------------------
 *
 * random.c
 *	  The one seeded generator: splitmix64 (Steele, Lea and Flood 2014).
 *
 * Every random choice nids makes goes through it: the stratified split,
 * the isolation forest's samples and cuts, nids_attach_benign's hold-out
 * and the drift reference's sample.  Seeded by options.seed, so a training
 * is reproducible bit for bit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "random.h"

void
nids_random_init(NidsRandom *r, uint64 seed)
{
	r->state = seed;
}

uint64
nids_random_next(NidsRandom *r)
{
	uint64		z = (r->state += UINT64CONST(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* uniform in [0, 1), 53 bits */
double
nids_random_unit(NidsRandom *r)
{
	return (nids_random_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform in [0, n), n > 0 */
uint64
nids_random_below(NidsRandom *r, uint64 n)
{
	return (uint64) (nids_random_unit(r) * (double) n) % n;
}

/* a seeded permutation of 0 .. n-1 (Fisher-Yates), palloc'd */
int64 *
nids_random_permutation(int64 n, uint64 seed)
{
	int64	   *order = palloc_extended(sizeof(int64) * Max(n, 1), MCXT_ALLOC_HUGE);
	NidsRandom	rng;

	nids_random_init(&rng, seed);
	for (int64 i = 0; i < n; i++)
		order[i] = i;
	for (int64 i = n - 1; i > 0; i--)
	{
		int64		j = (int64) nids_random_below(&rng, (uint64) (i + 1));
		int64		t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	return order;
}
