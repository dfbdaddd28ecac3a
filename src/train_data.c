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

static bool
is_excluded(const TrainOptions *opt, const char *name, const char *canon)
{
	for (int e = 0; e < opt->nexclude; e++)
		if (strcmp(opt->exclude[e], name) == 0 || strcmp(opt->exclude[e], canon) == 0)
			return true;
	return false;
}

/*
 * The candidate feature columns: numeric, not the label, not excluded.
 */
void
train_data_columns(TrainData *td, Oid relid, const char *label,
				   const TrainOptions *opt, char **qualified)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		has_label = false;

	*qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											RelationGetRelationName(rel));
	td->colnames = palloc(sizeof(char *) * Max(desc->natts, 1));
	td->features = palloc(sizeof(char *) * Max(desc->natts, 1));
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
		if (!nids_numeric_type(getBaseType(att->atttypid)))
			continue;
		canon = canonical_attname(name, norm, sizeof(norm));
		if (is_excluded(opt, name, canon))
			continue;
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
	if (td->d == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no numeric feature column", *qualified),
				 errhint("Features are the numeric columns other than the label and options.exclude.")));
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
	}
	/* the label's text is freed with the row by the reader */
	td->y[td->n] = class_of(td, TextDatumGetCString(label));
	memcpy(td->x + td->n * td->d, x, sizeof(float) * td->d);
	td->n++;
	if ((td->n & 65535) == 0 && elapsed_since(td->start) - td->last_notice > 5.0)
	{
		td->last_notice = elapsed_since(td->start);
		ereport(NOTICE,
				(errmsg("nids_train: read %lld rows, %.0f s", (long long) td->n, td->last_notice)));
	}
}

/*
 * Read the feature columns and the label of the source into td.
 */
void
train_data_read(TrainData *td, const char *qualified, const char *label)
{
	StringInfoData sql;
	HASHCTL		ctl;
	FlowQuery	query;

	INSTR_TIME_SET_CURRENT(td->start);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int j = 0; j < td->d; j++)
		appendStringInfo(&sql, "%s, ", quote_identifier(td->colnames[j]));
	appendStringInfo(&sql, "%s::pg_catalog.text FROM %s", quote_identifier(label), qualified);

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

	memset(&query, 0, sizeof(query));
	query.sql = sql.data;
	query.features = td->features;
	query.num_features = td->d;
	query.model = "(training)";
	query.label_attno = td->d + 1;
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

/* move rows so that position k holds row perm[k], cycle by cycle */
static void
permute_rows(TrainData *td, int64 *perm)
{
	float	   *tmp = palloc(sizeof(float) * td->d);

	for (int64 start = 0; start < td->n; start++)
	{
		int64		cur;
		int32		ylab;

		if (perm[start] < 0 || perm[start] == start)
			continue;
		memcpy(tmp, td->x + start * td->d, sizeof(float) * td->d);
		ylab = td->y[start];
		cur = start;
		for (;;)
		{
			int64		src = perm[cur];

			perm[cur] = -1;
			if (src == start)
			{
				memcpy(td->x + cur * td->d, tmp, sizeof(float) * td->d);
				td->y[cur] = ylab;
				break;
			}
			memcpy(td->x + cur * td->d, td->x + src * td->d, sizeof(float) * td->d);
			td->y[cur] = td->y[src];
			cur = src;
		}
	}
	pfree(tmp);
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
}
