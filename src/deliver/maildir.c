/* Maildir delivery (https://cr.yp.to/proto/maildir.html): the message is
 * written under tmp/ with a unique name, fsync'd, linked into new/ and new/
 * is fsync'd before we report success. Invariant: new/ only ever holds
 * complete messages; tmp/ holds nothing after we return. A queued message
 * gets a name made of its queue id and recipient, so that delivering it
 * again after a crash finds the first copy instead of writing a second. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver/maildir.h"
#include "mail/recipient.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"

char *maildir_path(const char *dir, const char *user)
{
	return xasprintf("%s/mail/%s/Maildir", dir, user);
}

/* The host part of a Maildir name: '/' and ':' are encoded as the spec says. */
static void maildir_host(struct buf *out)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	for (const char *p = host; *p; p++) {
		if (*p == '/')
			buf_puts(out, "\\057");
		else if (*p == ':')
			buf_puts(out, "\\072");
		else
			buf_putc(out, *p);
	}
}

/* "<sec>.M<usec>P<pid>Q<seq>.<host>": unique per host, since the process
 * sequence number advances on every call. */
static char *maildir_unique_name(void)
{
	static unsigned long seq;
	struct buf b = BUF_INIT;
	int64_t now = clock_usec();

	buf_printf(&b, "%lld.M%06lldP%ldQ%lu.", (long long)(now / 1000000),
		   (long long)(now % 1000000), (long)getpid(), ++seq);
	maildir_host(&b);
	return buf_steal(&b);
}

/* "<sec>.D<qid>_<hash of rcpt>.<host>": the same for every attempt to
 * deliver queued message qid to rcpt (sec is the arrival time in the id). */
static char *maildir_once_name(const char *qid, const char *rcpt)
{
	struct buf b = BUF_INIT;
	uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 */
	char us[15];

	for (const char *p = rcpt; *p; p++)
		h = (h ^ (uint8_t)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p)) *
		    1099511628211ULL;
	snprintf(us, sizeof(us), "%.14s", qid);
	buf_printf(&b, "%llu.D%s_%016llx.", strtoull(us, NULL, 16) / 1000000, qid,
		   (unsigned long long)h);
	maildir_host(&b);
	return buf_steal(&b);
}

/* 1 if cur/ holds name, as it is or with flags ("name:2,S"): a reader
 * has seen the message in new/ and moved it. */
static int maildir_in_cur(const char *md, const char *name)
{
	char *cur = xasprintf("%s/cur", md);
	DIR *d = opendir(cur);
	size_t len = strlen(name);
	struct dirent *de;
	int found = 0;

	free(cur);
	while (d && !found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, name, len) == 0 &&
			(de->d_name[len] == '\0' || de->d_name[len] == ':');
	if (d)
		closedir(d);
	return found;
}

/* 1 if the message called name is in the Maildir already (new/, or cur/
 * when look_in_cur). */
static int maildir_has(const char *md, const char *name, int look_in_cur)
{
	char *path = xasprintf("%s/new/%s", md, name);
	struct stat st;
	int found = lstat(path, &st) == 0;

	free(path);
	return found || (look_in_cur && maildir_in_cur(md, name));
}

/* Creates md/{tmp,new,cur} (and its parents) if missing, mode 0700. A new
 * Maildir's directory entries are fsync'd up to DIR/mail so a message
 * reported delivered cannot vanish with its directory after a crash. */
static int maildir_create(const char *md)
{
	static const char *const sub[] = {"tmp", "new", "cur"};
	static const char *const up[] = {"", "/..", "/../.."};
	struct stat st;
	int created = 0;

	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", md, sub[i]);
		int rc = 0;

		if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
			rc = fs_mkdirs(p, 0700);
			created = 1;
		}
		free(p);
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; created && i < 3; i++) {
		char *p = xasprintf("%s%s", md, up[i]);
		int rc = fs_fsync_dir(p);

		free(p);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* The bytes that land in the mailbox: our two headers, then content with
 * CRLF turned into LF (Unix mailbox convention). */
static void maildir_format(struct buf *out, const char *sender, const char *rcpt,
			   const struct buf *content)
{
	const char *p = content->data, *end = p + content->len;

	buf_printf(out, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
	buf_reserve(out, content->len);
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));

		if (cr == NULL) {
			buf_append(out, p, (size_t)(end - p));
			break;
		}
		buf_append(out, p, (size_t)(cr - p));
		if (cr + 1 < end && cr[1] == '\n') {
			buf_putc(out, '\n');
			p = cr + 2;
		} else {
			buf_putc(out, '\r');
			p = cr + 1;
		}
	}
}

/* Writes data into a new file tmppath, durably. */
static int maildir_write_tmp(const char *tmppath, const struct buf *data)
{
	int fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int saved;

	if (fd < 0)
		return -1;
	if (fs_write_all(fd, data->data, data->len) < 0 || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmppath);
	errno = saved;
	return -1;
}

/* Moves tmp/name to new/name: link (never overwrites), rename where the
 * file system has no hard links; then fsync new/ so the entry is durable. */
static int maildir_publish(const char *md, const char *name)
{
	char *tmp = xasprintf("%s/tmp/%s", md, name);
	char *new = xasprintf("%s/new/%s", md, name);
	char *newdir = xasprintf("%s/new", md);
	int rc = -1, saved;

	if (link(tmp, new) == 0 || errno == EEXIST) /* EEXIST: delivered before */
		unlink(tmp);
	else if (errno != EPERM && errno != ENOTSUP && errno != EXDEV)
		goto out;
	else if (rename(tmp, new) < 0)
		goto out;
	if (fs_fsync_dir(newdir) < 0) {
		saved = errno;
		unlink(new);
		errno = saved;
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	free(new);
	free(newdir);
	errno = saved;
	return rc;
}

/* Writes the message as md/tmp/name, then moves it to md/new/name. */
static int maildir_store(const char *md, const char *name, const char *sender, const char *rcpt,
			 const struct buf *content, struct buf *reply)
{
	struct buf data = BUF_INIT;
	char *tmppath = xasprintf("%s/tmp/%s", md, name);
	int rc = Q_TEMPFAIL;

	maildir_format(&data, sender, rcpt, content);
	unlink(tmppath); /* left by a crash in the middle of an earlier attempt */
	if (maildir_write_tmp(tmppath, &data) < 0)
		buf_printf(reply, "4.3.0 cannot write %s: %s", tmppath, strerror(errno));
	else if (maildir_publish(md, name) < 0)
		buf_printf(reply, "4.3.0 cannot move message into %s/new: %s", md, strerror(errno));
	else {
		buf_printf(reply, "2.0.0 delivered to %s/new/%s", md, name);
		rc = Q_OK;
	}
	buf_free(&data);
	free(tmppath);
	return rc;
}

/* The Maildir of user, created if need be; NULL with reply set if not. */
static char *maildir_open(const char *dir, const char *user, struct buf *reply, int *rc)
{
	char *md;

	if (!recipient_user_valid(user)) {
		buf_printf(reply, "5.1.1 invalid mailbox name \"%s\"", user);
		*rc = Q_PERMFAIL;
		return NULL;
	}
	/* From here on every failure is the file system's (full disk, I/O
	 * error, quota, a permission an operator can fix): worth a retry. */
	md = maildir_path(dir, user);
	if (maildir_create(md) < 0) {
		buf_printf(reply, "4.2.0 cannot create Maildir %s: %s", md, strerror(errno));
		*rc = Q_TEMPFAIL;
		free(md);
		return NULL;
	}
	return md;
}

int maildir_deliver(const char *dir, const char *user, const char *sender, const char *rcpt,
		    const struct buf *content, struct buf *reply)
{
	char *md, *name;
	int rc;

	if ((md = maildir_open(dir, user, reply, &rc)) == NULL)
		return rc;
	name = maildir_unique_name();
	rc = maildir_store(md, name, sender, rcpt, content, reply);
	free(md);
	free(name);
	return rc;
}

int maildir_deliver_once(const char *dir, const char *user, const struct q_env *env,
			 const char *rcpt, const struct buf *content, int look_in_cur,
			 struct buf *reply)
{
	char *md, *name;
	int rc;

	if ((md = maildir_open(dir, user, reply, &rc)) == NULL)
		return rc;
	name = maildir_once_name(env->id, rcpt);
	if (maildir_has(md, name, look_in_cur)) {
		buf_printf(reply, "2.0.0 delivered before as %s in %s; not delivered again", name,
			   md);
		rc = Q_OK;
	} else
		rc = maildir_store(md, name, env->sender ? env->sender : "", rcpt, content, reply);
	free(md);
	free(name);
	return rc;
}
