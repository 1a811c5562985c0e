/*
 * linger.c: lingering close for the connections the parent itself ends
 * (refusals): half-close, then drain what the client still sends, from the
 * parent's epoll loop, for a bounded time and amount, so the parent never
 * waits on a client.  A fixed number of slots: when all are taken the
 * connection is closed at once.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

/* Lingering goes through epfd, each slot's events tagged with tag | slot. */
void
linger_init(struct lingers *l, int epfd, uint64_t tag)
{
	size_t	 i;

	memset(l, 0, sizeof(*l));
	for (i = 0; i < LINGER_SLOTS; i++)
		l->v[i].fd = -1;
	l->epfd = epfd;
	l->tag = tag;
}

/* Close one slot's descriptor (which leaves the epoll set with it). */
static void
linger_end(struct lingers *l, struct linger_ent *e)
{
	close(e->fd);
	e->fd = -1;
	l->n--;
}

/* Half-close fd and drain it from now on. */
void
linger_start(struct lingers *l, int fd, int64_t now)
{
	struct epoll_event	 ev = { .events = EPOLLIN };
	size_t			 i;

	if (l->n == LINGER_SLOTS || shutdown(fd, SHUT_WR) == -1) {
		close(fd);
		return;
	}
	for (i = 0; l->v[i].fd != -1; i++)
		;
	ev.data.u64 = l->tag | i;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		close(fd);
		return;
	}
	l->v[i].fd = fd;
	l->v[i].deadline = now + LINGER_MS;
	l->v[i].drained = 0;
	l->n++;
}

/* The slot's client sent something or closed: drain, and end when done
 * (end of file, an error, or the byte budget spent). */
void
linger_ready(struct lingers *l, uint32_t slot)
{
	struct linger_ent	*e;
	char			 scratch[4096];
	ssize_t			 n;

	if (slot >= LINGER_SLOTS || (e = &l->v[slot])->fd == -1)
		return;
	n = recv(e->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
	if (n > 0 && (e->drained += n) < LINGER_BYTES)
		return;
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	linger_end(l, e);
}

/* End the slots whose time is up. */
void
linger_expire(struct lingers *l, int64_t now)
{
	size_t	 i;

	for (i = 0; l->n > 0 && i < LINGER_SLOTS; i++)
		if (l->v[i].fd != -1 && l->v[i].deadline <= now)
			linger_end(l, &l->v[i]);
}

/* The earliest deadline, or -1 when nothing lingers. */
int64_t
linger_next_deadline(const struct lingers *l)
{
	int64_t	 t = -1;
	size_t	 i;

	for (i = 0; l->n > 0 && i < LINGER_SLOTS; i++)
		if (l->v[i].fd != -1 && (t == -1 || l->v[i].deadline < t))
			t = l->v[i].deadline;
	return t;
}

/* Close everything still lingering (shutdown). */
void
linger_close_all(struct lingers *l)
{
	size_t	 i;

	for (i = 0; l->n > 0 && i < LINGER_SLOTS; i++)
		if (l->v[i].fd != -1)
			linger_end(l, &l->v[i]);
}
