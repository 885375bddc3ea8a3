/* What the libFuzzer harnesses share: the entry point's prototype (the build
 * asks for prototypes), a private temporary directory removed at exit, and
 * quiet diagnostics, so a run prints only libFuzzer's own lines. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A directory of this process's own (in /dev/shm when there is one: the
 * queue's fsyncs are then cheap), removed with its contents at exit. */
const char *fuzz_tmpdir(void);
/* Writes len bytes to dir/name (mode 0600); returns the path (static storage). */
const char *fuzz_write_file(const char *name, const void *data, size_t len);
/* No log lines on stderr, and the event log opened in the temp directory
 * with every category at level none (nothing written). */
void fuzz_quiet(void);
#endif
