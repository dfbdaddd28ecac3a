/*-------------------------------------------------------------------------
 *
 * train_attach.c
 *	  nids_attach_benign(model, benign_flows, options): give a model that
 *	  has no isolation forest or drift reference (an imported XGBoost
 *	  model) both, from a table of benign flows.
 *
 * The flows are read by the one reader (flow_reader.c) with the caller's
 * privileges and mapped onto the model's features by canonical column
 * name, as nids_features maps them.  The isolation forest and the benign
 * prototypes are trained on all but a seeded hold-out of test_size of them,
 * on which the novelty gate is calibrated (train_novelty.c: benign_fpr of
 * them get another verdict than benign, the classifier's false alarms
 * included); the drift references are built from all of them.  The result is a new version of the model, with the same booster.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "drift.h"
#include "flow.h"
#include "random.h"
#include "report.h"
#include "scoring.h"
#include "train.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(nids_attach_benign);

typedef struct BenignRows
{
	int			d;
	int64		n;
	int64		cap;
	float	   *x;				/* row-major n x d */
} BenignRows;

static void
add_benign_row(void *arg, const float *x, Datum label, bool label_isnull)
{
	BenignRows *b = (BenignRows *) arg;

	if (b->n == b->cap)
	{
		b->cap *= 2;
		b->x = repalloc_huge(b->x, sizeof(float) * b->cap * b->d);
	}
	memcpy(b->x + b->n * b->d, x, sizeof(float) * b->d);
	b->n++;
}

/* every row of relid, as model's feature vectors */
static void
read_benign(Oid relid, NidsModel *model, BenignRows *b, char **qualified)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	FlowQuery	query;

	*qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											RelationGetRelationName(rel));
	relation_close(rel, AccessShareLock);
	b->d = model->num_features;
	b->cap = 4096;
	b->x = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * b->cap * b->d);
	memset(&query, 0, sizeof(query));
	query.sql = psprintf("SELECT * FROM %s", *qualified);
	query.features = model->feature_names;
	query.num_features = model->num_features;
	query.model = model->name;
	flow_read(&query, add_benign_row, b);
	if (b->n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %lld rows; at least two benign flows are needed",
						*qualified, (long long) b->n)));
}

/* the class of the benign label in model, or -1 */
static int
benign_class_of(const NidsModel *model, const char *benign_label)
{
	for (int c = 0; c < model->num_classes; c++)
		if (pg_strcasecmp(model->class_labels[c], benign_label) == 0)
			return c;
	return -1;
}

/*
 * The gate: prototypes of the training rows, calibrated with the isolation
 * forest's own threshold on the n calibration rows, counting the model's
 * classifier's false alarms (by its tau where it has one: every verdict
 * of the version decides so).  Without a benign class the classifier never
 * says benign and the gate is the isolation forest.
 */
static NoveltyGate *
attach_gate(NidsModel *model, const BenignRows *b, const int64 *train, int64 ntrain,
			const int64 *calib, int64 n, const NidsForest *iforest,
			const TrainOptions *opt, const char *calibrated_on, GateCalibration *cal)
{
	int			benign = benign_class_of(model, opt->benign_label);
	NoveltyGate *g = novelty_train(b->x, b->d, train, ntrain, opt->prototypes, opt->seed);
	GateSamples samples;
	float	   *scratch = palloc(sizeof(float) * Max(forest_scratch_size(iforest),
												  forest_scratch_size(model->forest)));
	float	   *margin = palloc(sizeof(float) * model->forest->num_groups);
	double	   *proba = palloc(sizeof(double) * model->num_classes);
	float	   *z = palloc(sizeof(float) * g->padded_features);

	gate_samples_init(&samples, n);
	for (int64 i = 0; i < n; i++)
	{
		const float *x = b->x + calib[i] * b->d;
		int			label = forest_predict_class(model->forest, model->num_classes, x,
												 margin, proba, scratch);
		NoveltyInputs in;

		/* the classifier's false alarm, as the version decides: by its tau */
		label = score_tau_label(model, proba, label);
		novelty_inputs(g, iforest, x, classifier_uncertainty(proba, benign), true, z,
					   scratch, &in);
		gate_samples_add(&samples, &in, benign >= 0 && label != benign);
		nids_check_interrupts(i);
	}
	gate_calibrate(g, benign >= 0 ? opt->novelty_method : NOVELTY_IFOREST, &samples,
				   opt->benign_fpr, calibrated_on, cal);
	return g;
}

/* what nids_attach_benign fitted, as the version's metrics */
Jsonb *
attach_report(NidsModel *model, const char *qualified, const AttachFit *fit,
			  const TrainOptions *opt)
{
	const NidsForest *iforest = fit->iforest;
	const NoveltyGate *gate = fit->gate;
	int64		ntrain = fit->ntrain;
	int64		ntest = fit->ntest;
	const GateCalibration *cal = &fit->cal;
	JsonbParseState *st = NULL;

	report_begin(&st, NULL);
	report_string(&st, "source", "nids_attach_benign");
	report_int(&st, "from_version", model->version);
	report_string(&st, "benign_relation", qualified);
	report_begin(&st, "iforest");
	report_int(&st, "trees", iforest->num_trees);
	report_int(&st, "sample_size", iforest->sample_size);
	report_string(&st, "scale", iforest_scale_names[opt->iforest.scale]);
	report_int(&st, "benign_training_rows", ntrain);
	report_int(&st, "held_out_rows", ntest);
	report_number(&st, "benign_fpr", opt->benign_fpr);
	report_number(&st, "threshold", cal->iforest_threshold);
	report_end(&st);
	novelty_report(&st, gate, cal);
	return report_finish(&st);
}

/*
 * Fit a gate and a drift reference for model's classifier to the n benign
 * flows x (its features, in its order): the isolation forest and the
 * benign prototypes on all but a seeded hold-out of opt->test_size of
 * them (or, nlearn > 0, on the first nlearn), the gate calibrated on the
 * others, the reference built from all of them.  What nids_attach_benign and the adaptation register.
 */
void
attach_fit(NidsModel *model, const float *x, int64 n, int64 nlearn, const TrainOptions *opt,
		   AttachFit *fit)
{
	BenignRows	b = {model->num_features, n, n, (float *) x};
	int64	   *rows;

	if (nlearn > 0 && nlearn < n)
	{
		/* the caller's split: the first nlearn learn, the others calibrate */
		rows = palloc_extended(sizeof(int64) * n, MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < n; i++)
			rows[i] = i;
		fit->ntrain = nlearn;
		fit->ntest = n - nlearn;
	}
	else
	{
		rows = nids_random_permutation(n, opt->seed);
		fit->ntest = Min((int64) floor(opt->test_size * n + 0.5), n - 1);
		fit->ntrain = n - fit->ntest;
	}
	fit->iforest = iforest_train(x, b.d, rows, fit->ntrain, &opt->iforest);
	fit->gate = fit->ntest > 0
		? attach_gate(model, &b, rows, fit->ntrain, rows + fit->ntrain, fit->ntest, fit->iforest,
					  opt, "held-out benign flows", &fit->cal)
		: attach_gate(model, &b, rows, fit->ntrain, rows, fit->ntrain, fit->iforest, opt,
					  "benign training flows", &fit->cal);
	/* the drift reference is built from all of them, in their order */
	fit->rows = rows;
	rows = palloc_extended(sizeof(int64) * Max(n, 1), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
		rows[i] = i;
	fit->reference = drift_reference_build(x, b.d, rows, n, opt->seed);
	/* the classifier's own decision threshold stays with it */
	fit->benign_threshold = model->benign_threshold;
	pfree(rows);
}

/*
 * Register a new version of model: its classifier with what fit gave it
 * (the drift reference is benign flows only, so it is both references).
 */
int32
attach_register(NidsModel *model, const AttachFit *fit, const TrainOptions *opt,
				Jsonb *metrics, bool deployed)
{
	ModelRecord rec;

	memset(&rec, 0, sizeof(rec));
	rec.name = model->name;
	rec.booster = model_booster_bytes(model);
	rec.native = forest_serialize(model->forest);
	rec.feature_names = catalog_text_array(model->feature_names, model->num_features);
	rec.class_labels = catalog_text_array(model->class_labels, model->num_classes);
	rec.metrics = metrics;
	rec.deployed = deployed;
	rec.iforest = forest_serialize(fit->iforest);
	rec.anomaly_threshold = fit->cal.iforest_threshold;
	rec.novelty = novelty_serialize(fit->gate);
	rec.reference = fit->reference;
	rec.benign_reference = fit->reference;
	rec.benign_label = opt->benign_label;
	rec.benign_threshold = fit->benign_threshold;
	return catalog_register(&rec);
}

Datum
nids_attach_benign(PG_FUNCTION_ARGS)
{
	TrainOptions opt;
	NidsModel  *model;
	char	   *qualified;
	BenignRows	benign;
	AttachFit	fit;
	int32		version;
	MemoryContext cxt,
				old;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model and benign_flows must not be NULL")));
	train_options_parse(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &opt);
	model = model_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "nids attach", ALLOCSET_DEFAULT_SIZES);
	/* reading the flows may run scoring functions (a view): hold the model */
	model_pin(model, cxt);
	old = MemoryContextSwitchTo(cxt);
	memset(&benign, 0, sizeof(benign));
	read_benign(PG_GETARG_OID(1), model, &benign, &qualified);
	attach_fit(model, benign.x, benign.n, 0, &opt, &fit);

	version = attach_register(model, &fit, &opt, attach_report(model, qualified, &fit, &opt),
							  opt.deploy != DEPLOY_NEVER);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	PG_RETURN_INT32(version);
}
