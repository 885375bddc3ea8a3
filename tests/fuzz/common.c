/* Helpers of the libFuzzer harnesses (common.h); linked into each. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "lib/log.h"
#include "mail/event.h"

static char fuzz_dir[64];

static int fuzz_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void fuzz_cleanup(void)
{
	if (fuzz_dir[0])
		nftw(fuzz_dir, fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmpdir(void)
{
	if (fuzz_dir[0])
		return fuzz_dir;
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/dialmail-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(fuzz_dir) == NULL) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(fuzz_cleanup);
	return fuzz_dir;
}

const char *fuzz_write_file(const char *name, const void *data, size_t len)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fuzz_tmpdir(), name);
	f = fopen(path, "w");
	if (f == NULL || fchmod(fileno(f), 0600) < 0 || fwrite(data, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		abort();
	}
	return path;
}

void fuzz_quiet(void)
{
	int diag[EVC_COUNT] = {0};

	log_init("fuzz", 0, 0);
	if (event_open(fuzz_tmpdir(), diag, 0) < 0) {
		perror("fuzz: event_open");
		abort();
	}
}
