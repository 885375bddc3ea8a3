/* Privileges: look up the daemon's user and groups, hand it the state
 * directory, become it. Invariant: priv_drop either leaves the process
 * unable to regain root or fails; there is no half-dropped success. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/priv.h"

int priv_group_id(const char *name, gid_t *gid)
{
	struct group *g = getgrnam(name);

	if (g == NULL)
		return -1;
	*gid = g->gr_gid;
	return 0;
}

/* Adds gid to p's supplementary list once, with its name for the log. */
static void priv_add_group(struct priv *p, gid_t gid, const char *name)
{
	size_t used = strlen(p->group_names);

	for (int i = 0; i < p->n_groups; i++)
		if (p->groups[i] == gid)
			return;
	if (p->n_groups >= PRIV_MAX_GROUPS)
		return;
	p->groups[p->n_groups++] = gid;
	snprintf(p->group_names + used, sizeof(p->group_names) - used, "%s%s", used ? ", " : "",
		 name);
}

int priv_resolve(const char *user, const char *group, const struct strlist *supplementary,
		 struct priv *p, struct buf *why, struct buf *warn)
{
	struct passwd *pw = getpwnam(user);
	struct group *g;

	memset(p, 0, sizeof(*p));
	if (pw == NULL) {
		buf_printf(why, "user %s does not exist", user);
		return -1;
	}
	snprintf(p->user, sizeof(p->user), "%s", user);
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	if (*group && priv_group_id(group, &p->gid) < 0) {
		buf_printf(why, "group %s does not exist", group);
		return -1;
	}
	g = getgrgid(p->gid);
	priv_add_group(p, p->gid, g ? g->gr_name : "?");
	for (size_t i = 0; supplementary && i < supplementary->n; i++) {
		gid_t gid;

		if (priv_group_id(supplementary->v[i], &gid) < 0)
			buf_printf(warn, "supplementary group %s does not exist; skipped\n",
				   supplementary->v[i]);
		else
			priv_add_group(p, gid, supplementary->v[i]);
	}
	return 0;
}

int priv_drop(const struct priv *p)
{
	uid_t ru, eu, su;

	if (setgroups((size_t)p->n_groups, p->groups) < 0 ||
	    setresgid(p->gid, p->gid, p->gid) < 0 || setresuid(p->uid, p->uid, p->uid) < 0)
		return -1;
	if (getresuid(&ru, &eu, &su) < 0 || ru != p->uid || eu != p->uid || su != p->uid)
		return -1;
	/* No way back: for a non-root user, becoming root again must fail. */
	if (p->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* Gives the entries of the open directory dfd (and below) to uid:gid.
 * Everything is relative to a descriptor and nothing follows a symlink, so
 * a user who owns the tree cannot redirect the walk (a directory swapped
 * for a link to /etc between two steps). A regular file with several links
 * that is not ours is left alone: it may be a link to someone else's file. */
static int priv_chown_dir(int dfd, uid_t uid, gid_t gid, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int rc = 0;

	if (d == NULL) {
		close(dfd);
		return -1;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if ((st.st_uid != uid || st.st_gid != gid) &&
		    !(S_ISREG(st.st_mode) && st.st_nlink > 1) &&
		    fchownat(dirfd(d), e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -1;
		if (rc == 0 && S_ISDIR(st.st_mode) && depth < 32) {
			int sub = openat(dirfd(d), e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				rc = priv_chown_dir(sub, uid, gid, depth + 1);
		}
	}
	closedir(d);
	return rc;
}

int priv_chown_tree(const char *dir, uid_t uid, gid_t gid)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 || fchown(fd, uid, gid) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return priv_chown_dir(fd, uid, gid, 0);
}

int priv_uid_allowed(uid_t uid, gid_t peer_gid, uid_t self, gid_t gid)
{
	struct passwd *pw;
	gid_t groups[64];
	int n = 64;

	if (uid == 0 || uid == self || peer_gid == gid)
		return 1;
	pw = getpwuid(uid);
	if (pw == NULL || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

int priv_become_owner_of(const char *dir)
{
	struct priv p;
	struct passwd *pw;
	struct stat st;

	if (geteuid() != 0 || stat(dir, &st) < 0 || st.st_uid == 0)
		return 0;
	memset(&p, 0, sizeof(p));
	p.uid = st.st_uid;
	p.gid = st.st_gid;
	p.groups[p.n_groups++] = st.st_gid;
	pw = getpwuid(st.st_uid);
	if (pw) {
		int n = PRIV_MAX_GROUPS;
		if (getgrouplist(pw->pw_name, st.st_gid, p.groups, &n) >= 0)
			p.n_groups = n;
	}
	return priv_drop(&p);
}
