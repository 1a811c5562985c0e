/*
 * children.c: the parent's table of live children.  Each child has a slot
 * (reused through a free list, so the slot is the index its pidfd carries in
 * the epoll set) and a place in a heap of deadlines, so that the parent finds
 * a child that outlives its deadline without looking at the others.
 * Everything here costs O(1) or O(log n) per child, whatever n is.
 */
#include <sys/types.h>
#include <sys/pidfd.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

/* The heap tells each child where it sits. */
static void
deadline_moved(void *ctx, uint32_t id, size_t pos)
{
	struct children	*t = ctx;

	t->v[id].heappos = (uint32_t)pos;
}

/* A free slot, growing the table when there is none; -1 if memory is short. */
static int64_t
free_slot(struct children *t)
{
	struct child	*v;
	uint32_t	 cap, i;

	if (t->freelist == 0) {
		cap = t->cap == 0 ? 64 : t->cap * 2;
		if ((v = reallocarray(t->v, cap, sizeof(*v))) == NULL)
			return -1;
		memset(v + t->cap, 0, (cap - t->cap) * sizeof(*v));
		for (i = cap; i-- > t->cap;) {
			v[i].nextfree = t->freelist;
			t->freelist = i + 1;
		}
		t->v = v;
		t->cap = cap;
		t->deadlines.moved = deadline_moved;
		t->deadlines.ctx = t;
	}
	i = t->freelist - 1;
	t->freelist = t->v[i].nextfree;
	return i;
}

/*
 * Record a new child with its pidfd, to be ended by the parent if it is
 * still alive at deadline; its slot, or -1 (logged) when memory is short.
 */
int
children_add(struct children *t, pid_t pid, int pidfd, const char *ip,
    int64_t now, int64_t deadline)
{
	struct child	*c;
	int64_t		 slot;

	if ((slot = free_slot(t)) == -1) {
		log_warn("children table");
		return -1;
	}
	c = &t->v[slot];
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->pidfd = pidfd;
	c->ctl = -1;
	c->start = now;
	c->inuse = 1;
	strlcpy(c->ip, ip, sizeof(c->ip));
	if (heap_push(&t->deadlines, (uint32_t)slot, deadline) == -1) {
		log_warn("children table");
		c->inuse = 0;
		c->nextfree = t->freelist;
		t->freelist = slot + 1;
		return -1;
	}
	t->n++;
	return (int)slot;
}

/* Forget the child in slot (its descriptors are the caller's to close). */
void
children_remove(struct children *t, uint32_t slot)
{
	struct child	*c = &t->v[slot];

	if (c->heappos != 0)
		heap_remove(&t->deadlines, c->heappos - 1);
	c->inuse = 0;
	c->pid = 0;
	c->nextfree = t->freelist;
	t->freelist = slot + 1;
	t->n--;
}

/* The child in slot, or NULL when the slot is free. */
struct child *
children_at(struct children *t, uint32_t slot)
{
	return slot < t->cap && t->v[slot].inuse ? &t->v[slot] : NULL;
}

/* A child whose deadline has passed, taken off the deadline heap; NULL. */
struct child *
children_overdue(struct children *t, int64_t now)
{
	const struct heap_node *top = heap_top(&t->deadlines);
	struct child	*c;

	if (top == NULL || top->key > now)
		return NULL;
	c = &t->v[top->id];
	heap_remove(&t->deadlines, 0);
	return c;
}

/* The child with this pid, or NULL: a scan, for the name cache's reports
 * only (they name the pid the kernel vouches for). */
struct child *
children_find_pid(struct children *t, pid_t pid)
{
	uint32_t	 i;

	for (i = 0; i < t->cap; i++)
		if (t->v[i].inuse && t->v[i].pid == pid)
			return &t->v[i];
	return NULL;
}

/*
 * Signal one child through its pidfd, which names that process and no
 * other even after it exits; the mark tells its death from a crash.
 */
int
children_signal(struct child *c, int sig)
{
	int	 rv;

	c->signalled = 1;
	rv = c->pidfd != -1 ? pidfd_send_signal(c->pidfd, sig, NULL, 0) :
	    kill(c->pid, sig);
	if (rv == -1 && errno != ESRCH) {
		log_warn("signal child %ld", (long)c->pid);
		return -1;
	}
	return 0;
}

/* Send sig to every child (shutdown only). */
void
children_signal_all(struct children *t, int sig)
{
	uint32_t	 i;

	for (i = 0; i < t->cap; i++)
		if (t->v[i].inuse)
			(void)children_signal(&t->v[i], sig);
}

void
children_free(struct children *t)
{
	free(t->v);
	heap_free(&t->deadlines);
	memset(t, 0, sizeof(*t));
}
