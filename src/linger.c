/*
 * linger.c: lingering close for the connections the parent itself ends
 * (refusals): half-close, then drain what the client still sends from the
 * parent's poll loop, for a bounded time and amount, so the parent never
 * waits on a client.  When the table is full the connection is closed at once.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "srvexample.h"

#define LINGER_MS	1000
#define LINGER_BYTES	(256 * 1024)
#define LINGER_MAX	(sizeof(((struct lingers *)0)->v) / \
			    sizeof(((struct lingers *)0)->v[0]))

/* Half-close fd and drain it from now on; it is closed by linger_service(). */
void
linger_start(struct lingers *l, int fd, int64_t now)
{
	if (shutdown(fd, SHUT_WR) == -1 || l->n == LINGER_MAX) {
		close(fd);
		return;
	}
	l->v[l->n].fd = fd;
	l->v[l->n].deadline = now + LINGER_MS;
	l->v[l->n].drained = 0;
	l->n++;
}

/* Fill pfd with the lingering descriptors; returns how many. */
size_t
linger_pollfds(const struct lingers *l, struct pollfd *pfd)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		pfd[i].fd = l->v[i].fd;
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	return l->n;
}

/* Drain one; 1 when it is done (EOF, error, budget spent). */
static int
linger_drain(struct linger_ent *e)
{
	char	 scratch[4096];
	ssize_t	 n;

	n = recv(e->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
	if (n > 0) {
		e->drained += n;
		return e->drained >= LINGER_BYTES;
	}
	return n == 0 || (errno != EAGAIN && errno != EINTR);
}

/*
 * Act on poll results (the first npfd entries, as filled by linger_pollfds
 * before the poll) and on deadlines.
 */
void
linger_service(struct lingers *l, const struct pollfd *pfd, size_t npfd,
    int64_t now)
{
	size_t	 i;
	int	 done[LINGER_MAX];

	for (i = 0; i < l->n; i++)
		done[i] = l->v[i].deadline <= now ||
		    (i < npfd && pfd[i].revents != 0 && linger_drain(&l->v[i]));
	for (i = l->n; i-- > 0;)
		if (done[i]) {
			close(l->v[i].fd);
			l->v[i] = l->v[--l->n];
		}
}

/* The earliest deadline, or -1 when nothing lingers. */
int64_t
linger_next_deadline(const struct lingers *l)
{
	int64_t	 t = -1;
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (t == -1 || l->v[i].deadline < t)
			t = l->v[i].deadline;
	return t;
}

/* Close everything still lingering (shutdown). */
void
linger_close_all(struct lingers *l)
{
	while (l->n > 0)
		close(l->v[--l->n].fd);
}
