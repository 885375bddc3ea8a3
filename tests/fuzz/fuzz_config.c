/* Fuzzes the configuration parser (mail/config.c config_load) with every
 * module registered (modules_register: [phonebook NAME], [answer NAME],
 * [session], AUTH users), as the daemon loads it: the input is the file.
 * A file that loads is also shown (config_show, the modules' show hooks),
 * so each setting's value is printed back. Leaks count as failures. */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "daemon/modules.h"
#include "lib/buf.h"
#include "mail/config.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	modules_register();
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_write_file("fuzz.conf", data, size);
	struct config cfg;
	struct buf err = BUF_INIT;

	if (config_load(&cfg, path, &err) == 0) {
		config_show(&cfg, devnull, 0);
		config_show(&cfg, devnull, 1);
		config_free(&cfg);
	} else if (err.len == 0)
		abort(); /* a refused file always says why (config_load freed cfg) */
	buf_free(&err);
	return 0;
}
