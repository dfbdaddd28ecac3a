/*
 * libFuzzer harness: drift reference bytes (a model row's "reference"
 * column) -> validation.  The first byte chooses the feature count.
 */
#include "postgres.h"

#include "drift.h"

extern void fuzz_reset(void);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *error = NULL;

	if (size < 1)
		return 0;
	(void) drift_reference_parse((const char *) data + 1, size - 1, data[0] % 8, &error);
	fuzz_reset();
	return 0;
}
