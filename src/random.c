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
