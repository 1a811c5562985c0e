/*
 * privdrop.c: give up root for good after binding: chroot, supplementary
 * groups, gid, uid, then prove that root cannot be regained (OpenSSH's
 * permanently_set_uid() is the model).  Started as a normal user, drop any
 * capability (an ambient CAP_NET_BIND_SERVICE) once bound.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

/*
 * Look up the user and group now, before any chroot.  Errors name the user or
 * group.  Not started as root: nothing to look up.
 */
int
privdrop_lookup(const struct conf *c, struct privdrop *pd)
{
	struct passwd	*pw;
	struct group	*gr;

	memset(pd, 0, sizeof(*pd));
	pd->is_root = geteuid() == 0;
	if (!pd->is_root && c->chroot != NULL) {
		log_warnx("chroot %s: needs root", c->chroot);
		return -1;
	}
	if (!pd->is_root)
		return 0;
	errno = 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		if (errno != 0)
			log_warn("user \"%s\"", c->user);
		else
			log_warnx("user \"%s\": no such user", c->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("user \"%s\": has uid 0; refusing to serve as root",
		    c->user);
		return -1;
	}
	pd->uid = pw->pw_uid;
	pd->gid = pw->pw_gid;
	strlcpy(pd->user, c->user, sizeof(pd->user));
	if (c->group != NULL) {
		errno = 0;
		if ((gr = getgrnam(c->group)) == NULL) {
			if (errno != 0)
				log_warn("group \"%s\"", c->group);
			else
				log_warnx("group \"%s\": no such group", c->group);
			return -1;
		}
		pd->gid = gr->gr_gid;
	}
	if (pd->gid == 0) {
		log_warnx("user \"%s\": group is gid 0; refusing to serve as root",
		    c->user);
		return -1;
	}
	return 0;
}

/* sshd's rule: the chroot directory and its parents are root's, not writable by others. */
int
privdrop_check_chroot(const char *dir)
{
	struct stat	 st;
	char		 path[PATH_MAX], *slash;

	if (strlcpy(path, dir, sizeof(path)) >= sizeof(path)) {
		log_warnx("chroot %s: path too long", dir);
		return -1;
	}
	for (;;) {
		if (stat(path, &st) == -1) {
			log_warn("chroot %s", path);
			return -1;
		}
		if (!S_ISDIR(st.st_mode)) {
			log_warnx("chroot %s: not a directory", path);
			return -1;
		}
		if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
			log_warnx("chroot %s: must be owned by root and not "
			    "writable by group or others", path);
			return -1;
		}
		if ((slash = strrchr(path, '/')) == NULL || slash == path)
			return 0;
		*slash = '\0';
	}
}

/* Clear every capability set, ambient included. */
static int
drop_capabilities(void)
{
	struct __user_cap_header_struct	 hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct	 data[2];

	memset(data, 0, sizeof(data));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 &&
	    errno != EINVAL)
		return -1;
	if (syscall(SYS_capset, &hdr, data) == -1)
		return -1;
	return 0;
}

/* Are the permitted, effective and inheritable sets all empty? */
static int
no_capabilities(void)
{
	struct __user_cap_header_struct	 hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct	 data[2];
	int				 i;

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) == -1)
		return 0;
	for (i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return 0;
	return 1;
}

/* Enter dir and make it the root. */
static int
enter_chroot(const char *dir)
{
	if (chdir(dir) == -1 || chroot(".") == -1 || chdir("/") == -1) {
		log_warn("chroot %s", dir);
		return -1;
	}
	return 0;
}

/* Switch groups, gid and uid for good, as root. */
static int
switch_ids(const struct privdrop *pd)
{
	if (setgroups(1, &pd->gid) == -1) {
		log_warn("setgroups");
		return -1;
	}
	if (setresgid(pd->gid, pd->gid, pd->gid) == -1) {
		log_warn("setresgid %ld", (long)pd->gid);
		return -1;
	}
	if (setresuid(pd->uid, pd->uid, pd->uid) == -1) {
		log_warn("setresuid %ld", (long)pd->uid);
		return -1;
	}
	return 0;
}

/* Prove the switch: every id is the new one and root cannot be had back. */
static int
verify_dropped(const struct privdrop *pd)
{
	uid_t	 r, e, s;
	gid_t	 rg, eg, sg;

	if (getresuid(&r, &e, &s) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    r != pd->uid || e != pd->uid || s != pd->uid ||
	    rg != pd->gid || eg != pd->gid || sg != pd->gid) {
		log_warnx("privilege drop: ids did not change as asked");
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1 ||
	    setegid(0) != -1) {
		log_warnx("privilege drop: root could be regained");
		return -1;
	}
	if (!no_capabilities()) {
		log_warnx("privilege drop: capabilities remain");
		return -1;
	}
	return 0;
}

/*
 * Drop privileges for good (chroot first when set), then set no_new_privs so
 * that nothing the process or its children exec can gain any.
 */
int
privdrop_apply(const struct privdrop *pd, const char *chrootdir)
{
	if (!pd->is_root) {
		if (!no_capabilities() && drop_capabilities() == -1) {
			log_warn("dropping capabilities");
			return -1;
		}
		log_info("not started as root: running as uid %ld, no privilege "
		    "change", (long)getuid());
	} else {
		if (chrootdir != NULL && enter_chroot(chrootdir) == -1)
			return -1;
		if (switch_ids(pd) == -1 || verify_dropped(pd) == -1)
			return -1;
		log_info("running as user %s (uid %ld, gid %ld)%s%s", pd->user,
		    (long)pd->uid, (long)pd->gid, chrootdir ? ", chroot " : "",
		    chrootdir ? chrootdir : "");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("prctl PR_SET_NO_NEW_PRIVS");
		return -1;
	}
	return 0;
}
