/*-------------------------------------------------------------------------
 *
 * model_doc.c
 *	  Reader and writer of XGBoost model documents: JSON and UBJSON.
 *
 * XGBoost saves a booster as one JSON document, either as text or in
 * Universal Binary JSON.  Both are read into the same tree of DocValue, so
 * one converter (model_convert.c) serves both.  The bytes come from users, so the
 * reader checks every length against the end of the buffer, limits nesting,
 * and reports what is wrong instead of failing hard: doc_parse returns NULL
 * and an error message.  Everything is allocated in the caller's memory
 * context, which is meant to be a short-lived one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "model.h"

#define DOC_MAX_DEPTH	64

typedef struct DocReader
{
	const unsigned char *p;
	const unsigned char *end;
	const unsigned char *start;
	int			depth;
	char	   *error;
} DocReader;

static bool json_value(DocReader *r, DocValue *out);
static bool ubj_value(DocReader *r, DocValue *out, int marker);

static bool
doc_fail(DocReader *r, const char *what)
{
	if (r->error == NULL)
		r->error = psprintf("%s at byte %ld", what, (long) (r->p - r->start));
	return false;
}

/*
 * Append one parsed item to a growing array of DocValue.
 */
static DocValue *
items_push(DocValue *items, int *n, int *cap)
{
	/* a document may hold millions of values: stay cancellable */
	if ((*n & (NIDS_CHECK_EVERY - 1)) == NIDS_CHECK_EVERY - 1)
		CHECK_FOR_INTERRUPTS();
	if (*n == *cap)
	{
		*cap = *cap ? *cap * 2 : 8;
		items = items ? repalloc_huge(items, sizeof(DocValue) * *cap)
			: palloc_extended(sizeof(DocValue) * *cap, MCXT_ALLOC_HUGE);
	}
	(*n)++;
	return items;
}

static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * An object's keys must be unique: XGBoost takes the last of two equal
 * keys where doc_get would take the first, so the two would read
 * different models.  Checked on a sorted copy: O(n log n).
 */
static bool
check_unique_keys(DocReader *r, char **keys, int n)
{
	char	  **sorted;
	bool		ok = true;

	if (n < 2)
		return true;
	sorted = palloc_extended(sizeof(char *) * n, MCXT_ALLOC_HUGE);
	memcpy(sorted, keys, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), compare_keys);
	for (int i = 1; i < n && ok; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ok = doc_fail(r, psprintf("duplicate key \"%s\" in an object", sorted[i]));
	pfree(sorted);
	return ok;
}

/*
 * An array whose members are all numbers is kept as a flat double array.
 */
static void
array_finish(DocValue *out, DocValue *items, int n)
{
	bool		all_numbers = n > 0;
	bool		all_integers = true;
	bool		any_integer = false;

	for (int i = 0; i < n && all_numbers; i++)
	{
		if (items[i].type != DOC_NUMBER)
			all_numbers = false;
		else if (!items[i].is_integer)
			all_integers = false;
		else
			any_integer = true;
	}
	out->len = n;
	if (all_numbers)
	{
		double	   *numbers = palloc_extended(sizeof(double) * n, MCXT_ALLOC_HUGE);

		for (int i = 0; i < n; i++)
			numbers[i] = items[i].u.number;
		out->type = DOC_NUMARRAY;
		out->is_integer = all_integers;
		out->any_integer = any_integer;
		out->is_float32 = items[0].is_float32;
		out->u.numbers = numbers;
		pfree(items);
	}
	else
	{
		out->type = DOC_ARRAY;
		out->u.items = items;
	}
}

/* ---------------- JSON ---------------- */

static void
json_skip_space(DocReader *r)
{
	while (r->p < r->end &&
		   (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static bool
json_literal(DocReader *r, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return false;
	r->p += n;
	return true;
}

static bool
json_string(DocReader *r, char **out, int *outlen)
{
	StringInfoData buf;

	if (r->p >= r->end || *r->p != '"')
		return doc_fail(r, "expected a string");
	r->p++;
	initStringInfo(&buf);
	for (;;)
	{
		int			c;

		if (r->p >= r->end)
			return doc_fail(r, "unterminated string");
		c = *r->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return doc_fail(r, "control character in string");
		/* XGBoost's reader takes byte 0xFF for the end of the document */
		if (c == 0xFF)
			return doc_fail(r, "byte 0xFF in a string");
		if (c != '\\')
		{
			appendStringInfoChar(&buf, (char) c);
			continue;
		}
		if (r->p >= r->end)
			return doc_fail(r, "unterminated escape");
		c = *r->p++;
		switch (c)
		{
			/*
			 * XGBoost's reader knows these five escapes and no other:
			 * \/, \b and \f it refuses, \u it reads otherwise (a key
			 * spelt with \u would be another key there).
			 */
			case '"':
			case '\\':
				appendStringInfoChar(&buf, (char) c);
				break;
			case 'n':
				appendStringInfoChar(&buf, '\n');
				break;
			case 'r':
				appendStringInfoChar(&buf, '\r');
				break;
			case 't':
				appendStringInfoChar(&buf, '\t');
				break;
			default:
				return doc_fail(r, "bad escape in string");
		}
	}
	*out = buf.data;
	*outlen = buf.len;
	return true;
}

static bool
json_number(DocReader *r, DocValue *out)
{
	char		tmp[64];
	const unsigned char *s = r->p;
	bool		integer = true;
	char	   *endp;
	size_t		n;

	while (r->p < r->end &&
		   ((*r->p >= '0' && *r->p <= '9') || *r->p == '-' || *r->p == '+' ||
			*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
	{
		if (*r->p == '.' || *r->p == 'e' || *r->p == 'E')
			integer = false;
		r->p++;
	}
	n = r->p - s;
	if (n == 0 || n >= sizeof(tmp))
		return doc_fail(r, "bad number");
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	out->u.number = strtod(tmp, &endp);
	if (*endp != '\0')
		return doc_fail(r, "bad number");
	out->type = DOC_NUMBER;
	out->is_integer = integer;
	return true;
}

/* a JSON object; r->p is at its '{' */
static bool
json_object(DocReader *r, DocValue *out)
{
	int			n = 0,
				cap = 0;
	char	  **keys = NULL;
	DocValue   *values = NULL;

	if (++r->depth > DOC_MAX_DEPTH)
		return doc_fail(r, "document nested too deeply");
	r->p++;
	json_skip_space(r);
	if (r->p < r->end && *r->p == '}')
		r->p++;
	else
	{
		for (;;)
		{
			char	   *key;
			int			keylen;

			json_skip_space(r);
			if (!json_string(r, &key, &keylen))
				return false;
			json_skip_space(r);
			if (r->p >= r->end || *r->p != ':')
				return doc_fail(r, "expected ':'");
			r->p++;
			values = items_push(values, &n, &cap);
			keys = keys ? repalloc(keys, sizeof(char *) * cap)
				: palloc(sizeof(char *) * cap);
			keys[n - 1] = key;
			if (!json_value(r, &values[n - 1]))
				return false;
			json_skip_space(r);
			if (r->p < r->end && *r->p == ',')
			{
				r->p++;
				continue;
			}
			if (r->p < r->end && *r->p == '}')
			{
				r->p++;
				break;
			}
			return doc_fail(r, "expected ',' or '}'");
		}
	}
	r->depth--;
	if (!check_unique_keys(r, keys, n))
		return false;
	out->type = DOC_OBJECT;
	out->len = n;
	out->u.object.keys = keys;
	out->u.object.values = values;
	return true;
}

/* a JSON array; r->p is at its '[' */
static bool
json_array(DocReader *r, DocValue *out)
{
	int			n = 0,
				cap = 0;
	DocValue   *items = NULL;

	if (++r->depth > DOC_MAX_DEPTH)
		return doc_fail(r, "document nested too deeply");
	r->p++;

	/*
	 * XGBoost reads "[]" as an empty array but refuses white space between
	 * the brackets of one (it does allow it around the items of others)
	 */
	if (r->p < r->end && *r->p == ']')
		r->p++;
	else
	{
		json_skip_space(r);
		if (r->p < r->end && *r->p == ']')
			return doc_fail(r, "white space in an empty array (XGBoost refuses it)");
		for (;;)
		{
			items = items_push(items, &n, &cap);
			if (!json_value(r, &items[n - 1]))
				return false;
			json_skip_space(r);
			if (r->p < r->end && *r->p == ',')
			{
				r->p++;
				continue;
			}
			if (r->p < r->end && *r->p == ']')
			{
				r->p++;
				break;
			}
			return doc_fail(r, "expected ',' or ']'");
		}
	}
	r->depth--;
	array_finish(out, items, n);
	return true;
}

static bool
json_value(DocReader *r, DocValue *out)
{
	memset(out, 0, sizeof(DocValue));
	json_skip_space(r);
	if (r->p >= r->end)
		return doc_fail(r, "unexpected end of document");

	switch (*r->p)
	{
		case '{':
			return json_object(r, out);
		case '[':
			return json_array(r, out);
		case '"':
			out->type = DOC_STRING;
			return json_string(r, &out->u.string, &out->len);
		case 't':
			if (!json_literal(r, "true"))
				return doc_fail(r, "unexpected token");
			out->type = DOC_BOOL;
			out->u.boolean = true;
			return true;
		case 'f':
			if (!json_literal(r, "false"))
				return doc_fail(r, "unexpected token");
			out->type = DOC_BOOL;
			return true;
		case 'n':
			if (!json_literal(r, "null"))
				return doc_fail(r, "unexpected token");
			out->type = DOC_NULL;
			return true;
		case 'N':
			if (!json_literal(r, "NaN"))
				return doc_fail(r, "unexpected token");
			out->type = DOC_NUMBER;
			out->u.number = NAN;
			return true;
		case 'I':
			if (!json_literal(r, "Infinity"))
				return doc_fail(r, "unexpected token");
			out->type = DOC_NUMBER;
			out->u.number = INFINITY;
			return true;
		default:
			if (json_literal(r, "-Infinity"))
			{
				out->type = DOC_NUMBER;
				out->u.number = -INFINITY;
				return true;
			}
			if ((*r->p >= '0' && *r->p <= '9') || *r->p == '-')
				return json_number(r, out);
			return doc_fail(r, "unexpected character");
	}
}

/* ---------------- UBJSON ---------------- */

static bool
ubj_need(DocReader *r, size_t n)
{
	if ((size_t) (r->end - r->p) < n)
		return doc_fail(r, "unexpected end of document");
	return true;
}

static uint64
ubj_be(DocReader *r, int n)
{
	uint64		v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | r->p[i];
	r->p += n;
	return v;
}

/* read a number of the given marker type into *out */
static bool
ubj_number(DocReader *r, int marker, DocValue *out)
{
	out->type = DOC_NUMBER;
	out->is_integer = true;
	switch (marker)
	{
		case 'i':
			if (!ubj_need(r, 1))
				return false;
			out->u.number = (int8) ubj_be(r, 1);
			return true;
		case 'U':
			if (!ubj_need(r, 1))
				return false;
			out->u.number = (uint8) ubj_be(r, 1);
			return true;
		case 'I':
			if (!ubj_need(r, 2))
				return false;
			out->u.number = (int16) ubj_be(r, 2);
			return true;
		case 'l':
			if (!ubj_need(r, 4))
				return false;
			out->u.number = (int32) ubj_be(r, 4);
			return true;
		case 'L':
			if (!ubj_need(r, 8))
				return false;
			out->u.number = (double) (int64) ubj_be(r, 8);
			return true;
		case 'd':
			{
				uint32		bits;
				float		f;

				if (!ubj_need(r, 4))
					return false;
				bits = (uint32) ubj_be(r, 4);
				memcpy(&f, &bits, sizeof(f));
				out->u.number = f;
				out->is_integer = false;
				out->is_float32 = true;
				return true;
			}
		case 'D':
			{
				uint64		bits;
				double		d;

				if (!ubj_need(r, 8))
					return false;
				bits = ubj_be(r, 8);
				memcpy(&d, &bits, sizeof(d));
				out->u.number = d;
				out->is_integer = false;
				return true;
			}
		default:
			return doc_fail(r, "expected a number");
	}
}

static bool
ubj_length(DocReader *r, int64 *len)
{
	DocValue	v;

	if (!ubj_need(r, 1))
		return false;
	if (!ubj_number(r, *r->p++, &v) || !v.is_integer)
		return doc_fail(r, "bad length");
	if (v.u.number < 0 || v.u.number > (double) PG_INT32_MAX)
		return doc_fail(r, "bad length");
	*len = (int64) v.u.number;
	return true;
}

static bool
ubj_string_body(DocReader *r, char **out, int *outlen)
{
	int64		len;

	if (!ubj_length(r, &len))
		return false;
	if (!ubj_need(r, len) || len > MaxAllocSize - 1)
		return doc_fail(r, "string runs past the end");
	/* copied whole: a string may hold NUL bytes, and len must stay true */
	*out = palloc(len + 1);
	memcpy(*out, r->p, len);
	(*out)[len] = '\0';
	*outlen = (int) len;
	r->p += len;
	return true;
}

/* the smallest size one element of a typed container can take */
static int
ubj_min_size(int marker)
{
	switch (marker)
	{
		case 'L':
		case 'D':
			return 8;
		case 'l':
		case 'd':
			return 4;
		case 'I':
			return 2;
		case 'Z':
		case 'T':
		case 'F':
		case 'N':
			return 0;
		default:
			return 1;
	}
}

static bool
ubj_container(DocReader *r, DocValue *out, bool is_object)
{
	int			type = 0;
	int64		count = -1;
	int			n = 0,
				cap = 0;
	DocValue   *values = NULL;
	char	  **keys = NULL;

	if (++r->depth > DOC_MAX_DEPTH)
		return doc_fail(r, "document nested too deeply");
	if (r->p < r->end && *r->p == '$')
	{
		r->p++;
		if (!ubj_need(r, 1))
			return false;
		type = *r->p++;
		if (r->p >= r->end || *r->p != '#')
			return doc_fail(r, "typed container without a count");
	}
	if (r->p < r->end && *r->p == '#')
	{
		r->p++;
		if (!ubj_length(r, &count))
			return false;
		/* every element takes at least its minimum size: no huge lies */
		if (count * (int64) (type ? Max(ubj_min_size(type), 1) : 1) > r->end - r->p)
			return doc_fail(r, "container count runs past the end");
	}

	/* fast path: typed numeric arrays (XGBoost's node arrays) */
	if (!is_object && count >= 0 && type != 0 && strchr("iUIlLdD", type))
	{
		double	   *numbers = palloc_extended(sizeof(double) * Max(count, 1),
											  MCXT_ALLOC_HUGE);
		DocValue	v;

		for (int64 i = 0; i < count; i++)
		{
			if (!ubj_number(r, type, &v))
				return false;
			numbers[i] = v.u.number;
			if ((i & 65535) == 65535)
				CHECK_FOR_INTERRUPTS();
		}
		r->depth--;
		out->type = count > 0 ? DOC_NUMARRAY : DOC_ARRAY;
		out->len = (int) count;
		out->is_integer = (type != 'd' && type != 'D');
		out->any_integer = out->is_integer && count > 0;
		out->is_float32 = (type == 'd');
		out->u.numbers = numbers;
		if (count == 0)
			out->u.items = NULL;
		return true;
	}

	for (int64 i = 0; count < 0 || i < count; i++)
	{
		char	   *key = NULL;
		int			keylen;
		int			marker;

		if (count < 0)
		{
			if (!ubj_need(r, 1))
				return false;
			if (*r->p == (is_object ? '}' : ']'))
			{
				r->p++;
				break;
			}
		}
		if (is_object && !ubj_string_body(r, &key, &keylen))
			return false;
		if (type)
			marker = type;
		else
		{
			if (!ubj_need(r, 1))
				return false;
			marker = *r->p++;
			while (marker == 'N')
			{
				if (!ubj_need(r, 1))
					return false;
				marker = *r->p++;
			}
		}
		values = items_push(values, &n, &cap);
		if (is_object)
		{
			keys = keys ? repalloc_huge(keys, sizeof(char *) * cap)
				: palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
			keys[n - 1] = key;
		}
		if (!ubj_value(r, &values[n - 1], marker))
			return false;
	}
	r->depth--;
	if (is_object && !check_unique_keys(r, keys, n))
		return false;
	if (is_object)
	{
		out->type = DOC_OBJECT;
		out->len = n;
		out->u.object.keys = keys;
		out->u.object.values = values;
	}
	else
		array_finish(out, values, n);
	return true;
}

static bool
ubj_value(DocReader *r, DocValue *out, int marker)
{
	memset(out, 0, sizeof(DocValue));
	switch (marker)
	{
		case 'Z':
			out->type = DOC_NULL;
			return true;
		case 'T':
		case 'F':
			out->type = DOC_BOOL;
			out->u.boolean = (marker == 'T');
			return true;
		case 'C':
			if (!ubj_need(r, 1))
				return false;
			out->type = DOC_STRING;
			out->u.string = pnstrdup((const char *) r->p, 1);
			out->len = 1;
			r->p++;
			return true;
		case 'S':
		case 'H':
			out->type = DOC_STRING;
			return ubj_string_body(r, &out->u.string, &out->len);
		case '[':
			return ubj_container(r, out, false);
		case '{':
			return ubj_container(r, out, true);
		default:
			return ubj_number(r, marker, out);
	}
}

/*
 * Which of the two an XGBoost model document is, decided as XGBoost's own
 * loader decides it: '{' then '"' is JSON, '{' then anything else UBJSON.
 * No white space may come first (XGBoost would read it as its old binary
 * format).  Returns false when the first byte is not '{'.
 */
bool
doc_format(const char *data, size_t len, DocFormat *format)
{
	if (len < 2 || data[0] != '{')
		return false;
	*format = data[1] == '"' ? DOC_FORMAT_JSON : DOC_FORMAT_UBJSON;
	return true;
}

/*
 * Parse an XGBoost model document, JSON or UBJSON (doc_format).
 */
DocValue *
doc_parse(const char *data, size_t len, DocFormat *format, char **error)
{
	DocReader	r;
	DocValue   *root = palloc0(sizeof(DocValue));
	const unsigned char *s = (const unsigned char *) data;
	bool		ok;

	r.p = r.start = s;
	r.end = s + len;
	r.depth = 0;
	r.error = NULL;

	if (!doc_format(data, len, format))
	{
		*error = pstrdup("the document is not a JSON or UBJSON object");
		return NULL;
	}
	if (*format == DOC_FORMAT_JSON)
	{
		ok = json_value(&r, root);
		if (ok)
		{
			json_skip_space(&r);
			if (r.p != r.end)
				ok = doc_fail(&r, "trailing bytes after the document");
		}
	}
	else
	{
		r.p++;					/* the object's '{' */
		ok = ubj_container(&r, root, true);
	}
	if (!ok)
	{
		*error = r.error;
		return NULL;
	}
	return root;
}

DocValue *
doc_get(const DocValue *object, const char *key)
{
	if (object == NULL || object->type != DOC_OBJECT)
		return NULL;
	for (int i = 0; i < object->len; i++)
		if (strcmp(object->u.object.keys[i], key) == 0)
			return &object->u.object.values[i];
	return NULL;
}

/* ---------------- JSON writer ---------------- */

static void
json_write_string(StringInfo out, const char *s, int len)
{
	appendStringInfoChar(out, '"');
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
		{
			appendStringInfoChar(out, '\\');
			appendStringInfoChar(out, (char) c);
		}
		else if (c == '\n')
			appendStringInfoString(out, "\\n");
		else if (c == '\r')
			appendStringInfoString(out, "\\r");
		else if (c == '\t')
			appendStringInfoString(out, "\\t");
		else if (c < 0x20)
			appendStringInfo(out, "\\u%04x", c);	/* only from UBJSON */
		else
			appendStringInfoChar(out, (char) c);
	}
	appendStringInfoChar(out, '"');
}

static void
json_write_number(StringInfo out, double v, bool integer, bool float32)
{
	if (isnan(v))
		appendStringInfoString(out, "NaN");
	else if (isinf(v))
		appendStringInfoString(out, v > 0 ? "Infinity" : "-Infinity");
	else if (integer && fabs(v) < 9e15)
		appendStringInfo(out, "%lld", (long long) v);
	else
	{
		/* a float must stay a float for XGBoost's reader: keep a '.' or 'e' */
		int			start = out->len;

		appendStringInfo(out, float32 ? "%.9g" : "%.17g", v);
		if (strpbrk(out->data + start, ".e") == NULL)
			appendStringInfoString(out, ".0");
	}
}

static void
json_write(StringInfo out, const DocValue *v)
{
	switch (v->type)
	{
		case DOC_NULL:
			appendStringInfoString(out, "null");
			break;
		case DOC_BOOL:
			appendStringInfoString(out, v->u.boolean ? "true" : "false");
			break;
		case DOC_NUMBER:
			json_write_number(out, v->u.number, v->is_integer, v->is_float32);
			break;
		case DOC_STRING:
			json_write_string(out, v->u.string, v->len);
			break;
		case DOC_NUMARRAY:
			appendStringInfoChar(out, '[');
			for (int i = 0; i < v->len; i++)
			{
				if (i > 0)
					appendStringInfoChar(out, ',');
				json_write_number(out, v->u.numbers[i], v->is_integer, v->is_float32);
			}
			appendStringInfoChar(out, ']');
			break;
		case DOC_ARRAY:
			appendStringInfoChar(out, '[');
			for (int i = 0; i < v->len; i++)
			{
				if (i > 0)
					appendStringInfoChar(out, ',');
				json_write(out, &v->u.items[i]);
			}
			appendStringInfoChar(out, ']');
			break;
		case DOC_OBJECT:
			appendStringInfoChar(out, '{');
			for (int i = 0; i < v->len; i++)
			{
				if (i > 0)
					appendStringInfoChar(out, ',');
				json_write_string(out, v->u.object.keys[i],
								  strlen(v->u.object.keys[i]));
				appendStringInfoChar(out, ':');
				json_write(out, &v->u.object.values[i]);
			}
			appendStringInfoChar(out, '}');
			break;
	}
}

char *
doc_to_json(const DocValue *value, size_t *len)
{
	StringInfoData out;

	initStringInfo(&out);
	json_write(&out, value);
	*len = out.len;
	return out.data;
}
