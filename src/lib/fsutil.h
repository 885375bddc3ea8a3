/* File helpers for durable storage: the commit order is write, fsync the
 * file, link or rename, fsync the directory (nullmailer / dma). */
#ifndef LIB_FSUTIL_H
#define LIB_FSUTIL_H
#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

int fs_write_all(int fd, const void *data, size_t len); /* 0 or -1 (errno) */
int fs_fsync_dir(const char *dir);			/* 0 or -1 (errno) */
int fs_mkdirs(const char *path, mode_t mode);		/* mkdir -p */
int fs_read_file(const char *path, struct buf *out);	/* appends; 0 or -1 */
/* Writes data to path atomically and durably: tmp file in the same
 * directory, fsync, rename over path, fsync directory. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Free bytes available to unprivileged users on the file system of path. */
int fs_free_bytes(const char *path, unsigned long long *out);
/* A file that holds a secret (private key, passwords) must be a regular
 * file that neither its group nor others can access. Returns 0 if so; 1
 * with "group or others may access it (mode 0644)" in problem if not; -1
 * with "not a regular file" (or the stat error) in problem. */
int fs_secret_mode(int fd, struct buf *problem);

#endif
