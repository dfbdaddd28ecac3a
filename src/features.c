/*-------------------------------------------------------------------------
 *
 * features.c
 *	  nids_features(record, model): a model's vector from any row, by
 *	  canonical column name; and the mapping the trigger shares.
 *
 * The column-to-feature map is built once per call site, row type and
 * model version, and kept in fn_extra: no catalogue query per row.  A
 * feature the row does not have, or a NULL, is a missing value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "canonical.h"
#include "catalog/pg_type.h"
#include "feature_map.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(nids_features);

bool
canonical_attname_equals(const char *attname, const char *feature)
{
	char		norm[NAMEDATALEN * 2];
	CanonicalKind kind;

	canonical_normalise(attname, strlen(attname), norm, sizeof(norm));
	return strcmp(canonical_name(norm, &kind), feature) == 0;
}

bool
nids_numeric_type(Oid t)
{
	return t == FLOAT8OID || t == FLOAT4OID || t == INT2OID || t == INT4OID ||
		t == INT8OID || t == NUMERICOID;
}

void
feature_map_build(FeatureMap *map, NidsModel *model, TupleDesc desc,
				  MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int			nf = model->num_features;

	map->model = model;
	map->version = model->version;
	map->desc = CreateTupleDescCopy(desc);
	map->attnum = palloc(sizeof(int) * nf);
	map->atttype = palloc(sizeof(Oid) * nf);
	map->matched = 0;
	for (int f = 0; f < nf; f++)
	{
		map->attnum[f] = -1;
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped ||
				!canonical_attname_equals(NameStr(att->attname), model->feature_names[f]))
				continue;
			map->atttype[f] = getBaseType(att->atttypid);
			if (!nids_numeric_type(map->atttype[f]))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" holds feature \"%s\" of model \"%s\" but has type %s",
								NameStr(att->attname), model->feature_names[f], model->name,
								format_type_be(att->atttypid)),
						 errhint("Feature columns must be numeric (float8, float4, integer or numeric).")));
			map->attnum[f] = i;
			map->matched++;
			break;
		}
	}
	map->values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	map->nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	MemoryContextSwitchTo(old);
}

/* a numeric column's value as float8; type is its base type */
double
nids_datum_to_double(Datum d, Oid type)
{
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		default:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
	}
}

/*
 * Fill x (mapped float32, for the models) and/or raw and missing (the
 * float8 values, for nids_features) from one tuple of the map's row type.
 */
void
feature_map_fill(FeatureMap *map, HeapTuple tuple, float *x, double *raw,
				 bool *missing)
{
	int			nf = map->model->num_features;

	/* one pass over the tuple: heap_getattr per column is quadratic on wide rows */
	heap_deform_tuple(tuple, map->desc, map->values, map->nulls);
	for (int f = 0; f < nf; f++)
	{
		int			a = map->attnum[f];
		bool		isnull = (a < 0) || map->nulls[a];
		double		v = isnull ? NAN : nids_datum_to_double(map->values[a], map->atttype[f]);

		if (x)
			x[f] = nids_map_value(v);
		if (raw)
		{
			raw[f] = v;
			missing[f] = isnull;
		}
	}
}

typedef struct FeaturesState
{
	FnModelCache cache;			/* must be first */
	FeatureMap	map;
	bool		built;
	MemoryContext cxt;			/* holds the map; reset on rebuild */
	double	   *raw;
	bool	   *missing;
	Datum	   *elems;
	int			cap;
} FeaturesState;

Datum
nids_features(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	FeaturesState *st = (FeaturesState *) fcinfo->flinfo->fn_extra;
	Oid			tupType = HeapTupleHeaderGetTypeId(rec);
	int32		tupTypmod = HeapTupleHeaderGetTypMod(rec);
	NidsModel  *model;
	HeapTupleData tuple;
	int			nf;
	int			dims[1];
	int			lbs[1] = {1};

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FeaturesState));
		st->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "nids_features map",
										ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = st;
	}
	model = model_lookup_cached(&st->cache, name);
	nf = model->num_features;
	if (!st->built || st->map.model != model || st->map.version != model->version ||
		st->map.tupType != tupType || st->map.tupTypmod != tupTypmod)
	{
		TupleDesc	desc;

		MemoryContextReset(st->cxt);
		st->built = false;
		desc = lookup_rowtype_tupdesc_copy(tupType, tupTypmod);
		feature_map_build(&st->map, model, desc, st->cxt);
		pfree(desc);
		st->map.tupType = tupType;
		st->map.tupTypmod = tupTypmod;
		st->raw = MemoryContextAlloc(st->cxt, sizeof(double) * nf);
		st->missing = MemoryContextAlloc(st->cxt, sizeof(bool) * nf);
		st->elems = MemoryContextAlloc(st->cxt, sizeof(Datum) * nf);
		st->built = true;
	}

	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	feature_map_fill(&st->map, &tuple, NULL, st->raw, st->missing);
	for (int f = 0; f < nf; f++)
		st->elems[f] = Float8GetDatum(st->raw[f]);
	dims[0] = nf;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(st->elems, st->missing, 1, dims, lbs,
											 FLOAT8OID, sizeof(float8),
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
