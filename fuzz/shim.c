/*
 * fuzz/shim.c: the few backend services the deserializers use, for running
 * them under libFuzzer outside a server.  Allocations are tracked and freed
 * by fuzz_reset() after each input, as a memory context reset would.
 */
#include "postgres.h"

#include <stdarg.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "miscadmin.h"
#include "model.h"

/* the C library's, not libpgport's (not linked here) */
#undef vsnprintf

typedef struct Block
{
	struct Block *prev;
	struct Block *next;
	size_t		size;
	max_align_t align[];
} Block;

static Block *blocks = NULL;
volatile sig_atomic_t InterruptPending = false;
bool		nids_compact_evaluator = true;
bool		nids_explain_tables = true;
bool		nids_label_bounds = true;

void		fuzz_reset(void);

void
fuzz_reset(void)
{
	while (blocks)
	{
		Block	   *b = blocks;

		blocks = b->next;
		free(b);
	}
}

static void *
block_alloc(size_t size, bool zero)
{
	Block	   *b = zero ? calloc(1, sizeof(Block) + size) : malloc(sizeof(Block) + size);

	if (b == NULL)
		abort();
	b->size = size;
	b->prev = NULL;
	b->next = blocks;
	if (blocks)
		blocks->prev = b;
	blocks = b;
	return b->align;
}

static Block *
block_of(void *p)
{
	return (Block *) ((char *) p - offsetof(Block, align));
}

void *
palloc(Size size)
{
	if (size > MaxAllocSize)
		abort();
	return block_alloc(size, false);
}

void *
palloc0(Size size)
{
	if (size > MaxAllocSize)
		abort();
	return block_alloc(size, true);
}

void *
palloc_extended(Size size, int flags)
{
	if (size > MaxAllocHugeSize || (!(flags & MCXT_ALLOC_HUGE) && size > MaxAllocSize))
		abort();
	return block_alloc(size, (flags & MCXT_ALLOC_ZERO) != 0);
}

void
pfree(void *p)
{
	Block	   *b = block_of(p);

	if (b->prev)
		b->prev->next = b->next;
	else
		blocks = b->next;
	if (b->next)
		b->next->prev = b->prev;
	free(b);
}

void *
repalloc_huge(void *p, Size size)
{
	void	   *q = block_alloc(size, false);

	memcpy(q, p, Min(size, block_of(p)->size));
	pfree(p);
	return q;
}

void *
repalloc(void *p, Size size)
{
	if (size > MaxAllocSize)
		abort();
	return repalloc_huge(p, size);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
pstrdup(const char *in)
{
	return pnstrdup(in, strlen(in));
}

char *
psprintf(const char *fmt,...)
{
	va_list		ap;
	char		buf[2048];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return pstrdup(buf);
}

void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	str->len = 0;
	str->data[0] = '\0';
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen = str->maxlen;

	while (str->len + needed + 1 > newlen)
		newlen *= 2;
	if (newlen != str->maxlen)
	{
		str->data = repalloc_huge(str->data, newlen);
		str->maxlen = newlen;
	}
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	appendBinaryStringInfo(str, &ch, 1);
}

void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	va_list		ap;
	char		buf[512];
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	appendBinaryStringInfo(str, buf, Min(n, (int) sizeof(buf) - 1));
}

#undef qsort
void
pg_qsort(void *base, size_t n, size_t size, int (*cmp) (const void *, const void *))
{
	qsort(base, n, size, cmp);
}

void
ProcessInterrupts(void)
{
}

/* error reporting is never reached from the deserializers: make it loud */
bool
errstart_cold(int elevel, const char *domain)
{
	abort();
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	abort();
}

int
errmsg_internal(const char *fmt,...)
{
	abort();
}

/* what model_shap.c needs: one arena, no stack limit (ASan watches it) */
MemoryContext CurrentMemoryContext = NULL;

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return palloc(size);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return palloc(size);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return palloc0(size);
}

void
check_stack_depth(void)
{
}
