/*-------------------------------------------------------------------------
 *
 * train_data.c
 *	  nids_train's data: which columns are features, the rows read into
 *	  one float32 matrix, the classes, and the stratified hold-out split.
 *
 * The source is read by the one reader (flow_reader.c), with the caller's
 * privileges, values mapped as everywhere else (flow_map.c).  Everything
 * lives in td->cxt: an ERROR or a cancel frees it all at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "flow.h"
#include "miscadmin.h"
#include "random.h"
#include "train.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#define LABEL_KEY_SIZE	(NAMEDATALEN * 4)

typedef struct ClassEntry
{
	char		key[LABEL_KEY_SIZE];
	int			id;
} ClassEntry;

double
elapsed_since(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_DOUBLE(now);
}

/* the index of name (as written or canonical) in names, or -1 */
static int
name_index(char **names, int n, const char *name, const char *canon)
{
	for (int e = 0; e < n; e++)
		if (strcmp(names[e], name) == 0 || strcmp(names[e], canon) == 0)
			return e;
	return -1;
}

/* every name of an option list must name a column */
static void
check_names_used(char **names, int n, const bool *used, const char *option,
				 const char *qualified)
{
	for (int e = 0; e < n; e++)
		if (!used[e])
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("options.%s names column \"%s\", which %s does not have",
							option, names[e], qualified),
					 errhint("Names are matched as written or by canonical name.")));
}

static void
leave_out(TrainData *td, const char *column, const char *reason)
{
	td->left_out[td->nleft_out] = pstrdup(column);
	td->left_out_reasons[td->nleft_out++] = reason;
}

/*
 * Whether column name (canonical canon, numeric when numeric) is a
 * feature: a CICFlowMeter flow feature, or named in options.include;
 * never the label, never excluded.  What is left out and why is recorded.
 */
static bool
is_feature(TrainData *td, const TrainOptions *opt, Form_pg_attribute att,
		   bool *excl_used, bool *incl_used)
{
	const char *name = NameStr(att->attname);
	char		norm[NAMEDATALEN * 2];
	CanonicalKind kind;
	const char *canon;
	bool		numeric = nids_numeric_type(getBaseType(att->atttypid));
	int			e;

	canonical_normalise(name, strlen(name), norm, sizeof(norm));
	canon = canonical_name(norm, &kind);
	if ((e = name_index(opt->exclude, opt->nexclude, name, canon)) >= 0)
	{
		excl_used[e] = true;
		return false;
	}
	if ((e = name_index(opt->include, opt->ninclude, name, canon)) >= 0)
	{
		incl_used[e] = true;
		if (!numeric)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("options.include names column \"%s\" of type %s; features must be numeric",
							name, format_type_be(att->atttypid))));
		return true;
	}
	if (!numeric)
		return false;
	if (nids_is_output_column(name))
		leave_out(td, name, "written by nids_score_trigger");
	else if (kind != CANON_FEATURE)
		leave_out(td, name, "not a CICFlowMeter flow feature (options.include makes it one)");
	else
		return true;
	return false;
}

/*
 * The feature columns: CICFlowMeter flow features and options.include,
 * not the label, not options.exclude.
 */
void
train_data_columns(TrainData *td, Oid relid, const char *label,
				   const TrainOptions *opt, char **qualified)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		has_label = false;
	bool	   *excl_used = palloc0(sizeof(bool) * (opt->nexclude + 1));
	bool	   *incl_used = palloc0(sizeof(bool) * (opt->ninclude + 1));

	*qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											RelationGetRelationName(rel));
	if (name_index(opt->include, opt->ninclude, label, label) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.include names the label column \"%s\"", label),
				 errdetail("A model that reads its own answer learns nothing.")));
	td->colnames = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->features = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->left_out = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->left_out_reasons = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->d = 0;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		char		norm[NAMEDATALEN * 2];
		const char *canon;

		if (att->attisdropped)
			continue;
		if (strcmp(name, label) == 0)
		{
			has_label = true;
			continue;
		}
		if (!is_feature(td, opt, att, excl_used, incl_used))
			continue;
		canon = canonical_attname(name, norm, sizeof(norm));
		for (int j = 0; j < td->d; j++)
			if (strcmp(td->features[j], canon) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("columns \"%s\" and \"%s\" have the same canonical feature name \"%s\"",
								td->colnames[j], name, canon),
						 errhint("Exclude one of them with options.exclude.")));
		td->colnames[td->d] = pstrdup(name);
		td->features[td->d] = pstrdup(canon);
		td->d++;
	}
	relation_close(rel, AccessShareLock);
	if (!has_label)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("label column \"%s\" does not exist in %s", label, *qualified)));
	check_names_used(opt->exclude, opt->nexclude, excl_used, "exclude", *qualified);
	check_names_used(opt->include, opt->ninclude, incl_used, "include", *qualified);
	if (td->d == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no CICFlowMeter flow feature column", *qualified),
				 errhint("Features are the numeric columns with a CICFlowMeter feature name (see nids-load), and those named in options.include.")));
}

/*
 * Columns of the source that hold features in wanted (another model's)
 * but are not features of this training: read too, into td->xextra, so
 * that the other model can score the same hold-out rows.
 */
void
train_data_extra_columns(TrainData *td, Oid relid, char **wanted, int nwanted)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	td->extra_colnames = palloc(sizeof(char *) * Max(nwanted, 1));
	td->extra_features = palloc(sizeof(char *) * Max(nwanted, 1));
	td->dextra = 0;
	for (int w = 0; w < nwanted; w++)
	{
		bool		have = false;

		for (int j = 0; j < td->d && !have; j++)
			have = strcmp(td->features[j], wanted[w]) == 0;
		for (int i = 0; i < desc->natts && !have; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			char		norm[NAMEDATALEN * 2];

			if (att->attisdropped || !nids_numeric_type(getBaseType(att->atttypid)) ||
				strcmp(canonical_attname(NameStr(att->attname), norm, sizeof(norm)), wanted[w]) != 0)
				continue;
			td->extra_colnames[td->dextra] = pstrdup(NameStr(att->attname));
			td->extra_features[td->dextra++] = wanted[w];
			have = true;
		}
	}
	relation_close(rel, AccessShareLock);
}

/* the class of a label, numbered in order of first appearance */
static int
class_of(TrainData *td, const char *label)
{
	ClassEntry *entry;
	char		key[LABEL_KEY_SIZE];
	bool		found;

	if (strlen(label) >= LABEL_KEY_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a label has %zu bytes; labels may have at most %d",
						strlen(label), LABEL_KEY_SIZE - 1),
				 errdetail("Label: \"%.40s...\"", label)));
	strlcpy(key, label, sizeof(key));
	entry = hash_search(td->class_ids, key, HASH_ENTER, &found);
	if (!found)
	{
		if (td->nclasses >= NIDS_MAX_CLASSES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the label column has more than %d distinct values", NIDS_MAX_CLASSES)));
		entry->id = td->nclasses;
		td->classes[td->nclasses++] = MemoryContextStrdup(td->cxt, label);
	}
	return entry->id;
}

/* the reader's callback: one labelled row into the matrix */
static void
train_data_add_row(void *arg, const float *x, Datum label, bool label_isnull)
{
	TrainData  *td = (TrainData *) arg;

	if (label_isnull)
	{
		td->skipped++;
		return;
	}
	if (td->n == td->cap)
	{
		td->cap += td->cap / 2;
		td->x = repalloc_huge(td->x, sizeof(float) * td->cap * td->d);
		td->y = repalloc_huge(td->y, sizeof(int32) * td->cap);
		if (td->dextra > 0)
			td->xextra = repalloc_huge(td->xextra, sizeof(float) * td->cap * td->dextra);
	}
	/* the label's text is freed with the row by the reader */
	td->y[td->n] = class_of(td, TextDatumGetCString(label));
	memcpy(td->x + td->n * td->d, x, sizeof(float) * td->d);
	if (td->dextra > 0)
		memcpy(td->xextra + td->n * td->dextra, x + td->d, sizeof(float) * td->dextra);
	td->n++;
	if ((td->n & 65535) == 0 && elapsed_since(td->start) - td->last_notice > 5.0)
	{
		td->last_notice = elapsed_since(td->start);
		ereport(NOTICE,
				(errmsg("nids_train: read %lld rows, %.0f s", (long long) td->n, td->last_notice)));
	}
}

/*
 * Add n rows of x (d features in the order of names, canonical) with label:
 * each feature of td from the column of its name, missing when x has none.
 */
void
train_data_append(TrainData *td, const float *x, int d, char **names, int64 n,
				  const char *label)
{
	int		   *from = palloc(sizeof(int) * Max(td->d + td->dextra, 1));
	float	   *row = palloc(sizeof(float) * Max(td->d + td->dextra, 1));
	Datum		text = CStringGetTextDatum(label);

	for (int j = 0; j < td->d + td->dextra; j++)
	{
		const char *want = j < td->d ? td->features[j] : td->extra_features[j - td->d];

		from[j] = -1;
		for (int f = 0; f < d && from[j] < 0; f++)
			if (strcmp(names[f], want) == 0)
				from[j] = f;
	}
	for (int64 i = 0; i < n; i++)
	{
		for (int j = 0; j < td->d + td->dextra; j++)
			row[j] = from[j] >= 0 ? x[i * d + from[j]] : NAN;
		train_data_add_row(td, row, text, false);
	}
	pfree(from);
	pfree(row);
}

/*
 * Read the feature columns and the label of the source (as nids_src, where filter
 * holds when given) into td.
 */
void
train_data_read(TrainData *td, const char *qualified, const char *label, const char *filter)
{
	StringInfoData sql;
	HASHCTL		ctl;
	FlowQuery	query;
	char	  **features = palloc(sizeof(char *) * (td->d + td->dextra));

	INSTR_TIME_SET_CURRENT(td->start);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int j = 0; j < td->d; j++)
	{
		appendStringInfo(&sql, "%s, ", quote_identifier(td->colnames[j]));
		features[j] = td->features[j];
	}
	for (int j = 0; j < td->dextra; j++)
	{
		appendStringInfo(&sql, "%s, ", quote_identifier(td->extra_colnames[j]));
		features[td->d + j] = td->extra_features[j];
	}
	appendStringInfo(&sql, "%s::pg_catalog.text FROM %s nids_src", quote_identifier(label), qualified);
	if (filter != NULL)
		appendStringInfo(&sql, " WHERE %s", filter);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = LABEL_KEY_SIZE;
	ctl.entrysize = sizeof(ClassEntry);
	ctl.hcxt = td->cxt;
	td->class_ids = hash_create("nids train classes", 64, &ctl,
								HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	td->classes = MemoryContextAlloc(td->cxt, sizeof(char *) * NIDS_MAX_CLASSES);
	td->cap = 65536;
	td->x = MemoryContextAllocHuge(td->cxt, sizeof(float) * td->cap * td->d);
	td->y = MemoryContextAllocHuge(td->cxt, sizeof(int32) * td->cap);
	if (td->dextra > 0)
		td->xextra = MemoryContextAllocHuge(td->cxt, sizeof(float) * td->cap * td->dextra);

	memset(&query, 0, sizeof(query));
	query.sql = sql.data;
	query.features = features;
	query.num_features = td->d + td->dextra;
	query.model = "(training)";
	query.label_attno = td->d + td->dextra + 1;
	flow_read(&query, train_data_add_row, td);
}

/* sort classes by name and renumber the rows' classes to match */
void
train_data_order_classes(TrainData *td)
{
	int		   *order = palloc(sizeof(int) * td->nclasses);
	int		   *remap = palloc(sizeof(int) * td->nclasses);
	char	  **sorted = palloc(sizeof(char *) * td->nclasses);

	for (int i = 0; i < td->nclasses; i++)
		order[i] = i;
	for (int i = 1; i < td->nclasses; i++)
		for (int k = i; k > 0 && strcmp(td->classes[order[k - 1]], td->classes[order[k]]) > 0; k--)
		{
			int			t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	for (int i = 0; i < td->nclasses; i++)
	{
		remap[order[i]] = i;
		sorted[i] = td->classes[order[i]];
	}
	for (int64 r = 0; r < td->n; r++)
		td->y[r] = remap[td->y[r]];
	td->classes = sorted;
}

/* move the rows of x (width d) so that position k holds row perm[k] */
static void
permute_matrix(float *x, int32 *y, int d, int64 n, int64 *perm)
{
	float	   *tmp = palloc(sizeof(float) * Max(d, 1));

	for (int64 start = 0; start < n; start++)
	{
		int64		cur;
		int32		ylab = 0;

		if (perm[start] < 0 || perm[start] == start)
			continue;
		memcpy(tmp, x + start * d, sizeof(float) * d);
		if (y)
			ylab = y[start];
		cur = start;
		for (;;)
		{
			int64		src = perm[cur];

			perm[cur] = -1 - perm[cur];	/* done; recoverable */
			if (src == start)
			{
				memcpy(x + cur * d, tmp, sizeof(float) * d);
				if (y)
					y[cur] = ylab;
				break;
			}
			memcpy(x + cur * d, x + src * d, sizeof(float) * d);
			if (y)
				y[cur] = y[src];
			cur = src;
		}
	}
	/* give perm back as it was */
	for (int64 k = 0; k < n; k++)
		if (perm[k] < 0)
			perm[k] = -1 - perm[k];
	pfree(tmp);
}

/* move rows, cycle by cycle, so that position k holds row perm[k] */
static void
permute_rows(TrainData *td, int64 *perm)
{
	if (td->dextra > 0)
		permute_matrix(td->xextra, NULL, td->dextra, td->n, perm);
	permute_matrix(td->x, td->y, td->d, td->n, perm);
	if (td->w)
		permute_matrix(td->w, NULL, 1, td->n, perm);
}

/*
 * Stratified split: per class, a seeded shuffle puts round(test_size * n_c)
 * rows in the test split, keeping at least one in training.  Rows are then
 * permuted in place so that training rows come first; returns their number.
 * (The draw is next() mod n, as in 1.0, so a seed gives the split it gave.)
 */
int64
train_data_split(TrainData *td, double test_size, uint64 seed)
{
	int64	   *count = palloc0(sizeof(int64) * td->nclasses);
	int64	  **members = palloc(sizeof(int64 *) * td->nclasses);
	int64	   *fill = palloc0(sizeof(int64) * td->nclasses);
	bool	   *is_test = palloc_extended(sizeof(bool) * Max(td->n, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	int64	   *perm = palloc_extended(sizeof(int64) * Max(td->n, 1), MCXT_ALLOC_HUGE);
	int64		ntrain,
				k = 0;
	NidsRandom	rng;

	nids_random_init(&rng, seed);
	for (int64 r = 0; r < td->n; r++)
		count[td->y[r]]++;
	for (int c = 0; c < td->nclasses; c++)
		members[c] = palloc_extended(sizeof(int64) * Max(count[c], 1), MCXT_ALLOC_HUGE);
	for (int64 r = 0; r < td->n; r++)
		members[td->y[r]][fill[td->y[r]]++] = r;
	for (int c = 0; c < td->nclasses; c++)
	{
		int64		ntest = Min((int64) floor(test_size * count[c] + 0.5), count[c] - 1);

		/* every class with two rows or more has a hold-out row to judge it by */
		if (test_size > 0 && count[c] >= 2)
			ntest = Max(ntest, 1);

		/* partial Fisher-Yates: the first ntest of the shuffle are test rows */
		for (int64 i = 0; i < ntest; i++)
		{
			int64		j = i + (int64) (nids_random_next(&rng) % (uint64) (count[c] - i));
			int64		t = members[c][i];

			members[c][i] = members[c][j];
			members[c][j] = t;
			is_test[members[c][i]] = true;
		}
		pfree(members[c]);
	}
	/* perm[k] = the row that goes to position k: training rows first */
	for (int64 r = 0; r < td->n; r++)
		if (!is_test[r])
			perm[k++] = r;
	ntrain = k;
	for (int64 r = 0; r < td->n; r++)
		if (is_test[r])
			perm[k++] = r;
	permute_rows(td, perm);
	pfree(is_test);
	pfree(perm);
	return ntrain;
}

/*
 * Once XGBoost holds its own (quantised) training matrix, only the test
 * rows of ours are still needed: move them to the front and give the rest
 * back, before boosting allocates its gradients.
 */
void
train_data_keep_test_rows(TrainData *td, int64 ntrain, int k)
{
	int64		ntest = td->n - ntrain;

	memmove(td->x, td->x + ntrain * k, sizeof(float) * ntest * k);
	memmove(td->y, td->y + ntrain, sizeof(int32) * ntest);
	td->x = repalloc_huge(td->x, sizeof(float) * Max(ntest, 1) * k);
	td->y = repalloc_huge(td->y, sizeof(int32) * Max(ntest, 1));
	td->n = ntest;
	/* the weights served the training matrix only */
	if (td->w)
		pfree(td->w);
	td->w = NULL;
}

/*
 * Rows from `from` on carry share of class cls's weight, the class's rows
 * before them the rest; the class weighs as much as before (the class
 * balance is xgb.c's).  Nothing changes when either part has no row, or
 * share is 0.  Returns the share those rows carry.
 */
double
train_data_share_class(TrainData *td, int64 from, int cls, double share)
{
	int64		before = 0,
				after = 0;

	for (int64 r = 0; r < td->n; r++)
		if (td->y[r] == cls)
			(r < from ? before++ : after++);
	if (before == 0 || after == 0 || !(share > 0 && share < 1))
		return before + after > 0 ? (double) after / (before + after) : NAN;
	td->w = MemoryContextAllocHuge(td->cxt, sizeof(float) * Max(td->n, 1));
	for (int64 r = 0; r < td->n; r++)
		td->w[r] = td->y[r] != cls ? 1.0f
			: r < from ? (float) ((1 - share) * (before + after) / before)
			: (float) (share * (before + after) / after);
	return share;
}
