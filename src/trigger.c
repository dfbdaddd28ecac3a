/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  nids_score_trigger(): score flows as they are inserted or updated.
 *
 * BEFORE INSERT OR UPDATE ... FOR EACH ROW EXECUTE FUNCTION
 * nids_score_trigger(['model']).  Features are read from the new row by
 * canonical column name; the trigger fills whichever of predicted_label,
 * probability, anomaly_score, novel and verdict the table has.  The map of
 * columns and the scoring buffers are built once per statement (fn_extra),
 * so COPY and INSERT ... SELECT pay one tree walk per row and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "feature_map.h"
#include "scoring.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(nids_score_trigger);

enum
{
	OUT_LABEL,
	OUT_PROBABILITY,
	OUT_ANOMALY,
	OUT_NOVEL,
	OUT_VERDICT,
	NUM_OUTPUTS
};

static const char *const output_names[NUM_OUTPUTS] = {
	"predicted_label", "probability", "anomaly_score", "novel", "verdict"
};
static const Oid output_types[NUM_OUTPUTS] = {
	TEXTOID, FLOAT8OID, FLOAT8OID, BOOLOID, TEXTOID
};

typedef struct TriggerState
{
	ScoreState	score;			/* must be first: holds the model cache */
	FeatureMap	map;
	bool		built;
	MemoryContext cxt;
	int			outcol[NUM_OUTPUTS];	/* 1-based attribute numbers, 0: absent */
	text	   *model_name;		/* the trigger's argument, made once */
} TriggerState;

Datum
nids_score_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerState *st;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tuple;
	const char *model_name;
	NidsModel  *model;
	int			cols[NUM_OUTPUTS];
	Datum		values[NUM_OUTPUTS];
	bool		nulls[NUM_OUTPUTS];
	int			n = 0;
	int			label = -1;
	double		anomaly = 0;
	bool		need_class,
				need_anomaly;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nids_score_trigger() must be called as a trigger")));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nids_score_trigger() must be a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger")));
	if (trigdata->tg_trigger->tgnargs > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nids_score_trigger() takes at most one argument, the model name")));

	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple
		: trigdata->tg_trigtuple;
	model_name = trigdata->tg_trigger->tgnargs == 1 ? trigdata->tg_trigger->tgargs[0] : "default";

	st = (TriggerState *) fcinfo->flinfo->fn_extra;
	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(TriggerState));
		st->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "nids trigger map",
										ALLOCSET_SMALL_SIZES);
		st->model_name = (text *) MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
													 VARHDRSZ + strlen(model_name));
		SET_VARSIZE(st->model_name, VARHDRSZ + strlen(model_name));
		memcpy(VARDATA(st->model_name), model_name, strlen(model_name));
		fcinfo->flinfo->fn_extra = st;
	}
	score_state(fcinfo, st->model_name);
	model = st->score.model;

	if (!st->built || st->map.model != model || st->map.version != model->version)
	{
		MemoryContextReset(st->cxt);
		st->built = false;
		feature_map_build(&st->map, model, desc, st->cxt);
		if (st->map.matched == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has none of the %d features of model \"%s\"",
							RelationGetRelationName(rel), model->num_features, model->name),
					 errhint("Columns are matched by canonical name, e.g. \"%s\"; nids-load creates them.",
							 model->feature_names[0])));
		for (int o = 0; o < NUM_OUTPUTS; o++)
		{
			st->outcol[o] = 0;
			for (int i = 0; i < desc->natts; i++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, i);

				if (att->attisdropped || strcmp(NameStr(att->attname), output_names[o]) != 0)
					continue;
				if (getBaseType(att->atttypid) != output_types[o])
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("column \"%s\" must have type %s, not %s",
									output_names[o], format_type_be(output_types[o]),
									format_type_be(att->atttypid))));
				st->outcol[o] = i + 1;
			}
		}
		st->built = true;
	}

	need_class = st->outcol[OUT_LABEL] || st->outcol[OUT_PROBABILITY] || st->outcol[OUT_VERDICT];
	need_anomaly = st->outcol[OUT_ANOMALY] || st->outcol[OUT_NOVEL] || st->outcol[OUT_VERDICT];
	if (!need_class && !need_anomaly)
		return PointerGetDatum(tuple);

	feature_map_fill(&st->map, tuple, st->score.x, NULL, NULL);
	if (need_class)
		label = score_classify(&st->score);
	if (need_anomaly)
		anomaly = score_anomaly(&st->score);

	memset(nulls, 0, sizeof(nulls));
	if (st->outcol[OUT_LABEL])
	{
		cols[n] = st->outcol[OUT_LABEL];
		values[n++] = CStringGetTextDatum(model->class_labels[label]);
	}
	if (st->outcol[OUT_PROBABILITY])
	{
		cols[n] = st->outcol[OUT_PROBABILITY];
		values[n++] = Float8GetDatum(st->score.proba[label]);
	}
	if (st->outcol[OUT_ANOMALY])
	{
		cols[n] = st->outcol[OUT_ANOMALY];
		values[n++] = Float8GetDatum(anomaly);
	}
	if (st->outcol[OUT_NOVEL])
	{
		cols[n] = st->outcol[OUT_NOVEL];
		values[n++] = BoolGetDatum(anomaly > model->anomaly_threshold);
	}
	if (st->outcol[OUT_VERDICT])
	{
		const char *verdict = label != model->benign_class ? "attack"
			: anomaly > model->anomaly_threshold ? "anomaly" : "benign";

		cols[n] = st->outcol[OUT_VERDICT];
		values[n++] = CStringGetTextDatum(verdict);
	}
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, n, cols, values, nulls));
}
