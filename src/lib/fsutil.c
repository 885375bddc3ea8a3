/* Durable file operations. Every function reports failure with errno set;
 * none of them hides a partial write. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/xmalloc.h"

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int fs_mkdirs(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	char *s;
	int rc = 0;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			rc = -1;
		*s = '/';
		if (rc < 0)
			break;
	}
	if (rc == 0 && mkdir(p, mode) < 0 && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

int fs_read_file(const char *path, struct buf *out)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		buf_append(out, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int fd, saved;

	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	if (fs_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail_unlink;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0)
		goto fail_unlink;
	if (fs_fsync_dir(dir) < 0)
		goto fail;
	free(tmp);
	free(dir);
	return 0;
fail_unlink:
	saved = errno;
	unlink(tmp);
	errno = saved;
fail:
	saved = errno;
	free(tmp);
	free(dir);
	errno = saved;
	return -1;
}

int fs_free_bytes(const char *path, unsigned long long *out)
{
	struct statvfs sv;

	if (statvfs(path, &sv) < 0)
		return -1;
	*out = (unsigned long long)sv.f_bavail * sv.f_frsize;
	return 0;
}

int fs_secret_mode(int fd, struct buf *problem)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		buf_printf(problem, "cannot stat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		buf_puts(problem, "not a regular file");
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) == 0)
		return 0;
	buf_printf(problem, "group or others may access it (mode %04o)",
		   (unsigned)(st.st_mode & 07777));
	return 1;
}
