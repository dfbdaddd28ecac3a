/*-------------------------------------------------------------------------
 *
 * train_report.c
 *	  The metrics report of nids_train and nids_attach_benign, built with
 *	  the jsonb API, and the hold-out statistics that go into it.
 *
 * Numbers are written with six significant digits, as in 1.0; NaN and
 * infinities become null.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "train.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

static void
push_string(JsonbParseState **st, JsonbIteratorToken token, const char *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(st, token, &v);
}

static void
push_numeric_text(JsonbParseState **st, JsonbIteratorToken token, const char *text)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	pushJsonbValue(st, token, &v);
}

static void
push_int(JsonbParseState **st, JsonbIteratorToken token, int64 value)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT, value);
	push_numeric_text(st, token, buf);
}

void
report_key(JsonbParseState **st, const char *key)
{
	push_string(st, WJB_KEY, key);
}

void
report_string(JsonbParseState **st, const char *key, const char *value)
{
	report_key(st, key);
	push_string(st, WJB_VALUE, value);
}

void
report_number(JsonbParseState **st, const char *key, double value)
{
	char		buf[64];

	report_key(st, key);
	if (isnan(value) || isinf(value))
	{
		JsonbValue	v;

		v.type = jbvNull;
		pushJsonbValue(st, WJB_VALUE, &v);
		return;
	}
	snprintf(buf, sizeof(buf), "%.6g", value);
	push_numeric_text(st, WJB_VALUE, buf);
}

void
report_int(JsonbParseState **st, const char *key, int64 value)
{
	report_key(st, key);
	push_int(st, WJB_VALUE, value);
}

void
report_names(JsonbParseState **st, const char *key, char **names, int n)
{
	report_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
		push_string(st, WJB_ELEM, names[i]);
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/* an object: at the top (key NULL) or as the value of key */
void
report_begin(JsonbParseState **st, const char *key)
{
	if (key != NULL)
		report_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
}

void
report_end(JsonbParseState **st)
{
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/* close the top object and return it */
Jsonb *
report_finish(JsonbParseState **st)
{
	return JsonbValueToJsonb(pushJsonbValue(st, WJB_END_OBJECT, NULL));
}

/* precision, recall and F1 of class c from the confusion matrix */
static void
class_scores(const int64 *confusion, int nclasses, int c, double *precision,
			 double *recall, double *f1, int64 *support)
{
	int64		tp = confusion[c * nclasses + c],
				fp = 0,
				fn = 0;

	*support = 0;
	for (int o = 0; o < nclasses; o++)
	{
		*support += confusion[c * nclasses + o];
		if (o != c)
		{
			fp += confusion[o * nclasses + c];
			fn += confusion[c * nclasses + o];
		}
	}
	/* undefined (NaN, null in the report) without predictions or rows */
	*precision = (tp + fp) > 0 ? (double) tp / (tp + fp) : NAN;
	*recall = (tp + fn) > 0 ? (double) tp / (tp + fn) : NAN;
	if (isnan(*recall))
		*f1 = NAN;
	else if (isnan(*precision) || *precision + *recall == 0)
		*f1 = 0.0;
	else
		*f1 = 2 * *precision * *recall / (*precision + *recall);
}

/* mean F1 over the classes with test rows; NaN when none has */
double
macro_f1(const int64 *confusion, int nclasses)
{
	double		sum = 0;
	int			n = 0;

	for (int c = 0; c < nclasses; c++)
	{
		double		precision,
					recall,
					f1;
		int64		support;

		class_scores(confusion, nclasses, c, &precision, &recall, &f1, &support);
		if (support > 0)
		{
			sum += f1;
			n++;
		}
	}
	return n > 0 ? sum / n : NAN;
}

/*
 * per_class (precision null for a class never predicted, recall and F1
 * null for one without test rows), macro_f1 (over classes with test rows), accuracy and the
 * confusion matrix (rows are the true class).
 */
void
report_classifier(JsonbParseState **st, const int64 *confusion, char **classes,
				  int nclasses, int64 ntest)
{
	int64		correct = 0;

	report_begin(st, "per_class");
	for (int c = 0; c < nclasses; c++)
	{
		double		precision,
					recall,
					f1;
		int64		support;

		class_scores(confusion, nclasses, c, &precision, &recall, &f1, &support);
		correct += confusion[c * nclasses + c];
		report_begin(st, classes[c]);
		report_number(st, "precision", precision);
		report_number(st, "recall", recall);
		report_number(st, "f1", f1);
		report_int(st, "support", support);
		report_end(st);
	}
	report_end(st);
	report_number(st, "macro_f1", macro_f1(confusion, nclasses));
	report_number(st, "accuracy", ntest > 0 ? (double) correct / ntest : NAN);
	report_begin(st, "confusion_matrix");
	report_names(st, "labels", classes, nclasses);
	report_string(st, "rows_are", "true class");
	report_key(st, "matrix");
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int c = 0; c < nclasses; c++)
	{
		pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
		for (int o = 0; o < nclasses; o++)
			push_int(st, WJB_ELEM, confusion[c * nclasses + o]);
		pushJsonbValue(st, WJB_END_ARRAY, NULL);
	}
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
	report_end(st);
}

static int
compare_score(const void *a, const void *b)
{
	double		x = ((const double *) a)[0];
	double		y = ((const double *) b)[0];

	return (x > y) - (x < y);
}

/*
 * ROC-AUC of (score, is_positive) pairs (Mann-Whitney, ties halved); NaN
 * without both kinds.
 */
double
roc_auc(double *pairs, int64 n)
{
	int64		npos = 0,
				nneg = 0;
	double		rank_sum = 0;

	qsort(pairs, n, sizeof(double) * 2, compare_score);
	for (int64 i = 0; i < n;)
	{
		int64		j = i;
		double		avg_rank;

		while (j < n && pairs[j * 2] == pairs[i * 2])
			j++;
		avg_rank = (i + 1 + j) / 2.0;
		for (int64 k = i; k < j; k++)
		{
			if (pairs[k * 2 + 1] > 0)
			{
				npos++;
				rank_sum += avg_rank;
			}
			else
				nneg++;
		}
		i = j;
	}
	if (npos == 0 || nneg == 0)
		return NAN;
	return (rank_sum - npos * (npos + 1) / 2.0) / ((double) npos * nneg);
}

/*
 * importance: per feature (names[d]), the splits on it and their total
 * gain and cover (forest_importance), for nids.feature_importance.
 */
void
report_importance(JsonbParseState **st, char **names, int d, const double *gain,
				  const double *cover, const int64 *splits)
{
	report_begin(st, "importance");
	for (int j = 0; j < d; j++)
	{
		report_begin(st, names[j]);
		report_number(st, "gain", gain[j]);
		report_number(st, "cover", cover[j]);
		report_int(st, "splits", splits[j]);
		report_end(st);
	}
	report_end(st);
}
