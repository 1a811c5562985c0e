/*
 * children.c: the parent's table of live children: who they serve, since
 * when, and how many serve one source.  A flat array: the common case is a
 * few dozen children, and even 10,000 cost microseconds to scan.
 */
#include <sys/types.h>
#include <sys/syscall.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

/* Record a new child; NULL (logged) when memory is short. */
struct child *
children_add(struct children *t, pid_t pid, const struct addrmask *source,
    const char *ip, int64_t now)
{
	struct child	*c;
	size_t		 cap;

	if (t->n == t->cap) {
		cap = t->cap == 0 ? 64 : t->cap * 2;
		if ((c = reallocarray(t->v, cap, sizeof(*c))) == NULL) {
			log_warn("children table");
			return NULL;
		}
		t->v = c;
		t->cap = cap;
	}
	c = &t->v[t->n++];
	c->pid = pid;
	c->source = *source;
	strlcpy(c->ip, ip, sizeof(c->ip));
	c->start = now;
	c->signalled = 0;
	c->ctl = -1;
	c->naming = 0;
	return c;
}

/* Forget the child pid, copying its record to out; -1 if it is not ours. */
int
children_remove(struct children *t, pid_t pid, struct child *out)
{
	size_t	 i;

	for (i = t->n; i-- > 0;) {
		if (t->v[i].pid != pid)
			continue;
		*out = t->v[i];
		t->v[i] = t->v[--t->n];
		return 0;
	}
	return -1;
}

/* The record of child pid, or NULL. */
struct child *
children_find(struct children *t, pid_t pid)
{
	size_t	 i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].pid == pid)
			return &t->v[i];
	return NULL;
}

/* How many live children serve source (compared as masked networks). */
size_t
children_count_source(const struct children *t, const struct addrmask *source)
{
	size_t	 i, n = 0;

	for (i = 0; i < t->n; i++)
		if (t->v[i].source.family == source->family &&
		    memcmp(t->v[i].source.addr, source->addr, 16) == 0)
			n++;
	return n;
}

/*
 * Signal one child through a pidfd: the seccomp filter has no kill(2), and a
 * sandboxed child can open no pidfd, so only the parent can signal anybody
 * (sandbox.c).  kill(2) is left for kernels without pidfds, and for builds
 * and runs without the filter (valgrind does not know pidfd_open).
 */
int
children_kill(pid_t pid, int sig)
{
	int	 fd, rv;

	if (!sandbox_active())		/* no filter: the plain call will do */
		return kill(pid, sig);
	if ((fd = syscall(SYS_pidfd_open, pid, 0)) == -1)
		return errno == ENOSYS ? kill(pid, sig) : -1;
	rv = syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
	close(fd);
	return rv;
}

/* Send sig to every child, marking them so their death is not a crash. */
void
children_signal_all(struct children *t, int sig)
{
	size_t	 i;

	for (i = 0; i < t->n; i++) {
		t->v[i].signalled = 1;
		if (children_kill(t->v[i].pid, sig) == -1 && errno != ESRCH)
			log_warn("signal child %ld", (long)t->v[i].pid);
	}
}

void
children_free(struct children *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}
