/*-------------------------------------------------------------------------
 *
 * checks.h
 *	  Input checks shared by the SQL-callable entry points.
 *
 * Each check raises an ERROR with the most specific SQLSTATE and a message
 * that says what was expected; entry points call them first.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_CHECKS_H
#define NIDS_CHECKS_H

#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"

#define NIDS_MAX_NAME	63

static inline void
CheckModelName(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > NIDS_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must have 1 to %d characters", NIDS_MAX_NAME)));
}

static inline void
CheckFeatureArray(ArrayType *array, int expected, const char *model)
{
	if (ARR_ELEMTYPE(array) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a float8[] array")));
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("features must be a one-dimensional array, got %d dimensions",
						ARR_NDIM(array))));
	if (ARR_NDIM(array) == 0 || ARR_DIMS(array)[0] != expected)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("model \"%s\" expects %d features, got %d",
						model, expected,
						ARR_NDIM(array) == 0 ? 0 : ARR_DIMS(array)[0]),
				 errhint("Vectors are in the order of the model's feature_names in nids.models.")));
}

/* a text[] of names: one dimension, no NULL, no empty or duplicate name */
static inline void
CheckNameArray(ArrayType *array, const char *what)
{
	if (ARR_NDIM(array) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a non-empty one-dimensional array", what)));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL", what)));
}

#endif							/* NIDS_CHECKS_H */
