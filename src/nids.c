/*-------------------------------------------------------------------------
 *
 * nids.c
 *	  Module entry point: the nids.* settings, and nothing else.
 *
 * _PG_init may run in the postmaster (shared_preload_libraries); XGBoost
 * and OpenMP must never run there, so no model work happens here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "nids.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

int			nids_threads = 1;
int			nids_predictor = NIDS_PREDICTOR_NATIVE;
bool		nids_compact_evaluator = true;
bool		nids_explain_tables = true;
bool		nids_label_bounds = true;
int			nids_max_model_bytes = 64 * 1024 * 1024;
double		nids_min_feature_coverage = 0.9;
int			nids_alert_gap = 600;

const char *const nids_verdict_names[NIDS_NUM_VERDICTS] = {
	"attack", "anomaly", "benign"
};

static const struct config_enum_entry predictor_options[] = {
	{"native", NIDS_PREDICTOR_NATIVE, false},
	{"xgboost", NIDS_PREDICTOR_XGBOOST, false},
	{NULL, 0, false}
};

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("nids.threads",
							"Threads XGBoost may use in one backend (training and the xgboost predictor).",
							"Backends use one thread unless this says otherwise.",
							&nids_threads,
							1, 1, 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("nids.predictor",
							 "Which predictor scores flows: nids' native tree evaluator, or XGBoost's own.",
							 "The native evaluator agrees with XGBoost and avoids its per-call overhead; xgboost is for verification. Superuser only: XGBoost's predictor trusts the model bytes.",
							 &nids_predictor,
							 NIDS_PREDICTOR_NATIVE, predictor_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("nids.compact_evaluator",
							 "Walk trees in the compact 8-byte node form when the model allows it.",
							 "Off forces the wide form, which every model can use; for verification. Superuser only.",
							 &nids_compact_evaluator,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("nids.label_bounds",
							 "Stop adding trees once bounds on the trees left settle the predicted class (nids_classify and other label-only uses).",
							 "The class is the one the whole sum picks; off adds every tree.  For verification.  Superuser only.",
							 &nids_label_bounds,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("nids.explain_tables",
							 "Explain flows from per-leaf tables of TreeSHAP's results instead of walking TreeSHAP's recursion.",
							 "Both give the same bits; off is for verification.  Superuser only.",
							 &nids_explain_tables,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("nids.max_model_bytes",
							"The largest XGBoost model document nids_import_xgboost accepts.",
							"Parsing and converting a document takes memory proportional to its size; larger documents are refused with 54000.",
							&nids_max_model_bytes,
							64 * 1024 * 1024, 1024, INT_MAX,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomRealVariable("nids.min_feature_coverage",
							 "The least share of a model's features that rows must have to be scored.",
							 "Rows that lack some features get a WARNING naming them, once per statement; below this share nids_features, the trigger and ks_drift refuse them (42703).",
							 &nids_min_feature_coverage,
							 0.9, 0.0, 1.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("nids.alert_gap",
							"Flow time after an incident's last flow within which the source's next flagged flow grows it.",
							"A flagged flow that starts later opens a new incident.",
							&nids_alert_gap,
							600, 1, INT_MAX / 2,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("nids");
}

/*
 * Pin search_path to pg_catalog, pg_temp for SQL that nids runs on its own
 * behalf, at a GUC nest level of its own (as a function with a SET clause
 * does); nids_unpin_search_path(level) restores the caller's.  An ERROR in
 * between restores it too, with the (sub)transaction.
 */
int
nids_pin_search_path(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

void
nids_unpin_search_path(int nest)
{
	AtEOXact_GUC(true, nest);
}
