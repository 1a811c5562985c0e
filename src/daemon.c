/*
 * daemon.c: detaching (fork, setsid, chdir /, stdio to /dev/null) and the
 * pidfile.  Its lock (flock) decides liveness, so a file left by a crash
 * never blocks a restart.
 *
 * The pidfile's directory belongs to the dropped user (it must remove the
 * file after the privilege drop), and root opens the file in it: so root
 * opens it relative to the directory, never through a symbolic link, never
 * blocking, and writes only to a regular file with one link owned by root or
 * by the dropped user; anything the user planted there is refused.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srvexample.h"

struct pidfile {
	int		 fd;		/* open and locked */
	int		 dirfd;		/* to unlink it after chroot */
	char		 base[NAME_MAX + 1];
};

/* Create the pidfile's directory for the dropped user when started as root. */
static void
make_piddir(const char *dir, const struct privdrop *pd)
{
	if (!pd->is_root)
		return;
	if (mkdir(dir, 0755) == 0) {
		if (chown(dir, pd->uid, pd->gid) == -1)
			log_warn("chown %s", dir);
	} else if (errno != EEXIST)
		log_warn("mkdir %s", dir);
}

/*
 * The pid the running instance wrote in fd, -1 if none: it may hold the
 * lock and not have written yet, so wait for it a little (100 ms at most).
 */
static long
pidfile_other(int fd)
{
	struct timespec	 ts = { 0, 5000000 };
	char		 buf[32];
	ssize_t		 n;
	int		 i;

	for (i = 0; i < 20; i++) {
		if ((n = pread(fd, buf, sizeof(buf) - 1, 0)) > 0) {
			buf[n] = '\0';
			return strtol(buf, NULL, 10);
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* Is fd a file root may write: regular, one link, root's or the user's? */
static int
pidfile_check(int fd, const char *path, const struct privdrop *pd)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		log_warn("pidfile %s", path);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (st.st_uid != geteuid() && (!pd->is_root || st.st_uid != pd->uid))) {
		log_warnx("pidfile %s: not a regular file with one link owned "
		    "by the daemon's user", path);
		return -1;
	}
	return 0;
}

/*
 * Open and lock the pidfile before detaching, so that a second instance is
 * refused on the terminal.  Returns NULL on error (logged).
 */
struct pidfile *
daemon_pidfile_open(const char *path, const struct privdrop *pd)
{
	struct pidfile	*pf;
	char		 dir[PATH_MAX], base[PATH_MAX], *d;

	if ((pf = calloc(1, sizeof(*pf))) == NULL)
		fatal("calloc");
	strlcpy(dir, path, sizeof(dir));
	strlcpy(base, path, sizeof(base));
	strlcpy(pf->base, basename(base), sizeof(pf->base));
	d = dirname(dir);
	make_piddir(d, pd);
	if ((pf->dirfd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("pidfile directory %s", d);
		goto err0;
	}
	if ((pf->fd = openat(pf->dirfd, pf->base, O_RDWR | O_CREAT |
	    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644)) == -1) {
		log_warn("pidfile %s", path);
		goto err1;
	}
	if (pidfile_check(pf->fd, path, pd) == -1)
		goto err2;
	if (flock(pf->fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_warnx("already running as pid %ld (pidfile %s)",
			    pidfile_other(pf->fd), path);
		else
			log_warn("pidfile %s: lock", path);
		goto err2;
	}
	return pf;
err2:
	close(pf->fd);
err1:
	close(pf->dirfd);
err0:
	free(pf);
	return NULL;
}

/* Detach from the terminal and record the new pid. */
void
daemon_detach(struct pidfile *pf)
{
	if (daemon(0, 0) == -1)
		fatal("daemon");
	log_detached();
	if (pf != NULL)
		daemon_pidfile_write(pf);
}

/* Write the current pid in the pidfile. */
void
daemon_pidfile_write(struct pidfile *pf)
{
	char	 buf[32];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(pf->fd, 0) == -1 || pwrite(pf->fd, buf, n, 0) != n)
		log_warn("pidfile write");
}

/*
 * Remove the pidfile at exit (works after chroot and the privilege drop).
 * Where the sandbox could not confine unlink(2) to its directory (no
 * Landlock), the filter allows none: the file stays, and its lock, which
 * decides liveness, dies with us.
 */
void
daemon_pidfile_remove(struct pidfile *pf)
{
	if (pf == NULL)
		return;
	if (sandbox_may_unlink() && unlinkat(pf->dirfd, pf->base, 0) == -1 && errno != ENOENT)
		log_warn("unlink pidfile %s", pf->base);
	daemon_pidfile_close(pf);
}

/* Close the pidfile without removing it (children: they must not hold the lock). */
void
daemon_pidfile_close(struct pidfile *pf)
{
	if (pf == NULL)
		return;
	close(pf->fd);
	close(pf->dirfd);
	free(pf);
}

/* The pidfile's directory descriptor, the one thing the parent may unlink in
 * (sandbox.c); -1 without a pidfile. */
int
daemon_pidfile_dirfd(const struct pidfile *pf)
{
	return pf == NULL ? -1 : pf->dirfd;
}
