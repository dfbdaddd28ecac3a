/*
 * libFuzzer harness: model bundle bytes (nids_import_model) -> parse and
 * validate every part.  Seeds: bundles made by nids_export_model.
 */
#include "postgres.h"

#include "model.h"

extern void fuzz_reset(void);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ModelBundle b;
	char	   *error = NULL;

	(void) bundle_parse((const char *) data, size, &b, &error);
	fuzz_reset();
	return 0;
}
