/*-------------------------------------------------------------------------
 *
 * alert_lock.c
 *	  Who may write incidents, and who waits for whom while they are
 *	  written: the two checks every incident step (nids_alert_trigger,
 *	  nids_scan_trigger, nids_alerts_from) makes before it touches
 *	  nids.alerts or nids.scan_state.
 *
 * Writing incidents is a privilege: the role that inserts the flows (or
 * calls nids_alerts_from) must have the privileges of nids_feeder, else
 * 42501 naming it.  A catalogue not yet updated to 1.3 has no such role:
 * then only nids_admin may feed.
 *
 * Locks are per source address, held to the end of the transaction: a
 * feeder's open transaction holds back only the feeders of the same
 * sources.  A statement with few sources takes, in ascending order, a
 * shared lock on each source's partition and an exclusive lock on each
 * source; one with more (or a transaction that already holds many) takes
 * its sources' partitions exclusively, so that the shared lock table
 * never fills whatever a statement holds.  Both steps of one statement
 * (the alert and the scan trigger) lock every source of the statement, so
 * the second step waits for nothing the first did not: single-statement
 * feeders cannot deadlock.  Transactions of several statements over the
 * same sources can; PostgreSQL's deadlock detector then stops one (40P01)
 * and its insert is rolled back whole.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "alert.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"

/* the two key spaces of nids' advisory locks ("nids", "nidp") */
#define LOCK_SPACE_SOURCE		0x6E696473
#define LOCK_SPACE_PARTITION	0x6E696470
#define LOCK_PARTITIONS			128
/* sources locked one by one per transaction, at most */
#define LOCK_EXACT_BUDGET		256

/* the exact locks this backend's transaction holds */
static LocalTransactionId budget_xact = InvalidLocalTransactionId;
static int	budget_used = 0;

/* 42501 unless the current role may write incidents (what says what it did) */
void
alert_require_feeder(const char *what)
{
	Oid			feeder = get_role_oid("nids_feeder", true);
	const char *role = "nids_feeder";

	if (!OidIsValid(feeder))
	{
		/* a catalogue of 1.2 or older: nids_admin alone feeds */
		feeder = get_role_oid("nids_admin", false);
		role = "nids_admin";
	}
	if (!has_privs_of_role(GetUserId(), feeder))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not raise incidents", GetUserNameFromId(GetUserId(), false)),
				 errdetail("%s writes incidents, which only members of %s may do.", what, role),
				 errhint("GRANT %s TO %s;", role,
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
}

void
alert_sources_add(AlertSources *s, inet *src)
{
	if (s->n == s->cap)
	{
		s->cap = Max(256, s->cap * 2);
		s->hash = s->hash ? repalloc_huge(s->hash, sizeof(uint32) * s->cap)
			: palloc(sizeof(uint32) * s->cap);
	}
	/* family and address: a source's incidents of any prefix length */
	s->hash[s->n++] = hash_bytes((const unsigned char *) ip_addr(src), ip_addrsize(src))
		^ ip_family(src);
}

static int
compare_uint32(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a,
				y = *(const uint32 *) b;

	return (x > y) - (x < y);
}

static void
advisory_lock(uint32 space, uint32 key, bool exclusive)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, space, key, 2);
	(void) LockAcquire(&tag, exclusive ? ExclusiveLock : ShareLock, false, false);
}

/*
 * Lock the sources of s (sorted and made distinct here) for the rest of
 * the transaction.
 */
void
alert_lock_sources(AlertSources *s)
{
	int64		n = 0;
	bool		exact;
	bool		parts[LOCK_PARTITIONS];

	if (s->n > 1)
		qsort(s->hash, s->n, sizeof(uint32), compare_uint32);
	for (int64 i = 0; i < s->n; i++)
		if (n == 0 || s->hash[n - 1] != s->hash[i])
			s->hash[n++] = s->hash[i];
	s->n = n;
	if (budget_xact != MyProc->lxid)
	{
		budget_xact = MyProc->lxid;
		budget_used = 0;
	}
	exact = budget_used + n <= LOCK_EXACT_BUDGET;
	memset(parts, 0, sizeof(parts));
	for (int64 i = 0; i < n; i++)
		parts[s->hash[i] % LOCK_PARTITIONS] = true;
	for (uint32 p = 0; p < LOCK_PARTITIONS; p++)
		if (parts[p])
			advisory_lock(LOCK_SPACE_PARTITION, p, !exact);
	if (!exact)
		return;
	for (int64 i = 0; i < n; i++)
		advisory_lock(LOCK_SPACE_SOURCE, s->hash[i], true);
	budget_used += (int) n;
}
