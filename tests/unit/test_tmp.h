/* Temporary files and directories of the unit tests, under $TMPDIR (else
 * /tmp), so a run can be pointed at another file system. Invariant: a name
 * that does not fit its buffer aborts the test; it is never truncated. */
#ifndef TEST_TMP_H
#define TEST_TMP_H
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_TMP_MAX 512 /* buffer size for the names below */

/* Writes "$TMPDIR/<name>-XXXXXX" to out (n bytes), for mkdtemp or mkstemp. */
static inline char *test_tmp_template(char *out, size_t n, const char *name)
{
	const char *dir = getenv("TMPDIR");
	int len;

	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	len = snprintf(out, n, "%s/%s-XXXXXX", dir, name);
	if (len < 0 || (size_t)len >= n) {
		fprintf(stderr, "test_tmp: TMPDIR %s is too long for a %zu-byte name\n", dir, n);
		abort();
	}
	return out;
}

/* A new directory $TMPDIR/<name>-XXXXXX, its name in out; NULL on failure. */
static inline char *test_tmp_dir(char *out, size_t n, const char *name)
{
	return mkdtemp(test_tmp_template(out, n, name));
}

/* A new file $TMPDIR/<name>-XXXXXX, its name in out; the open fd, or -1. */
static inline int test_tmp_file(char *out, size_t n, const char *name)
{
	return mkstemp(test_tmp_template(out, n, name));
}

static inline int test_tmp_rm_entry(const char *path, const struct stat *st, int flag,
				    struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Removes path and everything below it (no shell); 0 or -1. */
static inline int test_tmp_rm(const char *path)
{
	return nftw(path, test_tmp_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
