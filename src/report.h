/*-------------------------------------------------------------------------
 *
 * report.h
 *	  Building jsonb reports (report.c): the metrics of training, attaching,
 *	  importing and adapting, and anything else nids returns as jsonb.
 *	  Numbers keep six significant digits; NaN and infinities become null.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_REPORT_H
#define NIDS_REPORT_H

#include "postgres.h"

#include "utils/jsonb.h"

extern void report_key(JsonbParseState **st, const char *key);
extern void report_string(JsonbParseState **st, const char *key, const char *value);
extern void report_number(JsonbParseState **st, const char *key, double value);
extern void report_int(JsonbParseState **st, const char *key, int64 value);
extern void report_bool(JsonbParseState **st, const char *key, bool value);
extern void report_names(JsonbParseState **st, const char *key, char **names, int n);
extern void report_begin(JsonbParseState **st, const char *key);
extern void report_end(JsonbParseState **st);
extern void report_array_begin(JsonbParseState **st, const char *key);
extern void report_array_end(JsonbParseState **st);
extern void report_element_begin(JsonbParseState **st);
extern void report_int_row(JsonbParseState **st, const int64 *values, int n);
extern Jsonb *report_finish(JsonbParseState **st);

/* reading an options object (nids_scans, nids_adapt, ...) */
extern JsonbIterator *options_begin(Jsonb *options);
extern bool options_next(JsonbIterator **it, char **key, JsonbValue *value);
extern void report_importance(JsonbParseState **st, char **names, int d,
							  const double *gain, const double *cover,
							  const int64 *splits);

#endif							/* NIDS_REPORT_H */
