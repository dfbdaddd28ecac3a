/*-------------------------------------------------------------------------
 *
 * report.c
 *	  Building the jsonb reports that nids returns and stores (training,
 *	  attaching a gate, importing, adapting) with the jsonb API, never by
 *	  formatting text.
 *
 * Numbers are written with six significant digits, as in 1.0; NaN and
 * infinities become null.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "report.h"
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

void
report_bool(JsonbParseState **st, const char *key, bool value)
{
	JsonbValue	v;

	report_key(st, key);
	v.type = jbvBool;
	v.val.boolean = value;
	pushJsonbValue(st, WJB_VALUE, &v);
}

/* an array as the value of key; report_array_end closes it */
void
report_array_begin(JsonbParseState **st, const char *key)
{
	report_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
}

void
report_array_end(JsonbParseState **st)
{
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/* an array of n integers as the next element of an array */
void
report_int_row(JsonbParseState **st, const int64 *values, int n)
{
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
		push_int(st, WJB_ELEM, values[i]);
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/* an object as the next element of an array */
void
report_element_begin(JsonbParseState **st)
{
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
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

/*
 * An options object's keys, one a call (options_next), from options_begin,
 * which refuses anything but an object (22023).
 */
JsonbIterator *
options_begin(Jsonb *options)
{
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	return JsonbIteratorInit(&options->root);
}

/* the next key (palloc'd) and its value; false past the last */
bool
options_next(JsonbIterator **it, char **key, JsonbValue *value)
{
	JsonbValue	k;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(it, &k, true)) != WJB_DONE)
		if (tok == WJB_KEY)
		{
			*key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(it, value, true);
			return true;
		}
	return false;
}
