/*-------------------------------------------------------------------------
 *
 * train_report.c
 *	  The metrics report of nids_train, and the hold-out statistics that go
 *	  into it (per-class scores, macro F1, ROC-AUC).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "report.h"
#include "train.h"
#include "utils/jsonb.h"

/* precision, recall and F1 of class c from the confusion matrix */
static void
class_scores(const int64 *confusion, int nclasses, int c, double *precision,
			 double *recall, double *f1, int64 *support)
{
	int64		tp = confusion[c * nclasses + c],
				fp = 0,
				fn = 0;

	*support = 0;
	for (int o = 0; o < nclasses; o++)
	{
		*support += confusion[c * nclasses + o];
		if (o != c)
		{
			fp += confusion[o * nclasses + c];
			fn += confusion[c * nclasses + o];
		}
	}
	/* undefined (NaN, null in the report) without predictions or rows */
	*precision = (tp + fp) > 0 ? (double) tp / (tp + fp) : NAN;
	*recall = (tp + fn) > 0 ? (double) tp / (tp + fn) : NAN;
	if (isnan(*recall))
		*f1 = NAN;
	else if (isnan(*precision) || *precision + *recall == 0)
		*f1 = 0.0;
	else
		*f1 = 2 * *precision * *recall / (*precision + *recall);
}

/* mean F1 over the classes with test rows; NaN when none has */
double
macro_f1(const int64 *confusion, int nclasses)
{
	return macro_f1_judged(confusion, nclasses, 1);
}

/*
 * Macro F1 over the classes with at least min_support hold-out rows: a
 * class of two or three test rows swings it by a third either way, which
 * no deployment decision should hang on.
 */
double
macro_f1_judged(const int64 *confusion, int nclasses, int64 min_support)
{
	double		sum = 0;
	int			n = 0;

	for (int c = 0; c < nclasses; c++)
	{
		double		precision,
					recall,
					f1;
		int64		support;

		class_scores(confusion, nclasses, c, &precision, &recall, &f1, &support);
		if (support >= min_support && support > 0)
		{
			sum += f1;
			n++;
		}
	}
	return n > 0 ? sum / n : NAN;
}

/*
 * per_class (precision null for a class never predicted, recall and F1
 * null for one without test rows), macro_f1 (over classes with test rows), accuracy and the
 * confusion matrix (rows are the true class).
 */
void
report_classifier(JsonbParseState **st, const int64 *confusion, char **classes,
				  int nclasses, int64 ntest)
{
	int64		correct = 0;

	report_begin(st, "per_class");
	for (int c = 0; c < nclasses; c++)
	{
		double		precision,
					recall,
					f1;
		int64		support;

		class_scores(confusion, nclasses, c, &precision, &recall, &f1, &support);
		correct += confusion[c * nclasses + c];
		report_begin(st, classes[c]);
		report_number(st, "precision", precision);
		report_number(st, "recall", recall);
		report_number(st, "f1", f1);
		report_int(st, "support", support);
		report_bool(st, "judged", support >= NIDS_MIN_JUDGED_SUPPORT);
		report_end(st);
	}
	report_end(st);
	report_number(st, "macro_f1", macro_f1(confusion, nclasses));
	report_number(st, "macro_f1_judged", macro_f1_judged(confusion, nclasses, NIDS_MIN_JUDGED_SUPPORT));
	report_number(st, "accuracy", ntest > 0 ? (double) correct / ntest : NAN);
	report_begin(st, "confusion_matrix");
	report_names(st, "labels", classes, nclasses);
	report_string(st, "rows_are", "true class");
	report_array_begin(st, "matrix");
	for (int c = 0; c < nclasses; c++)
		report_int_row(st, confusion + c * nclasses, nclasses);
	report_array_end(st);
	report_end(st);
}

static int
compare_score(const void *a, const void *b)
{
	double		x = ((const double *) a)[0];
	double		y = ((const double *) b)[0];

	return (x > y) - (x < y);
}

/*
 * ROC-AUC of (score, is_positive) pairs (Mann-Whitney, ties halved); NaN
 * without both kinds.
 */
double
roc_auc(double *pairs, int64 n)
{
	int64		npos = 0,
				nneg = 0;
	double		rank_sum = 0;

	qsort(pairs, n, sizeof(double) * 2, compare_score);
	for (int64 i = 0; i < n;)
	{
		int64		j = i;
		double		avg_rank;

		while (j < n && pairs[j * 2] == pairs[i * 2])
			j++;
		avg_rank = (i + 1 + j) / 2.0;
		for (int64 k = i; k < j; k++)
		{
			if (pairs[k * 2 + 1] > 0)
			{
				npos++;
				rank_sum += avg_rank;
			}
			else
				nneg++;
		}
		i = j;
	}
	if (npos == 0 || nneg == 0)
		return NAN;
	return (rank_sum - npos * (npos + 1) / 2.0) / ((double) npos * nneg);
}


static void
report_gates(TrainState *ts, JsonbParseState **st)
{
	const IForestParams *p = &ts->opt.iforest;

	novelty_report(st, ts->gate, &ts->calibration);
	report_begin(st, "iforest");
	report_int(st, "trees", ts->iforest->num_trees);
	report_int(st, "sample_size", ts->iforest->sample_size);
	report_int(st, "max_depth", p->max_depth > 0 ? p->max_depth
			   : (int) ceil(log2(Max(ts->iforest->sample_size, 2))));
	report_string(st, "scale", iforest_scale_names[p->scale]);
	report_int(st, "benign_training_rows", ts->nbenign);
	report_number(st, "benign_fpr", ts->opt.benign_fpr);
	report_number(st, "threshold", ts->calibration.iforest_threshold);
	report_number(st, "roc_auc", ts->auc);
	report_end(st);
	report_begin(st, "ensemble");
	report_int(st, "attack", ts->verdicts[NIDS_VERDICT_ATTACK]);
	report_int(st, "anomaly", ts->verdicts[NIDS_VERDICT_ANOMALY]);
	report_int(st, "benign", ts->verdicts[NIDS_VERDICT_BENIGN]);
	report_end(st);
}

static void
report_training(TrainState *ts, JsonbParseState **st)
{
	const TrainOptions *opt = &ts->opt;

	report_begin(st, "params");
	report_string(st, "objective", "multi:softprob");
	report_int(st, "num_class", ts->td.nclasses);
	report_int(st, "rounds", opt->rounds);
	for (int i = 0; i < opt->nparams; i++)
		report_string(st, opt->param_keys[i], opt->param_values[i]);
	report_end(st);
	report_int(st, "seed", (int64) opt->seed);
	report_number(st, "test_size", opt->test_size);
	report_number(st, "correlation_threshold", opt->correlation_threshold);
	report_begin(st, "timings");
	report_number(st, "read_s", ts->timings[T_READ]);
	report_number(st, "preprocess_s", ts->timings[T_PREPROCESS] - ts->timings[T_READ]);
	report_number(st, "iforest_and_reference_s", ts->timings[T_IFOREST] - ts->timings[T_PREPROCESS]);
	report_number(st, "train_s", ts->timings[T_TRAIN] - ts->timings[T_IFOREST]);
	report_number(st, "total_s", ts->timings[T_TOTAL]);
	report_end(st);
}

/* rows: how many were read, trained on, held out, skipped for a NULL label */
static void
report_rows(TrainState *ts, JsonbParseState **st)
{
	report_begin(st, "rows");
	report_int(st, "total", ts->ntrain + ts->ntest);
	report_int(st, "train", ts->ntrain);
	report_int(st, "test", ts->ntest);
	report_int(st, "null_label_skipped", ts->td.skipped);
	report_end(st);
}

/* nids_train's report, stored as the version's metrics */
Jsonb *
train_report(TrainState *ts)
{
	JsonbParseState *st = NULL;
	TrainData  *td = &ts->td;
	double	   *gain,
			   *cover;
	int64	   *splits;

	ts->timings[T_TOTAL] = elapsed_since(ts->start);
	report_begin(&st, NULL);
	report_string(&st, "source", "nids_train");
	report_string(&st, "relation", ts->qualified);
	report_string(&st, "label_column", ts->label);
	report_names(&st, "feature_names", ts->kept, ts->k);
	report_names(&st, "class_labels", td->classes, td->nclasses);
	report_array_begin(&st, "dropped");
	for (int i = 0; i < ts->pre.ndropped; i++)
	{
		report_element_begin(&st);
		report_string(&st, "column", td->colnames[ts->pre.dropped[i]]);
		report_string(&st, "reason", ts->pre.reasons[i]);
		report_end(&st);
	}
	report_array_end(&st);
	report_array_begin(&st, "left_out");
	for (int i = 0; i < td->nleft_out; i++)
	{
		report_element_begin(&st);
		report_string(&st, "column", td->left_out[i]);
		report_string(&st, "reason", td->left_out_reasons[i]);
		report_end(&st);
	}
	report_array_end(&st);
	report_bool(&st, "deployed", ts->deploy);
	report_string(&st, "deploy_reason", ts->deploy_reason);
	report_rows(ts, &st);
	report_classifier(&st, ts->confusion, td->classes, td->nclasses, ts->ntest);
	gain = palloc(sizeof(double) * ts->k);
	cover = palloc(sizeof(double) * ts->k);
	splits = palloc(sizeof(int64) * ts->k);
	forest_importance(ts->forest, gain, cover, splits);
	report_importance(&st, ts->kept, ts->k, gain, cover, splits);
	report_gates(ts, &st);
	report_training(ts, &st);
	return report_finish(&st);
}

/*
 * dropped, short: how many columns each reason dropped ("constant": 3,
 * "correlated": 30), the reason being its first word; the columns and the
 * whole reasons are in the full report.
 */
static void
report_dropped_counts(JsonbParseState **st, const Preprocessing *pre)
{
	report_begin(st, "dropped");
	for (int i = 0; i < pre->ndropped; i++)
	{
		const char *reason = pre->reasons[i];
		size_t		len = strcspn(reason, " ");
		bool		seen = false;
		int64		n = 0;

		for (int j = 0; j < i && !seen; j++)
			seen = strncmp(pre->reasons[j], reason, len) == 0 &&
				strcspn(pre->reasons[j], " ") == len;
		if (seen)
			continue;
		for (int j = i; j < pre->ndropped; j++)
			n += strncmp(pre->reasons[j], reason, len) == 0 &&
				strcspn(pre->reasons[j], " ") == len;
		report_int(st, pnstrdup(reason, len), n);
	}
	report_end(st);
}

/*
 * nids_train's result: what a person reads after training, bounded (under
 * 4 KB for 20 classes of CICFlowMeter names).  The full report (train_report)
 * is the version's nids.models.metrics; reasons, precision and recall, the
 * confusion matrix, importance, gates and timings are there.
 */
Jsonb *
train_short_result(TrainState *ts, int32 version)
{
	JsonbParseState *st = NULL;
	TrainData  *td = &ts->td;
	int64		correct = 0;
	int			ntoo_few = 0;
	char	  **too_few = palloc(sizeof(char *) * Max(td->nclasses, 1));

	report_begin(&st, NULL);
	report_string(&st, "model", ts->model);
	report_int(&st, "version", version);
	report_bool(&st, "deployed", ts->deploy);
	report_string(&st, "deploy_reason", ts->deploy_reason);
	report_rows(ts, &st);
	report_names(&st, "feature_names", ts->kept, ts->k);
	report_dropped_counts(&st, &ts->pre);
	report_names(&st, "left_out", td->left_out, td->nleft_out);

	report_begin(&st, "per_class");
	for (int c = 0; c < td->nclasses; c++)
	{
		double		precision,
					recall,
					f1;
		int64		support;

		class_scores(ts->confusion, td->nclasses, c, &precision, &recall, &f1, &support);
		correct += ts->confusion[c * td->nclasses + c];
		report_begin(&st, td->classes[c]);
		report_number(&st, "f1", f1);
		report_int(&st, "support", support);
		report_end(&st);
		if (support < NIDS_MIN_JUDGED_SUPPORT)
			too_few[ntoo_few++] = td->classes[c];
	}
	report_end(&st);
	report_names(&st, "too_few_to_judge", too_few, ntoo_few);
	report_number(&st, "macro_f1", macro_f1(ts->confusion, td->nclasses));
	report_number(&st, "macro_f1_judged",
				  macro_f1_judged(ts->confusion, td->nclasses, NIDS_MIN_JUDGED_SUPPORT));
	report_number(&st, "accuracy", ts->ntest > 0 ? (double) correct / ts->ntest : NAN);
	report_begin(&st, "novelty");
	report_string(&st, "method", novelty_method_names[ts->gate->method]);
	report_number(&st, "benign_flagged", ts->calibration.rows > 0
				  ? (double) ts->calibration.flagged / ts->calibration.rows : NAN);
	report_end(&st);
	report_number(&st, "seconds", ts->timings[T_TOTAL]);
	report_string(&st, "full_report", "nids.models.metrics");
	return report_finish(&st);
}
