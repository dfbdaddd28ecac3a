/*
 * bench/xgb_batch.c: XGBoost's own C-API prediction, the peer nids' per-row
 * scoring is measured against.
 *
 *   xgb_batch MODEL.json ROWS.csv REPEAT
 *
 * Loads the booster, reads the rows (comma-separated float features, "nan"
 * for missing), and times with nthread=1:
 *   batch   one XGBoosterPredictFromDense call over all rows (best of REPEAT)
 *   per-row one call per row (the fixed overhead nids avoids)
 * Prints "batch_us_per_row N" and "single_us_per_row N".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xgboost/c_api.h>

#define CHECK(call) do { if ((call) != 0) { fprintf(stderr, "%s\n", XGBGetLastError()); exit(1); } } while (0)

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	float	   *x = NULL;
	long		nrow = 0,
				xcap = 0;
	int			ncol = -1;
	BoosterHandle b;
	char		array[256];
	const char *config = "{\"cache_id\": 0, \"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}";
	const bst_ulong *shape;
	bst_ulong	dim;
	const float *out;
	int			repeat = argc > 3 ? atoi(argv[3]) : 3;
	double		best = 1e30,
				t0,
				single;
	long		nsingle;
	double		checksum = 0;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s MODEL.json ROWS.csv [REPEAT]\n", argv[0]);
		return 2;
	}
	f = fopen(argv[2], "r");
	if (!f)
	{
		perror(argv[2]);
		return 1;
	}
	while (getline(&line, &cap, f) > 0)
	{
		int			c = 0;
		char	   *p = line;

		for (;;)
		{
			char	   *end;
			double		v = strtod(p, &end);

			if (end == p)
				break;
			if (xcap <= (nrow + 1) * 4096)
			{
				xcap = xcap ? xcap * 2 : 1 << 20;
				x = realloc(x, sizeof(float) * xcap);
			}
			x[nrow * (ncol > 0 ? ncol : 4096) + c] = (float) v;
			c++;
			p = end;
			if (*p == ',')
				p++;
			else
				break;
		}
		if (ncol < 0)
			ncol = c;			/* row 0 sits at the start whatever the stride */
		nrow++;
	}
	fclose(f);

	CHECK(XGBoosterCreate(NULL, 0, &b));
	CHECK(XGBoosterSetParam(b, "nthread", "1"));
	CHECK(XGBoosterLoadModel(b, argv[1]));
	CHECK(XGBoosterSetParam(b, "nthread", "1"));

	snprintf(array, sizeof(array),
			 "{\"data\": [%lu, true], \"shape\": [%ld, %d], \"typestr\": \"<f4\", \"version\": 3}",
			 (unsigned long) (size_t) x, nrow, ncol);
	for (int r = 0; r < repeat; r++)
	{
		t0 = now();
		CHECK(XGBoosterPredictFromDense(b, array, config, NULL, &shape, &dim, &out));
		best = fmin(best, now() - t0);
	}
	checksum = out[0];

	nsingle = nrow < 20000 ? nrow : 20000;
	t0 = now();
	for (long r = 0; r < nsingle; r++)
	{
		snprintf(array, sizeof(array),
				 "{\"data\": [%lu, true], \"shape\": [1, %d], \"typestr\": \"<f4\", \"version\": 3}",
				 (unsigned long) (size_t) (x + r * ncol), ncol);
		CHECK(XGBoosterPredictFromDense(b, array, config, NULL, &shape, &dim, &out));
		checksum += out[0];
	}
	single = now() - t0;
	printf("rows %ld features %d\n", nrow, ncol);
	printf("batch_us_per_row %.3f\n", best / nrow * 1e6);
	printf("single_us_per_row %.3f\n", single / nsingle * 1e6);
	printf("checksum %g\n", checksum);
	XGBoosterFree(b);
	return 0;
}
