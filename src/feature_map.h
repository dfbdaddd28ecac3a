/*-------------------------------------------------------------------------
 *
 * feature_map.h
 *	  Row-to-vector mapping by canonical column name.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_FEATURES_H
#define NIDS_FEATURES_H

#include "nids.h"
#include "access/htup.h"
#include "access/tupdesc.h"

typedef struct FeatureMap
{
	NidsModel  *model;			/* built for this model ... */
	int32		version;		/* ... at this version ... */
	Oid			tupType;		/* ... and this row type */
	int32		tupTypmod;
	TupleDesc	desc;			/* copy, in the map's context */
	int		   *attnum;			/* [num_features] 0-based attribute, or -1 */
	Oid		   *atttype;		/* [num_features] its base type */
	int			matched;		/* features the row type has */
	Datum	   *values;			/* deform buffers [desc->natts] */
	bool	   *nulls;
} FeatureMap;

extern void feature_map_build(FeatureMap *map, NidsModel *model, TupleDesc desc,
							  MemoryContext cxt);
extern void feature_map_fill(FeatureMap *map, HeapTuple tuple, float *x,
							 double *raw, bool *missing);
extern bool canonical_attname_equals(const char *attname, const char *feature);
extern bool nids_numeric_type(Oid base_type);
extern double nids_datum_to_double(Datum d, Oid base_type);

#endif							/* NIDS_FEATURES_H */
