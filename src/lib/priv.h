/* Privileges (the OpenSMTPD and Postfix model): a process started as root
 * opens what needs root, hands its state directory to an unprivileged user
 * and becomes that user for good. Invariant: after priv_drop returns 0 the
 * process can never get root back (checked, not assumed). */
#ifndef LIB_PRIV_H
#define LIB_PRIV_H
#include <sys/types.h>

#include "lib/buf.h"
#include "lib/strlist.h"

#define PRIV_MAX_GROUPS 16

struct priv {
	char user[64];
	uid_t uid;
	gid_t gid;		       /* the primary group */
	gid_t groups[PRIV_MAX_GROUPS]; /* supplementary, gid first */
	int n_groups;
	char group_names[256]; /* "dialmail, dialout", for the log */
};

/* Looks up user, group ("": the user's login group) and the supplementary
 * groups by name into p. A supplementary group that does not exist is
 * skipped and named in warn; a missing user or group is -1 with why. */
int priv_resolve(const char *user, const char *group, const struct strlist *supplementary,
		 struct priv *p, struct buf *why, struct buf *warn);
/* setgroups, setresgid, setresuid to p; -1 with errno if any step failed
 * or if root can still be had back afterwards. */
int priv_drop(const struct priv *p);
/* Gives dir and everything below it to uid:gid where it belongs to someone
 * else, through directory descriptors and never following a symlink (the
 * tree belongs to the user it is given to); -1 with errno at the first
 * failure. */
int priv_chown_tree(const char *dir, uid_t uid, gid_t gid);
/* The gid of a group name; -1 if there is none. */
int priv_group_id(const char *name, gid_t *gid);
/* 1 if uid is root, is self, or is a member of gid (primary or listed). */
int priv_uid_allowed(uid_t uid, gid_t peer_gid, uid_t self, gid_t gid);
/* A spool directory owned by another user than root, as root: become that
 * user and its group (a root-owned file there would be unreadable to the
 * daemon). 0 if nothing was needed or it worked, -1 with errno. */
int priv_become_owner_of(const char *dir);

#endif
