/*-------------------------------------------------------------------------
 *
 * canonical.h
 *	  Canonical CICFlowMeter feature names: the one mapping, shared by the
 *	  extension (nids_features, ks_drift, nids_train) and the nids-load
 *	  client.  Plain C, no PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_CANONICAL_H
#define NIDS_CANONICAL_H

#include <stddef.h>

/* the kind of a canonical column */
typedef enum CanonicalKind
{
	CANON_FEATURE,				/* numeric flow feature: float8 */
	CANON_IDENTIFIER,			/* flow id, addresses, ports, time: text */
	CANON_LABEL,				/* the class label: text */
	CANON_UNKNOWN				/* not a known CICFlowMeter column */
} CanonicalKind;

/*
 * Normalise a column name into out (size outsize): trimmed, lower-cased,
 * runs of characters other than a-z and 0-9 become one '_', no leading or
 * trailing '_'.  Returns the length written.
 */
extern size_t canonical_normalise(const char *name, size_t len, char *out, size_t outsize);

/*
 * The canonical name of an already normalised name: the normalised name of
 * the CIC-IDS2017 original release for every naming variant (CIC-IDS2017
 * original and improved, CSE-CIC-IDS2018); a name no variant knows is
 * returned as it is.  *kind tells what the column holds.
 */
extern const char *canonical_name(const char *normalised, CanonicalKind *kind);

#endif							/* NIDS_CANONICAL_H */
