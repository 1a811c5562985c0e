/*
 * daemon.c: detaching (fork, setsid, chdir /, stdio to /dev/null) and the
 * pidfile, through libbsd's pidfile(3): its lock decides liveness, so a file
 * left by a crash never blocks a restart.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libutil.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

struct pidfile {
	struct pidfh	*pfh;
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
 * Open and lock the pidfile before detaching, so that a second instance is
 * refused on the terminal.  Returns NULL on error (logged).
 */
struct pidfile *
daemon_pidfile_open(const char *path, const struct privdrop *pd)
{
	struct pidfile	*pf;
	char		 dir[PATH_MAX], base[PATH_MAX], *d;
	pid_t		 other = -1;

	if ((pf = calloc(1, sizeof(*pf))) == NULL)
		fatal("calloc");
	strlcpy(dir, path, sizeof(dir));
	strlcpy(base, path, sizeof(base));
	strlcpy(pf->base, basename(base), sizeof(pf->base));
	d = dirname(dir);
	make_piddir(d, pd);
	if ((pf->pfh = pidfile_open(path, 0644, &other)) == NULL) {
		if (errno == EEXIST)
			log_warnx("already running as pid %ld (pidfile %s)",
			    (long)other, path);
		else
			log_warn("pidfile %s", path);
		goto err0;
	}
	if ((pf->dirfd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("pidfile directory %s", d);
		goto err1;
	}
	return pf;
err1:
	pidfile_remove(pf->pfh);
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
	if (pf != NULL && pidfile_write(pf->pfh) == -1)
		log_warn("pidfile write");
}

/* Remove the pidfile at exit (works after chroot and the privilege drop). */
void
daemon_pidfile_remove(struct pidfile *pf)
{
	if (pf == NULL)
		return;
	if (unlinkat(pf->dirfd, pf->base, 0) == -1 && errno != ENOENT)
		log_warn("unlink pidfile %s", pf->base);
	daemon_pidfile_close(pf);
}

/* Close the pidfile without removing it (children: they must not hold the lock). */
void
daemon_pidfile_close(struct pidfile *pf)
{
	if (pf == NULL)
		return;
	pidfile_close(pf->pfh);
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
