/*
 * children.c: the parent's table of live children.  Each child has a slot
 * (reused through a free list, so the slot is the index its report socket
 * carries in the epoll set), an entry in a hash by pid (its exit signal
 * names the pid), and a place in a heap of deadlines, so that the parent
 * finds a child that outlives its deadline without looking at the others.
 * Everything here costs O(1) or O(log n) per child, whatever n is.
 */
#include <sys/types.h>
#include <sys/syscall.h>

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

/* Where pid's search starts in the pid hash. */
static uint32_t
pid_home(const struct children *t, pid_t pid)
{
	return ((uint32_t)pid * 2654435761U) & t->bypid_mask;
}

/* Enter slot in the pid hash (which has room: it is twice the table). */
static void
bypid_put(struct children *t, uint32_t slot)
{
	uint32_t	 i;

	for (i = pid_home(t, t->v[slot].pid); t->bypid[i] != 0;
	    i = (i + 1) & t->bypid_mask)
		;
	t->bypid[i] = slot + 1;
}

/* Take slot out of the pid hash, moving back the entries after it that
 * would no longer be found (deletion in linear probing, without markers). */
static void
bypid_del(struct children *t, uint32_t slot)
{
	uint32_t	 i, j, home;

	for (i = pid_home(t, t->v[slot].pid); t->bypid[i] != slot + 1;
	    i = (i + 1) & t->bypid_mask)
		;
	for (j = i;;) {
		t->bypid[i] = 0;
		for (;;) {
			j = (j + 1) & t->bypid_mask;
			if (t->bypid[j] == 0)
				return;
			home = pid_home(t, t->v[t->bypid[j] - 1].pid);
			/* stays unless home lies cyclically in (i, j] */
			if (i <= j ? (home <= i || home > j) :
			    (home <= i && home > j))
				break;
		}
		t->bypid[i] = t->bypid[j];
		i = j;
	}
}

/* Make the pid hash twice cap and fill it again; -1 if memory is short. */
static int
bypid_grow(struct children *t, uint32_t cap)
{
	uint32_t	*h, i;

	if ((h = table_alloc((size_t)cap * 2, sizeof(*h))) == NULL)
		return -1;
	if (t->bypid != NULL)
		table_free(t->bypid, (size_t)t->bypid_mask + 1, sizeof(*h));
	t->bypid = h;
	t->bypid_mask = cap * 2 - 1;
	for (i = 0; i < t->cap; i++)
		if (t->v[i].inuse)
			bypid_put(t, i);
	return 0;
}

/* A free slot, growing the table when there is none; -1 if memory is short. */
static int64_t
free_slot(struct children *t)
{
	struct child	*v;
	uint32_t	 cap, i;

	if (t->freelist == 0) {
		cap = t->cap == 0 ? 64 : t->cap * 2;
		if ((v = table_resize(t->v, t->cap, cap, sizeof(*v))) == NULL)
			return -1;
		for (i = cap; i-- > t->cap;) {
			v[i].nextfree = t->freelist;
			t->freelist = i + 1;
		}
		t->v = v;
		t->cap = cap;
		t->deadlines.moved = deadline_moved;
		t->deadlines.ctx = t;
		if (bypid_grow(t, cap) == -1)
			return -1;
	}
	i = t->freelist - 1;
	t->freelist = t->v[i].nextfree;
	return i;
}

/*
 * Record a new child, to be ended by the parent if it is still alive at
 * deadline; its slot, or -1 (logged) when memory is short.
 */
int
children_add(struct children *t, pid_t pid, const char *ip, int64_t now,
    int64_t deadline)
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
	bypid_put(t, (uint32_t)slot);
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
	bypid_del(t, slot);
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

/* The child with this pid, or NULL. */
struct child *
children_find_pid(struct children *t, pid_t pid)
{
	uint32_t	 i, s;

	if (t->bypid == NULL)
		return NULL;
	for (i = pid_home(t, pid); (s = t->bypid[i]) != 0;
	    i = (i + 1) & t->bypid_mask)
		if (t->v[s - 1].pid == pid)
			return &t->v[s - 1];
	return NULL;
}

uint32_t
children_slot(const struct children *t, const struct child *c)
{
	return (uint32_t)(c - t->v);
}

/*
 * Signal one child; the mark tells its death from a crash.  Its pid cannot
 * name another process: only the parent reaps it, so until then the pid
 * stays its own (a zombie's at worst).  Under the seccomp filter, which has
 * no kill(2) so that no child can signal anybody, through a pidfd opened for
 * the purpose (a child can open none: sandbox.c); this is rare (shutdown,
 * an overdue child), so it costs nothing per client.
 */
static int
send_signal(pid_t pid, int sig)
{
	int	 fd, rv;

	if (!sandbox_active())
		return kill(pid, sig);
	if ((fd = (int)syscall(SYS_pidfd_open, pid, 0)) == -1)
		return errno == ENOSYS ? kill(pid, sig) : -1;
	rv = (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
	close(fd);
	return rv;
}

int
children_signal(struct child *c, int sig)
{
	c->signalled = 1;
	if (send_signal(c->pid, sig) == -1 && errno != ESRCH) {
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
	table_free(t->v, t->cap, sizeof(*t->v));
	if (t->bypid != NULL)
		table_free(t->bypid, (size_t)t->bypid_mask + 1,
		    sizeof(*t->bypid));
	heap_free(&t->deadlines);
	memset(t, 0, sizeof(*t));
}
