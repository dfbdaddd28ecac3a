/*-------------------------------------------------------------------------
 *
 * model_bundle.c
 *	  The bytes of nids_export_model / nids_import_model: everything a model
 *	  version is, so that a version moves between databases and scores and
 *	  reports drift there exactly as here.
 *
 * Format 1: the magic "NIDSMDL1", a uint32 format, a uint32 section
 * count, then sections (uint32 tag, uint32 zero, uint64 length, bytes).
 * Lists of names are a uint32 count, then per name a uint32 length and its
 * bytes.  A bundle is untrusted: every part is validated as the catalogue
 * validates it (the XGBoost document converted again and compared with the
 * native forest, the isolation forest, gate and references parsed, the
 * metrics parsed as JSON), and a bundle that fails is refused whole.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "drift.h"
#include "model.h"

#define BUNDLE_MAGIC		"NIDSMDL1"
#define BUNDLE_FORMAT		1
#define BUNDLE_MAX_NAMES	100000

enum
{
	TAG_NAME = 1,
	TAG_BOOSTER,
	TAG_NATIVE,
	TAG_FEATURES,
	TAG_CLASSES,
	TAG_METRICS,
	TAG_IFOREST,
	TAG_THRESHOLD,
	TAG_REFERENCE,
	TAG_BENIGN_REFERENCE,
	TAG_BENIGN_LABEL,
	TAG_NOVELTY,
	TAG_BENIGN_THRESHOLD,		/* 1.3: tau, only when the version has one */
	NUM_TAGS
};

typedef struct Writer
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Writer;

static void
put(Writer *w, const void *p, size_t n)
{
	if (w->len + n > w->cap)
	{
		w->cap = Max(w->cap * 2, w->len + n + 1024);
		w->data = repalloc_huge(w->data, w->cap);
	}
	memcpy(w->data + w->len, p, n);
	w->len += n;
}

static void
put_section(Writer *w, uint32 tag, const void *p, uint64 n, uint32 *count)
{
	uint32		zero = 0;

	put(w, &tag, sizeof(tag));
	put(w, &zero, sizeof(zero));
	put(w, &n, sizeof(n));
	put(w, p, n);
	(*count)++;
}

static void
put_bytea(Writer *w, uint32 tag, const bytea *b, uint32 *count)
{
	if (b != NULL)
		put_section(w, tag, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), count);
}

static void
put_names(Writer *w, uint32 tag, char **names, int n, uint32 *count)
{
	Writer		list = {palloc(1024), 0, 1024};
	uint32		un = n;

	put(&list, &un, sizeof(un));
	for (int i = 0; i < n; i++)
	{
		uint32		len = strlen(names[i]);

		put(&list, &len, sizeof(len));
		put(&list, names[i], len);
	}
	put_section(w, tag, list.data, list.len, count);
	pfree(list.data);
}

/* the bundle of a version (b's parts), as bytea */
bytea *
bundle_build(const ModelBundle *b)
{
	Writer		w = {palloc(4096), 0, 4096};
	uint32		format = BUNDLE_FORMAT;
	uint32		count = 0;
	size_t		count_at;
	bytea	   *out;

	put(&w, BUNDLE_MAGIC, 8);
	put(&w, &format, sizeof(format));
	count_at = w.len;
	put(&w, &count, sizeof(count));
	put_section(&w, TAG_NAME, b->name, strlen(b->name), &count);
	put_bytea(&w, TAG_BOOSTER, b->booster, &count);
	put_bytea(&w, TAG_NATIVE, b->native, &count);
	put_names(&w, TAG_FEATURES, b->features, b->num_features, &count);
	put_names(&w, TAG_CLASSES, b->classes, b->num_classes, &count);
	put_section(&w, TAG_METRICS, b->metrics, strlen(b->metrics), &count);
	put_bytea(&w, TAG_IFOREST, b->iforest, &count);
	if (!isnan(b->anomaly_threshold))
		put_section(&w, TAG_THRESHOLD, &b->anomaly_threshold, sizeof(double), &count);
	put_bytea(&w, TAG_REFERENCE, b->reference, &count);
	put_bytea(&w, TAG_BENIGN_REFERENCE, b->benign_reference, &count);
	if (b->benign_label)
		put_section(&w, TAG_BENIGN_LABEL, b->benign_label, strlen(b->benign_label), &count);
	put_bytea(&w, TAG_NOVELTY, b->novelty, &count);
	if (b->benign_threshold > 0)
		put_section(&w, TAG_BENIGN_THRESHOLD, &b->benign_threshold, sizeof(double), &count);
	memcpy(w.data + count_at, &count, sizeof(count));
	out = palloc_extended(VARHDRSZ + w.len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(out, VARHDRSZ + w.len);
	memcpy(VARDATA(out), w.data, w.len);
	pfree(w.data);
	return out;
}

static bytea *
to_bytea(const char *p, size_t n)
{
	bytea	   *b = palloc_extended(VARHDRSZ + n, MCXT_ALLOC_HUGE);

	SET_VARSIZE(b, VARHDRSZ + n);
	memcpy(VARDATA(b), p, n);
	return b;
}

/* a string without NUL bytes, or NULL */
static char *
to_string(const char *p, size_t n, size_t max)
{
	if (n == 0 || n > max || memchr(p, '\0', n) != NULL)
		return NULL;
	return pnstrdup(p, n);
}

static int
compare_name_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * A name that names holds twice, or NULL: sorted copies of the pointers,
 * O(n log n) (a list of a hundred thousand names takes milliseconds).
 */
const char *
names_first_duplicate(char **names, int n)
{
	char	  **sorted;
	const char *dup = NULL;

	if (n < 2)
		return NULL;
	sorted = palloc(sizeof(char *) * n);
	memcpy(sorted, names, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), compare_name_ptr);
	for (int i = 1; i < n && dup == NULL; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			dup = sorted[i];
	pfree(sorted);
	return dup;
}

/* a list of names; NULL and *error when malformed */
static char **
to_names(const char *p, size_t n, int *count, const char *what, char **error)
{
	uint32		un;
	char	  **names;
	size_t		at = sizeof(uint32);

	if (n < sizeof(uint32))
		goto bad;
	memcpy(&un, p, sizeof(un));
	if (un == 0 || un > BUNDLE_MAX_NAMES)
		goto bad;
	names = palloc(sizeof(char *) * un);
	for (uint32 i = 0; i < un; i++)
	{
		uint32		len;

		if (n - at < sizeof(uint32))
			goto bad;
		memcpy(&len, p + at, sizeof(len));
		at += sizeof(uint32);
		if (len > n - at || (names[i] = to_string(p + at, len, NIDS_MAX_NAME_BYTES)) == NULL)
			goto bad;
		at += len;
	}
	if (at != n || names_first_duplicate(names, (int) un) != NULL)
		goto bad;
	*count = (int) un;
	return names;
bad:
	*error = psprintf("its %s are not a list of distinct, non-empty names", what);
	return NULL;
}

/* whether two forests are the same trees */
static bool
same_forest(const NidsForest *a, const NidsForest *b)
{
	if (a->objective != b->objective || a->num_features != b->num_features ||
		a->num_groups != b->num_groups || a->num_trees != b->num_trees ||
		a->num_nodes != b->num_nodes)
		return false;
	return memcmp(a->base_margin, b->base_margin, sizeof(float) * a->num_groups) == 0 &&
		memcmp(a->tree_group, b->tree_group, sizeof(int32) * a->num_trees) == 0 &&
		memcmp(a->tree_offset, b->tree_offset, sizeof(int32) * (a->num_trees + 1)) == 0 &&
		memcmp(a->nodes, b->nodes, sizeof(NidsNode) * a->num_nodes) == 0 &&
		memcmp(a->leaf_value, b->leaf_value, sizeof(float) * a->num_nodes) == 0;
}

/* the parts every bundle has, and the consistency of the classifier */
static bool
bundle_check_classifier(ModelBundle *b, char **error)
{
	DocFormat	format;
	DocValue   *doc;
	NidsForest *converted;
	NidsForest *native;

	if (b->name == NULL || b->booster == NULL || b->native == NULL ||
		b->features == NULL || b->classes == NULL || b->metrics == NULL)
	{
		*error = "it lacks a part every version has (name, booster, native form, features, classes, metrics)";
		return false;
	}
	doc = doc_parse(VARDATA_ANY(b->booster), VARSIZE_ANY_EXHDR(b->booster), &format, error);
	converted = doc ? forest_from_xgboost(doc, error) : NULL;
	if (converted == NULL)
		return false;
	native = forest_deserialize(VARDATA_ANY(b->native), VARSIZE_ANY_EXHDR(b->native), error);
	if (native == NULL)
		return false;
	if (!same_forest(converted, native))
	{
		*error = "its native form is not its XGBoost document's";
		return false;
	}
	/* covers decide explanations: where stored, they must be the document's */
	if (native->cover != NULL &&
		memcmp(native->cover, converted->cover, sizeof(float) * native->num_nodes) != 0)
	{
		*error = "its node covers are not its XGBoost document's";
		return false;
	}
	if (native->num_features != b->num_features || forest_num_outputs(native) != b->num_classes)
	{
		*error = "its feature or class lists do not match its trees";
		return false;
	}
	return true;
}

/* the optional parts: gate, isolation forest, references, metrics */
static bool
bundle_check_parts(ModelBundle *b, char **error)
{
	NoveltyGate *gate = NULL;

	if (b->iforest != NULL &&
		iforest_deserialize(VARDATA_ANY(b->iforest), VARSIZE_ANY_EXHDR(b->iforest),
							b->num_features, error) == NULL)
		return false;
	if (b->iforest != NULL && !isfinite(b->anomaly_threshold))
	{
		*error = "its isolation forest has no finite threshold";
		return false;
	}
	if (b->novelty != NULL &&
		(gate = novelty_deserialize(VARDATA_ANY(b->novelty), VARSIZE_ANY_EXHDR(b->novelty),
									b->num_features, error)) == NULL)
		return false;
	if (gate != NULL && gate->method == NOVELTY_IFOREST && b->iforest == NULL)
	{
		*error = "its novelty gate is the isolation forest, which it lacks";
		return false;
	}
	if (b->reference != NULL &&
		drift_reference_parse(VARDATA_ANY(b->reference), VARSIZE_ANY_EXHDR(b->reference),
							  b->num_features, error) == NULL)
		return false;
	if (b->benign_reference != NULL &&
		drift_reference_parse(VARDATA_ANY(b->benign_reference),
							  VARSIZE_ANY_EXHDR(b->benign_reference),
							  b->num_features, error) == NULL)
		return false;
	/* the metrics are checked as JSON, with their types, by the importer */
	return true;
}

/* one section into b; false and *error when it is malformed */
static bool
bundle_section(ModelBundle *b, uint32 tag, const char *p, uint64 n, char **error)
{
	switch (tag)
	{
		case TAG_NAME:
			b->name = to_string(p, n, NIDS_MAX_NAME);
			if (b->name == NULL)
				*error = "its model name is empty, too long or holds a NUL byte";
			return b->name != NULL;
		case TAG_BOOSTER:
			b->booster = to_bytea(p, n);
			return true;
		case TAG_NATIVE:
			b->native = to_bytea(p, n);
			return true;
		case TAG_FEATURES:
			return (b->features = to_names(p, n, &b->num_features, "features", error)) != NULL;
		case TAG_CLASSES:
			return (b->classes = to_names(p, n, &b->num_classes, "classes", error)) != NULL;
		case TAG_METRICS:
			b->metrics = to_string(p, n, (size_t) 1 << 28);
			if (b->metrics == NULL)
				*error = "its metrics are empty or hold a NUL byte";
			return b->metrics != NULL;
		case TAG_IFOREST:
			b->iforest = to_bytea(p, n);
			return true;
		case TAG_THRESHOLD:
			if (n != sizeof(double))
			{
				*error = "its threshold is not one float8";
				return false;
			}
			memcpy(&b->anomaly_threshold, p, sizeof(double));
			return true;
		case TAG_REFERENCE:
			b->reference = to_bytea(p, n);
			return true;
		case TAG_BENIGN_REFERENCE:
			b->benign_reference = to_bytea(p, n);
			return true;
		case TAG_BENIGN_LABEL:
			b->benign_label = to_string(p, n, NIDS_MAX_NAME_BYTES);
			if (b->benign_label == NULL)
				*error = "its benign label is empty, too long or holds a NUL byte";
			return b->benign_label != NULL;
		case TAG_NOVELTY:
			b->novelty = to_bytea(p, n);
			return true;
		case TAG_BENIGN_THRESHOLD:
			if (n != sizeof(double))
			{
				*error = "its decision threshold is not one float8";
				return false;
			}
			memcpy(&b->benign_threshold, p, sizeof(double));
			if (!(b->benign_threshold > 0 && b->benign_threshold < 1))
			{
				*error = "its decision threshold is not between 0 and 1";
				return false;
			}
			return true;
	}
	*error = psprintf("it has a section of unknown kind %u", tag);
	return false;
}

/*
 * Parse and validate a bundle into b; false and *error (a sentence
 * fragment) when it is not a valid version.
 */
bool
bundle_parse(const char *data, size_t len, ModelBundle *b, char **error)
{
	uint32		format,
				count;
	size_t		at = 16;
	bool		seen[NUM_TAGS] = {false};

	memset(b, 0, sizeof(*b));
	b->anomaly_threshold = NAN;
	*error = NULL;
	if (len < 16 || memcmp(data, BUNDLE_MAGIC, 8) != 0)
	{
		*error = "it is not a nids model bundle (nids_export_model)";
		return false;
	}
	memcpy(&format, data + 8, sizeof(format));
	memcpy(&count, data + 12, sizeof(count));
	if (format != BUNDLE_FORMAT)
	{
		*error = psprintf("it has bundle format %u; this nids reads format %d", format, BUNDLE_FORMAT);
		return false;
	}
	for (uint32 i = 0; i < count; i++)
	{
		uint32		tag;
		uint64		n;

		if (len - at < 16)
		{
			*error = "it is truncated";
			return false;
		}
		memcpy(&tag, data + at, sizeof(tag));
		memcpy(&n, data + at + 8, sizeof(n));
		at += 16;
		if (n > len - at)
		{
			*error = "it is truncated";
			return false;
		}
		if (tag > 0 && tag < NUM_TAGS && seen[tag])
		{
			*error = psprintf("it has section %u twice", tag);
			return false;
		}
		if (!bundle_section(b, tag, data + at, n, error))
			return false;
		seen[tag] = true;
		at += n;
	}
	if (at != len)
	{
		*error = "it has bytes after its last section";
		return false;
	}
	return bundle_check_classifier(b, error) && bundle_check_parts(b, error);
}
