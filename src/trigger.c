/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  nids_score_trigger(): score flows as they are inserted or updated.
 *
 * BEFORE INSERT OR UPDATE ... FOR EACH ROW EXECUTE FUNCTION
 * nids_score_trigger(['model']).  Features are read from the new row by
 * canonical column name; the trigger fills whichever of predicted_label,
 * probability, anomaly_score, novel, novelty and verdict the table has.  The map of
 * columns, the scoring buffers and the texts of the labels and verdicts are
 * built once per statement (fn_extra), and the row is deformed once, both
 * to read the features and to form the scored row, so COPY and INSERT ...
 * SELECT pay the tree walks per row and little else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "flow.h"
#include "scoring.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(nids_score_trigger);

enum
{
	OUT_LABEL,
	OUT_PROBABILITY,
	OUT_ANOMALY,
	OUT_NOVEL,
	OUT_NOVELTY,
	OUT_VERDICT,
	NUM_OUTPUTS
};

static const char *const output_names[NUM_OUTPUTS] = {
	"predicted_label", "probability", "anomaly_score", "novel", "novelty", "verdict"
};
static const Oid output_types[NUM_OUTPUTS] = {
	TEXTOID, FLOAT8OID, FLOAT8OID, BOOLOID, FLOAT8OID, TEXTOID
};

typedef struct TriggerState
{
	ScoreState	score;
	FeatureMap	map;
	NidsModel  *map_model;		/* the map was built for this model ... */
	int32		map_version;	/* ... at this version */
	MemoryContext cxt;
	int			outcol[NUM_OUTPUTS];	/* 1-based attribute numbers, 0: absent */
	text	   *model_name;		/* the trigger's argument, made once */
	Datum	   *label_text;		/* [num_classes] class labels as text */
	Datum		verdict_text[NIDS_NUM_VERDICTS];	/* nids_verdict_names as text */
} TriggerState;

static TriggerData *
trigger_check_call(FunctionCallInfo fcinfo)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

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
	return trigdata;
}

/* the state of this trigger's call site, created on its first row */
static TriggerState *
trigger_state(FunctionCallInfo fcinfo, TriggerData *trigdata)
{
	TriggerState *st = (TriggerState *) fcinfo->flinfo->fn_extra;
	const char *model_name;

	if (st != NULL)
		return st;
	model_name = trigdata->tg_trigger->tgnargs == 1 ? trigdata->tg_trigger->tgargs[0] : "default";
	st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(TriggerState));
	st->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "nids trigger map",
									ALLOCSET_SMALL_SIZES);
	st->model_name = (text *) MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
												 VARHDRSZ + strlen(model_name));
	SET_VARSIZE(st->model_name, VARHDRSZ + strlen(model_name));
	memcpy(VARDATA(st->model_name), model_name, strlen(model_name));
	fcinfo->flinfo->fn_extra = st;
	return st;
}

/*
 * A column that looks like a misspelt output column ("prob", "predicted",
 * "verdicts"): not a known CICFlowMeter name and not a feature of the
 * model, and either a prefix of an output's name or within one edit of
 * it (two for a name of 8 characters or more).  Scoring a table whose outputs go nowhere is refused (42703).
 */
static void
check_misspelt_outputs(TupleDesc desc, const FeatureMap *map)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		size_t		len = strlen(name);
		char		norm[NAMEDATALEN * 2];
		CanonicalKind kind;
		bool		feature = false;
		char	   *lower;

		if (att->attisdropped || nids_is_output_column(name))
			continue;
		canonical_normalise(name, len, norm, sizeof(norm));
		(void) canonical_name(norm, &kind);
		for (int f = 0; f < map->num_features; f++)
			feature |= map->attnum[f] == i;
		if (kind != CANON_UNKNOWN || feature)
			continue;
		/*
		 * one rule whatever the case: "VERDICT" and "Verdict" are
		 * misspellings of verdict, as "verdicts" is
		 */
		lower = asc_tolower(name, len);
		for (int o = 0; o < NUM_OUTPUTS; o++)
		{
			const char *out = output_names[o];

			if ((len >= 4 && strncmp(out, lower, len) == 0) ||
				varstr_levenshtein(lower, len, out, strlen(out), 1, 1, 1, false) <= (len >= 8 ? 2 : 1))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" is not an output of nids_score_trigger", name),
						 errdetail("The trigger fills the columns predicted_label, probability, anomaly_score, novel, novelty and verdict, whichever the table has."),
						 errhint("Did you mean \"%s\"? Rename the column, or exclude it from the trigger's table.", out)));
		}
	}
}

/* the output columns the table has, type-checked */
static void
find_output_columns(TriggerState *st, TupleDesc desc)
{
	bool		any = false;

	for (int o = 0; o < NUM_OUTPUTS; o++)
	{
		st->outcol[o] = 0;
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || strcmp(NameStr(att->attname), output_names[o]) != 0)
				continue;
			if (att->atttypid != output_types[o])
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" must have type %s, not %s",
								output_names[o], format_type_be(output_types[o]),
								format_type_be(att->atttypid)),
						 getBaseType(att->atttypid) == output_types[o] ?
						 errdetail("nids_score_trigger writes plain %s values and does not check a domain's constraints.",
								   format_type_be(output_types[o])) : 0));
			if (att->attgenerated)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("column \"%s\" is a generated column, which nids_score_trigger cannot fill",
								output_names[o])));
			st->outcol[o] = i + 1;
			any = true;
		}
	}
	check_misspelt_outputs(desc, &st->map);
	if (!any)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table has none of the columns nids_score_trigger fills"),
				 errhint("Add one or more of predicted_label text, probability float8, anomaly_score float8, novel boolean, novelty float8, verdict text.")));
}

/* the column map, output columns and texts, for model and this table */
static void
trigger_rebuild(TriggerState *st, Relation rel, NidsModel *model)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;

	MemoryContextReset(st->cxt);
	st->map_model = NULL;
	feature_map_build(&st->map, model->feature_names, model->num_features, model->name,
					  desc, st->cxt);
	if (st->map.matched == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has none of the %d features of model \"%s\"",
						RelationGetRelationName(rel), model->num_features, model->name),
				 errhint("Columns are matched by canonical name, e.g. \"%s\"; nids-load creates them.",
						 model->feature_names[0])));
	feature_map_check_coverage(&st->map, model->feature_names, model->name);
	for (int f = 0; f < st->map.num_features; f++)
		if (st->map.attnum[f] >= 0 && TupleDescAttr(desc, st->map.attnum[f])->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("feature \"%s\" of model \"%s\" is in generated column \"%s\", which is still NULL when BEFORE triggers run",
							model->feature_names[f], model->name,
							NameStr(TupleDescAttr(desc, st->map.attnum[f])->attname)),
					 errhint("Store the feature in an ordinary column, or score with nids_features in a query or a view.")));
	find_output_columns(st, desc);
	old = MemoryContextSwitchTo(st->cxt);
	st->label_text = palloc(sizeof(Datum) * model->num_classes);
	for (int c = 0; c < model->num_classes; c++)
		st->label_text[c] = CStringGetTextDatum(model->class_labels[c]);
	for (int v = 0; v < NIDS_NUM_VERDICTS; v++)
		st->verdict_text[v] = CStringGetTextDatum(nids_verdict_names[v]);
	MemoryContextSwitchTo(old);
	st->map_model = model;
	st->map_version = model->version;
}

static inline void
set_output(TriggerState *st, int output, Datum value)
{
	if (st->outcol[output])
	{
		st->map.values[st->outcol[output] - 1] = value;
		st->map.nulls[st->outcol[output] - 1] = false;
	}
}

Datum
nids_score_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = trigger_check_call(fcinfo);
	TriggerState *st = trigger_state(fcinfo, trigdata);
	HeapTuple	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple
		: trigdata->tg_trigtuple;
	HeapTuple	scored;
	NidsModel  *model;
	int			label = -1;
	double		anomaly = NAN;
	double		novelty = 0;
	bool		novel = false;
	bool		need_class,
				need_novelty;

	score_prepare(&st->score, fcinfo->flinfo->fn_mcxt, st->model_name, 0);
	model = st->score.model;
	if (st->map_model != model || st->map_version != model->version)
		trigger_rebuild(st, trigdata->tg_relation, model);

	need_class = st->outcol[OUT_LABEL] || st->outcol[OUT_PROBABILITY] || st->outcol[OUT_VERDICT] ||
		st->outcol[OUT_NOVEL] || st->outcol[OUT_NOVELTY];
	if (!need_class && !st->outcol[OUT_ANOMALY])
		return PointerGetDatum(tuple);

	feature_map_fill(&st->map, tuple, st->score.x, NULL, NULL);
	if (need_class)
		label = score_classify(&st->score);

	/*
	 * The gate runs when its outputs are asked for, or for a verdict when
	 * the label is benign (a model without the forest its gate needs is
	 * refused whatever the label, on every row, as 1.0 did).
	 */
	need_novelty = st->outcol[OUT_NOVEL] || st->outcol[OUT_NOVELTY] ||
		(st->outcol[OUT_VERDICT] &&
		 (label == model->benign_class || (model->novelty == NULL && model->iforest == NULL)));
	if (st->outcol[OUT_ANOMALY])
		anomaly = score_anomaly(&st->score);
	if (need_novelty)
		novelty = score_novelty(&st->score, &anomaly, &novel);

	/* the deformed row, with the result columns replaced */
	if (need_class)
	{
		set_output(st, OUT_LABEL, st->label_text[label]);
		set_output(st, OUT_PROBABILITY, Float8GetDatum(st->score.proba[label]));
		set_output(st, OUT_VERDICT,
				   st->verdict_text[nids_verdict(label, model->benign_class, novel)]);
	}
	if (!isnan(anomaly))
		set_output(st, OUT_ANOMALY, Float8GetDatum(anomaly));
	if (need_novelty)
	{
		set_output(st, OUT_NOVEL, BoolGetDatum(novel));
		set_output(st, OUT_NOVELTY, Float8GetDatum(novelty));
	}

	/* as heap_modify_tuple does, without deforming the row a second time */
	scored = heap_form_tuple(RelationGetDescr(trigdata->tg_relation), st->map.values, st->map.nulls);
	scored->t_data->t_ctid = tuple->t_data->t_ctid;
	scored->t_self = tuple->t_self;
	scored->t_tableOid = tuple->t_tableOid;
	return PointerGetDatum(scored);
}
