/*
 * capture.h
 *	  Packets in: files in order, or a live interface (capture.c).
 */
#ifndef NIDS_METER_CAPTURE_H
#define NIDS_METER_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pcap/pcap.h>

typedef struct Capture Capture;

typedef struct CapturedFrame
{
	const uint8_t *data;
	uint32_t	caplen;
	uint32_t	wirelen;
	int64_t		ts;				/* microseconds since 1970 */
	int			linktype;
} CapturedFrame;

typedef enum CaptureResult
{
	CAPTURE_FRAME,
	CAPTURE_TIMEOUT,			/* live: nothing within the read timeout */
	CAPTURE_END,
	CAPTURE_ERROR
} CaptureResult;

extern Capture *capture_open_files(char **files, int nfiles, const char *filter,
								   char *error, size_t errsize);
extern Capture *capture_open_live(const char *iface, const char *filter, char *error,
								  size_t errsize);
extern CaptureResult capture_next(Capture *c, CapturedFrame *frame);
extern const char *capture_error(const Capture *c);
extern const char *capture_current(const Capture *c);
extern double capture_progress(const Capture *c);
extern bool capture_is_live(const Capture *c);
extern void capture_break(Capture *c);
extern int64_t capture_bad_records(const Capture *c);
extern void capture_close(Capture *c);

#endif							/* NIDS_METER_CAPTURE_H */
