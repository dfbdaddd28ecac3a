/*
 * fuzz_packet: nids-flowmeter's packet parsing and flow update.  The input
 * is a sequence of frames: a link type byte, a 2-byte length, a time step
 * byte, then the frame; each frame is decoded (and read again as the
 * reference does), fed to one flow table, and every flow written as a CSV
 * row, so that decode, the table's rules and the formatting all run on
 * hostile bytes.  ASan aborts on any read past a frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/dlt.h>

#include "meter.h"

static bool
fuzz_write(Sink *s, const Flow *f)
{
	char		row[8192];

	(void) s;
	return format_flow(f, row, sizeof(row)) < sizeof(row);
}

static bool
fuzz_flush(Sink *s)
{
	(void) s;
	return true;
}

static void
fuzz_close(Sink *s)
{
	(void) s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int linktypes[] = {DLT_EN10MB, DLT_LINUX_SLL, 276, DLT_RAW, 228, 229, DLT_NULL};
	Sink		sink = {fuzz_write, NULL, fuzz_flush, fuzz_close, 0, NULL};
	MeterCounts counts;
	FlowTable  *t;
	int64_t		ts = 1500000000000000LL;
	size_t		off = 0;

	memset(&counts, 0, sizeof(counts));
	t = flow_table_create(64, &sink, &counts);
	while (off + 4 <= size)
	{
		int			lt = linktypes[data[off] % (sizeof(linktypes) / sizeof(linktypes[0]))];
		uint32_t	len = (uint32_t) (data[off + 1] << 8 | data[off + 2]);
		Packet		p,
					q;
		SkipReason	why;
		uint8_t    *frame;
		bool		ok;

		ts += (int64_t) data[off + 3] * 100000;	/* up to 25 s a step: timeouts happen */
		off += 4;
		if (len > size - off)
			len = (uint32_t) (size - off);
		/* the frame in a buffer of its own size: ASan sees any read past it */
		frame = malloc(len ? len : 1);
		memcpy(frame, data + off, len);
		ok = decode_packet(lt, frame, len, len, ts, &p, &why);
		if (ok)
			flow_table_packet(t, &p);
		if ((!ok || p.family != 4) && decode_reference_quirk(lt, frame, len, ts, &q))
			flow_table_packet(t, &q);
		if (data[off - 4] & 0x80)
			flow_table_expire(t, ts);
		free(frame);
		off += len;
	}
	flow_table_flush(t);
	flow_table_destroy(t);
	return 0;
}
