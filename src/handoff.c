/*
 * handoff.c: behind a balancer, the exchange between a child and the parent.
 * The child reads the PROXY header (the parent never waits on a client),
 * reports the real client address over a SOCK_SEQPACKET socketpair, and
 * waits for the parent's one-byte verdict: only the parent knows the other
 * children, the penalties and the counters, so only it can decide.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

/* Wait for events on fd until the deadline: revents, 0 (timeout), -1. */
static int
wait_until(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd = { .fd = fd, .events = events };
	int64_t		 left;
	int		 n;

	for (;;) {
		left = deadline - clock_ms();
		if (left < 0)
			left = 0;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return pfd.revents;
		if (n == 0 && clock_ms() >= deadline)
			return 0;
		if (n == -1 && errno != EINTR)
			return -1;
	}
}

/*
 * Read the header from fd and not one byte more: peek at what has arrived
 * and read exactly the header once it is complete (as HAProxy's own receiver
 * does), so the client's line stays queued for session_run().  While the
 * parser wants more, every byte peeked at lies inside the header, so those
 * are read at once and poll() then waits for new ones.  Only poll, recv and
 * close: what the sandbox inherited from the parent allows.
 */
static int
header_read(int fd, int64_t deadline, struct proxy_hdr *h)
{
	uint8_t		 buf[PROXY_MAX_LEN];
	size_t		 have = 0;
	ssize_t		 n, len;
	int		 ev, err;

	for (;;) {
		if ((ev = wait_until(fd, POLLIN, deadline)) <= 0)
			return ev == 0 ? PROXY_E_TIMEOUT : PROXY_E_IO;
		n = recv(fd, buf + have, sizeof(buf) - have,
		    MSG_PEEK | MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return n == -1 ? PROXY_E_IO : have > 0 ?
			    PROXY_E_TRUNCATED : PROXY_E_EOF;
		if ((len = proxy_parse(buf, have + n, h, &err)) == -1)
			return err;
		if (len > 0)		/* the rest of the header, exactly */
			n = len - have;
		if (recv(fd, buf + have, n, MSG_DONTWAIT) != n)
			return PROXY_E_IO;
		if (len > 0)
			return PROXY_OK;
		have += n;
	}
}

/* Send the report to the parent; -1 if it is gone. */
static int
report(int ctl, int error, const struct sockaddr_storage *addr)
{
	struct handoff_report	 r;

	memset(&r, 0, sizeof(r));
	r.error = error;
	/* Only the address's own bytes: the rest of the storage was never
	 * written (and must not carry stale stack bytes to the parent). */
	memcpy(&r.addr, addr, addr->ss_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	return send(ctl, &r, sizeof(r), MSG_NOSIGNAL) == sizeof(r) ? 0 : -1;
}

/*
 * The child's side: read the header from the client fd (the balancer at
 * peer) before deadline, tell the parent on ctl, and wait for the verdict.
 * On success *real is the client to serve (the balancer itself for a health
 * check) and the verdict is returned; on a bad header -1 (the parent logs
 * and counts it); when the parent did not answer, 0.
 */
int
handoff_child(int fd, int ctl, const struct sockaddr_storage *peer,
    int64_t deadline, struct sockaddr_storage *real)
{
	struct proxy_hdr	 h;
	int			 err, ev;
	uint8_t			 v;

	if ((err = header_read(fd, deadline, &h)) != PROXY_OK) {
		(void)report(ctl, err, peer);
		return -1;
	}
	*real = h.local ? *peer : h.src;
	addr_normalize(real);
	if (report(ctl, PROXY_OK, real) == -1)
		return 0;
	if ((ev = wait_until(ctl, POLLIN, deadline)) <= 0 ||
	    recv(ctl, &v, 1, MSG_DONTWAIT) != 1)
		return 0;
	return v;
}

/*
 * The parent's side: read a child's report from the nonblocking ctl.
 * Returns 1 with *r, 0 when nothing is there yet, -1 when the child closed
 * or sent something malformed.
 */
int
handoff_recv(int ctl, struct handoff_report *r)
{
	ssize_t	 n;

	n = recv(ctl, r, sizeof(*r), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n != sizeof(*r) || r->error < 0 || r->error >= PROXY_E_MAX ||
	    (r->addr.ss_family != AF_INET && r->addr.ss_family != AF_INET6))
		return -1;
	return 1;
}

/* The line a refused client is told, by the parent or (behind a balancer)
 * by its child; NULL for a denied client, which is told nothing. */
const char *
verdict_line(enum verdict v)
{
	switch (v) {
	case VERDICT_LIMIT:
		return SE_ERR_PER_SOURCE;
	case VERDICT_PENALTY:
		return SE_ERR_PENALTY;
	case VERDICT_RATE:
		return SE_ERR_RATE;
	case VERDICT_BUSY:
		return SE_ERR_BUSY;
	default:
		return NULL;
	}
}

/* Tell a child what to do; if it has died meanwhile, nothing is lost. */
void
handoff_send_verdict(int ctl, enum verdict v)
{
	uint8_t	 b = v;

	(void)send(ctl, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}
