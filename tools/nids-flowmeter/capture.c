/*
 * capture.c
 *	  Where packets come from (libpcap): pcap and pcapng files, read one
 *	  after the other as one capture, or a live interface; with a BPF
 *	  filter.  A file that is not a capture, or is cut short, is an error
 *	  that names the file and the packet.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"

struct Capture
{
	char	  **files;
	int			nfiles;
	int			next_file;
	const char *iface;
	const char *filter;
	pcap_t	   *pcap;
	const char *current;		/* the file or interface read now */
	int64_t		packet_no;		/* within the current file */
	int64_t		bad_records;	/* capture records that cannot be */
	volatile sig_atomic_t broken;	/* capture_break was called */
	int			linktype;
	int64_t		file_size;		/* for progress */
	FILE	   *file;			/* the stream libpcap reads (files) */
	char		error[PCAP_ERRBUF_SIZE + 512];
};

static bool
apply_filter(Capture *c)
{
	struct bpf_program prog;

	if (c->filter == NULL)
		return true;
	if (pcap_compile(c->pcap, &prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) != 0)
	{
		snprintf(c->error, sizeof(c->error), "bad filter \"%s\": %s", c->filter, pcap_geterr(c->pcap));
		return false;
	}
	if (pcap_setfilter(c->pcap, &prog) != 0)
	{
		snprintf(c->error, sizeof(c->error), "could not apply filter \"%s\": %s", c->filter,
				 pcap_geterr(c->pcap));
		pcap_freecode(&prog);
		return false;
	}
	pcap_freecode(&prog);
	return true;
}

static bool
open_next_file(Capture *c)
{
	char		err[PCAP_ERRBUF_SIZE];
	const char *path = c->files[c->next_file++];

	c->current = path;
	c->packet_no = 0;
	/* "-": standard input, as tcpdump reads it */
	c->file = strcmp(path, "-") == 0 ? fdopen(dup(0), "rb") : fopen(path, "rb");
	if (c->file == NULL)
	{
		snprintf(c->error, sizeof(c->error), "%s: could not open: %m", path);
		return false;
	}
	/* the size, for progress: none for a pipe */
	c->file_size = fseeko(c->file, 0, SEEK_END) == 0 ? ftello(c->file) : -1;
	if (c->file_size >= 0 && fseeko(c->file, 0, SEEK_SET) != 0)
		c->file_size = -1;
	c->pcap = pcap_fopen_offline(c->file, err);
	if (c->pcap == NULL)
	{
		fclose(c->file);
		c->file = NULL;
		snprintf(c->error, sizeof(c->error), "%s: not a pcap or pcapng capture (%s)", path, err);
		return false;
	}
	c->linktype = pcap_datalink(c->pcap);
	return apply_filter(c);
}

Capture *
capture_open_files(char **files, int nfiles, const char *filter, char *error, size_t errsize)
{
	Capture    *c = calloc(1, sizeof(Capture));

	c->files = files;
	c->nfiles = nfiles;
	c->filter = filter;
	if (!open_next_file(c))
	{
		snprintf(error, errsize, "%s", c->error);
		capture_close(c);
		return NULL;
	}
	return c;
}

Capture *
capture_open_live(const char *iface, const char *filter, char *error, size_t errsize)
{
	Capture    *c = calloc(1, sizeof(Capture));
	char		err[PCAP_ERRBUF_SIZE];
	int			rc;

	c->iface = iface;
	c->current = iface;
	c->filter = filter;
	c->pcap = pcap_create(iface, err);
	if (c->pcap == NULL)
	{
		snprintf(error, errsize, "%s: %s", iface, err);
		free(c);
		return NULL;
	}
	pcap_set_snaplen(c->pcap, 262144);
	pcap_set_promisc(c->pcap, 1);
	pcap_set_timeout(c->pcap, 100);
	pcap_set_buffer_size(c->pcap, 32 * 1024 * 1024);
	rc = pcap_activate(c->pcap);
	if (rc < 0)
	{
		snprintf(error, errsize, "%s: %s%s", iface, pcap_geterr(c->pcap),
				 rc == PCAP_ERROR_PERM_DENIED ? " (capture needs CAP_NET_RAW: setcap cap_net_raw,cap_net_admin=eip on the program, or root)" : "");
		capture_close(c);
		return NULL;
	}
	c->linktype = pcap_datalink(c->pcap);
	if (!apply_filter(c))
	{
		snprintf(error, errsize, "%s", c->error);
		capture_close(c);
		return NULL;
	}
	return c;
}

CaptureResult
capture_next(Capture *c, CapturedFrame *frame)
{
	for (;;)
	{
		struct pcap_pkthdr *hdr;
		const u_char *data;
		int			rc = pcap_next_ex(c->pcap, &hdr, &data);

		if (rc == 1)
		{
			c->packet_no++;
			/* a record that cannot be: more captured than sent, or a bad time */
			if (hdr->caplen > hdr->len || hdr->ts.tv_usec >= 1000000 || hdr->ts.tv_usec < 0)
			{
				c->bad_records++;
				continue;
			}
			frame->data = data;
			frame->caplen = hdr->caplen;
			frame->wirelen = hdr->len;
			frame->ts = (int64_t) hdr->ts.tv_sec * 1000000 + hdr->ts.tv_usec;
			frame->linktype = c->linktype;
			return CAPTURE_FRAME;
		}
		if (rc == 0)
			return CAPTURE_TIMEOUT;
		if (c->broken || (rc == PCAP_ERROR_BREAK && c->iface != NULL))
			return CAPTURE_END;
		if (rc == PCAP_ERROR)
		{
			snprintf(c->error, sizeof(c->error), "%s: packet %lld: %s", c->current,
					 (long long) c->packet_no + 1, pcap_geterr(c->pcap));
			return CAPTURE_ERROR;
		}
		/* the end of this file: the next one, if any */
		if (c->iface != NULL)
			return CAPTURE_END;
		pcap_close(c->pcap);	/* closes the stream too */
		c->pcap = NULL;
		c->file = NULL;
		if (c->next_file >= c->nfiles)
			return CAPTURE_END;
		if (!open_next_file(c))
			return CAPTURE_ERROR;
	}
}

const char *
capture_error(const Capture *c)
{
	return c->error;
}

const char *
capture_current(const Capture *c)
{
	return c->current;
}

/* how far into the current file, in percent; -1 for an interface */
double
capture_progress(const Capture *c)
{
	if (c->iface != NULL || c->file == NULL || c->file_size <= 0)
		return -1;
	return 100.0 * (double) ftello(c->file) / (double) c->file_size;
}

/* from a signal handler too: the next read returns CAPTURE_END */
void
capture_break(Capture *c)
{
	c->broken = 1;
	if (c->pcap)
		pcap_breakloop(c->pcap);
}

bool
capture_is_live(const Capture *c)
{
	return c->iface != NULL;
}

void
capture_close(Capture *c)
{
	if (c == NULL)
		return;
	if (c->pcap)
		pcap_close(c->pcap);
	free(c);
}

int64_t
capture_bad_records(const Capture *c)
{
	return c->bad_records;
}
