/*
 * loadgen: closed-loop load generator for line-echo servers (srvexample
 * and its reference servers).  One thread, one epoll loop, non-blocking
 * sockets: each of the -c client slots loops connect, send the line,
 * half-close, read the reply to EOF, verify it, close.  With -H it opens
 * N connections, holds them idle, then asks on all of them at once.
 *
 * Prints one machine-readable line on stdout, for example
 *	conns=40512 secs=3.001 cps=13499 p50_us=4410 p99_us=9020 max_us=15123
 *	errors=0 wrong=0
 * Latency runs from the start of connect() to the reply's EOF.
 *
 * -S n spreads the clients over the source addresses 127.0.0.1 to
 * 127.0.0.n (one per slot, round robin), for servers that limit clients
 * per address.  Beware a server that looks the client's name up: only
 * 127.0.0.1 is usually in /etc/hosts, the others would go to DNS.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT	24
#endif

#define PREFIX		"You said:"
#define MAXEVENTS	256
#define DRAIN_NS	(10 * NS)	/* wait this long for stragglers */
#define HOLD_NS		(120 * NS)	/* bound on each -H phase */
#define RETRY_NS	(1000 * 1000)	/* back-off after a local failure */
#define NS		1000000000ULL

enum state {
	S_IDLE, S_WAIT, S_CONNECTING, S_SENDING, S_READING, S_HELD
};

enum errkind {
	E_CONNECT, E_REFUSED, E_NOADDR, E_RESET, E_IO, E_TIMEOUT, E_NKINDS
};

static const char *errnames[E_NKINDS] = {
	"connect", "refused", "addrnotavail", "reset", "io", "timeout"
};

struct conn {
	int		 fd;
	enum state	 state;
	int		 watched;	/* registered with epoll */
	size_t		 off;		/* bytes sent, then bytes received */
	int		 bad;		/* reply differs from the expected */
	uint64_t	 t0;		/* start of this exchange */
	uint64_t	 retry;		/* S_WAIT: when to start again */
};

struct gen {
	int			 nconns;	/* slots (-c) or held (-H) */
	int			 hold;
	double			 secs;
	uint64_t		 count;		/* -n, 0 for a timed run */
	double			 wait;
	int			 sources;
	int			 family;
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	char			*line;
	size_t			 linelen;
	char			*expect;
	size_t			 explen;

	int			 ep;
	struct conn		*conns;
	uint64_t		 deadline;	/* no new exchange after it */
	uint64_t		 started;
	int			 active;	/* slots not idle and not held */
	int			 nwait;
	uint64_t		 held;

	uint64_t		 ok;
	uint64_t		 wrong;
	uint64_t		 errs[E_NKINDS];
	uint32_t		*lat;
	size_t			 nlat;
	size_t			 latcap;
};

static void	usage(void);

/* Return the monotonic clock in nanoseconds. */
static uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* Parse a decimal integer option argument within [min, max] or exit. */
static long long
numarg(const char *s, long long min, long long max, const char *what)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		errx(1, "%s: \"%s\" must be a number from %lld to %lld",
		    what, s, min, max);
	return v;
}

/* Parse a non-negative number of seconds or exit. */
static double
secarg(const char *s, const char *what)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= 0 && v < 1e6))
		errx(1, "%s: \"%s\" is not a number of seconds", what, s);
	return v;
}

/* Set the line to send (a newline is appended) and the expected reply. */
static void
set_line(struct gen *g, const char *text)
{
	size_t	 len = strlen(text), plen = strlen(PREFIX);

	if ((g->line = malloc(len + 2)) == NULL ||
	    (g->expect = malloc(plen + len + 2)) == NULL)
		err(1, "malloc");
	memcpy(g->line, text, len);
	memcpy(g->line + len, "\n", 2);
	g->linelen = len + 1;
	memcpy(g->expect, PREFIX, plen);
	memcpy(g->expect + plen, g->line, g->linelen + 1);
	g->explen = plen + g->linelen;
}

/* Resolve the numeric or named target host and port. */
static void
resolve(struct gen *g, const char *host, const char *port)
{
	struct addrinfo	 hints, *res;
	int		 e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = g->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
		errx(1, "%s port %s: %s", host, port, gai_strerror(e));
	memcpy(&g->addr, res->ai_addr, res->ai_addrlen);
	g->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

/* Parse the command line into g. */
static void
parse_args(struct gen *g, int argc, char *argv[])
{
	int	 ch;

	g->nconns = 1;
	g->secs = 5;
	g->family = AF_INET;
	set_line(g, "hello world");
	while ((ch = getopt(argc, argv, "6c:d:H:hl:n:S:w:")) != -1) {
		switch (ch) {
		case '6':
			g->family = AF_INET6;
			break;
		case 'c':
			g->nconns = (int)numarg(optarg, 1, 100000, "-c");
			break;
		case 'd':
			g->secs = secarg(optarg, "-d");
			g->count = 0;
			break;
		case 'H':
			g->nconns = (int)numarg(optarg, 1, 1000000, "-H");
			g->hold = 1;
			break;
		case 'l':
			free(g->line);
			free(g->expect);
			set_line(g, optarg);
			break;
		case 'n':
			g->count = (uint64_t)numarg(optarg, 1, INT64_MAX, "-n");
			break;
		case 'S':
			g->sources = (int)numarg(optarg, 1, 254, "-S");
			break;
		case 'w':
			g->wait = secarg(optarg, "-w");
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2)
		usage();
	if (g->sources > 0 && g->family != AF_INET)
		errx(1, "-S needs an IPv4 loopback target");
	resolve(g, argv[optind], argv[optind + 1]);
}

/* Make room for n descriptors plus a few, raising the hard limit if allowed. */
static void
raise_nofile(rlim_t n)
{
	struct rlimit	 rl;

	n += 32;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(1, "getrlimit");
	if (rl.rlim_cur >= n)
		return;
	rl.rlim_cur = n;
	if (rl.rlim_max < n)
		rl.rlim_max = n;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(1, "need %ju descriptors: setrlimit", (uintmax_t)n);
}

/* Register a connection with epoll, once, for every edge it will need. */
static void
conn_watch(struct gen *g, int i)
{
	struct conn		*c = &g->conns[i];
	struct epoll_event	 ev;

	if (c->watched)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.u32 = (uint32_t)i;
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
	c->watched = 1;
}

/* Close a connection's descriptor; the slot becomes idle. */
static void
conn_close(struct gen *g, struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->watched = 0;
	if (c->state != S_IDLE && c->state != S_HELD)
		g->active--;
	c->state = S_IDLE;
}

/* Record one latency sample in microseconds. */
static void
record_latency(struct gen *g, uint64_t ns)
{
	uint64_t	 us = ns / 1000;

	if (g->nlat == g->latcap) {
		g->latcap = g->latcap ? g->latcap * 2 : 65536;
		g->lat = realloc(g->lat, g->latcap * sizeof(*g->lat));
		if (g->lat == NULL)
			err(1, "realloc");
	}
	g->lat[g->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Classify errno from a connection attempt or exchange. */
static enum errkind
errkind(int e, int connecting)
{
	if (e == ECONNREFUSED)
		return E_REFUSED;
	if (e == EADDRNOTAVAIL || e == EADDRINUSE)
		return E_NOADDR;
	if (e == ECONNRESET || e == EPIPE)
		return E_RESET;
	return connecting ? E_CONNECT : E_IO;
}

static void	conn_send(struct gen *, int);

/* Count a failed exchange and close it; a load slot retries after a pause. */
static void
conn_fail(struct gen *g, int i, enum errkind kind)
{
	struct conn	*c = &g->conns[i];

	g->errs[kind]++;
	conn_close(g, c);
	if (g->hold)
		return;
	c->state = S_WAIT;
	c->retry = now_ns() + RETRY_NS;
	g->active++;
	g->nwait++;
}

/* Bind the socket to the slot's loopback source address (-S). */
static int
bind_source(struct gen *g, int fd, int i)
{
	struct sockaddr_in	 sin;
	int			 one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001 + (uint32_t)(i % g->sources));
	if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one)) == -1)
		return -1;
	return bind(fd, (struct sockaddr *)&sin, sizeof(sin));
}

/* The connection is established: send the line, or hold it idle (-H). */
static void
conn_connected(struct gen *g, int i)
{
	struct conn	*c = &g->conns[i];

	if (!g->hold) {
		conn_send(g, i);
		return;
	}
	if (c->watched && epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL) == -1)
		err(1, "epoll_ctl");
	c->watched = 0;
	c->state = S_HELD;
	g->active--;
	g->held++;
}

/* Open a non-blocking socket for slot i, connect, and send at once if it can. */
static void
conn_open(struct gen *g, int i)
{
	struct conn	*c = &g->conns[i];
	int		 e;

	c->t0 = now_ns();
	c->off = 0;
	c->bad = 0;
	c->state = S_CONNECTING;
	g->active++;
	g->started++;
	c->fd = socket(g->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_fail(g, i, E_CONNECT);
		return;
	}
	if (g->sources > 0 && bind_source(g, c->fd, i) == -1) {
		conn_fail(g, i, errkind(errno, 1));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&g->addr, g->addrlen) == 0) {
		conn_connected(g, i);
		return;
	}
	if ((e = errno) != EINPROGRESS) {
		conn_fail(g, i, errkind(e, 1));
		return;
	}
	if (g->hold)
		conn_watch(g, i);
	else
		conn_send(g, i);	/* loopback is often connected already */
}

/* Start the next exchange in slot i, unless the run is over. */
static void
conn_start(struct gen *g, int i)
{
	if (g->count ? g->started >= g->count : now_ns() >= g->deadline)
		return;
	conn_open(g, i);
}

/* Send (the rest of) the line, then half-close and wait for the reply. */
static void
conn_send(struct gen *g, int i)
{
	struct conn	*c = &g->conns[i];
	ssize_t		 n;

	c->state = S_SENDING;
	while (c->off < g->linelen) {
		n = send(c->fd, g->line + c->off, g->linelen - c->off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			conn_watch(g, i);
			return;
		}
		if (n == -1) {
			conn_fail(g, i, errkind(errno, 0));
			return;
		}
		c->off += (size_t)n;
	}
	if (shutdown(c->fd, SHUT_WR) == -1) {
		conn_fail(g, i, errkind(errno, 0));
		return;
	}
	c->off = 0;
	c->state = S_READING;
	conn_watch(g, i);
}

/* The reply ended: verify it, record it, and start the next exchange. */
static void
conn_done(struct gen *g, int i)
{
	struct conn	*c = &g->conns[i];

	if (c->bad || c->off != g->explen)
		g->wrong++;
	else {
		g->ok++;
		record_latency(g, now_ns() - c->t0);
	}
	conn_close(g, c);
	if (!g->hold)
		conn_start(g, i);
}

/* Read what the server sent, comparing it with the expected reply. */
static void
conn_read(struct gen *g, int i)
{
	struct conn	*c = &g->conns[i];
	char		 buf[4096];
	ssize_t		 n;

	for (;;) {
		n = read(c->fd, buf, sizeof(buf));
		if (n == 0) {
			conn_done(g, i);
			return;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1) {
			conn_fail(g, i, errkind(errno, 0));
			return;
		}
		if (c->off + (size_t)n > g->explen ||
		    memcmp(g->expect + c->off, buf, (size_t)n) != 0)
			c->bad = 1;
		c->off += (size_t)n;
	}
}

/* Act on an epoll event for slot i; several steps may be ready at once. */
static void
conn_event(struct gen *g, int i, uint32_t ev)
{
	struct conn	*c = &g->conns[i];
	socklen_t	 len;
	int		 e = 0;

	if (c->state == S_CONNECTING) {
		len = sizeof(e);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
			e = errno;
		if (e != 0)
			conn_fail(g, i, errkind(e, 1));
		else
			conn_connected(g, i);
		return;
	}
	if (c->state == S_SENDING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		conn_send(g, i);
	if (c->state == S_READING &&
	    (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
		conn_read(g, i);
}

/* Restart the slots whose back-off has expired. */
static void
retry_waiting(struct gen *g, uint64_t now)
{
	struct conn	*c;
	int		 i;

	for (i = 0; i < g->nconns && g->nwait > 0; i++) {
		c = &g->conns[i];
		if (c->state != S_WAIT || c->retry > now)
			continue;
		c->state = S_IDLE;
		g->active--;
		g->nwait--;
		conn_start(g, i);
	}
}

/* Count every unfinished exchange as timed out and close it. */
static void
expire_all(struct gen *g)
{
	struct conn	*c;
	int		 i;

	for (i = 0; i < g->nconns; i++) {
		c = &g->conns[i];
		if (c->state == S_WAIT)
			g->nwait--;
		if (c->state != S_IDLE && c->state != S_HELD) {
			g->errs[E_TIMEOUT]++;
			conn_close(g, c);
		}
	}
}

/* Run the epoll loop until no exchange is in flight or the limit passes. */
static void
event_loop(struct gen *g, uint64_t limit)
{
	struct epoll_event	 evs[MAXEVENTS];
	uint64_t		 now, ms;
	int			 i, n;

	while (g->active > 0) {
		now = now_ns();
		if (now >= limit) {
			expire_all(g);
			break;
		}
		ms = g->nwait > 0 ? 1 : (limit - now) / 1000000 + 1;
		if (ms > 1000)
			ms = 1000;
		n = epoll_wait(g->ep, evs, MAXEVENTS, (int)ms);
		if (n == -1 && errno != EINTR)
			err(1, "epoll_wait");
		for (i = 0; i < n; i++)
			conn_event(g, (int)evs[i].data.u32, evs[i].events);
		if (g->nwait > 0)
			retry_waiting(g, now_ns());
	}
}

/* Compare two latency samples for qsort. */
static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Return the nearest-rank p-th percentile of the sorted samples. */
static uint32_t
percentile(const struct gen *g, unsigned p)
{
	size_t	 rank;

	if (g->nlat == 0)
		return 0;
	rank = (g->nlat * p + 99) / 100;
	return g->lat[rank > 0 ? rank - 1 : 0];
}

/* Return the total number of errors. */
static uint64_t
errors(const struct gen *g)
{
	uint64_t	 sum = 0;
	int		 k;

	for (k = 0; k < E_NKINDS; k++)
		sum += g->errs[k];
	return sum;
}

/* Print the error breakdown on stderr when there were errors. */
static void
report_errors(const struct gen *g)
{
	int	 k;

	if (errors(g) == 0)
		return;
	fprintf(stderr, "loadgen: errors:");
	for (k = 0; k < E_NKINDS; k++)
		fprintf(stderr, " %s=%" PRIu64, errnames[k], g->errs[k]);
	fprintf(stderr, "\n");
}

/* Print the latency fields of the result line. */
static void
report_latency(struct gen *g)
{
	if (g->nlat > 0)	/* no connection: lat is NULL, qsort's UB */
		qsort(g->lat, g->nlat, sizeof(*g->lat), cmp_u32);
	printf(" p50_us=%" PRIu32 " p99_us=%" PRIu32 " max_us=%" PRIu32,
	    percentile(g, 50), percentile(g, 99),
	    g->nlat ? g->lat[g->nlat - 1] : 0);
}

/* Closed-loop run: every slot loops exchanges until the time or count. */
static void
run_load(struct gen *g)
{
	uint64_t	 start, end;
	double		 secs;
	int		 i;

	start = now_ns();
	g->deadline = start + (uint64_t)(g->secs * NS);
	for (i = 0; i < g->nconns; i++)
		conn_start(g, i);
	event_loop(g, g->count ? UINT64_MAX : g->deadline + DRAIN_NS);
	end = now_ns();
	secs = (double)(end - start) / NS;
	printf("conns=%" PRIu64 " secs=%.3f cps=%.0f", g->ok, secs,
	    secs > 0 ? (double)g->ok / secs : 0);
	report_latency(g);
	printf(" errors=%" PRIu64 " wrong=%" PRIu64 "\n", errors(g), g->wrong);
	report_errors(g);
}

/* Wait -w seconds, or less if SIGUSR1 arrives (it is blocked in main). */
static void
hold_wait(double secs)
{
	struct timespec	 ts;
	sigset_t	 set;

	if (secs <= 0)
		return;
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	while (sigtimedwait(&set, NULL, &ts) == -1 && errno == EINTR)
		;
}

/* Send the line on every held connection at once. */
static void
hold_ask_all(struct gen *g)
{
	struct conn	*c;
	uint64_t	 now = now_ns();
	int		 i;

	for (i = 0; i < g->nconns; i++) {
		c = &g->conns[i];
		if (c->state != S_HELD)
			continue;
		c->t0 = now;
		c->off = 0;
		g->active++;
		conn_send(g, i);
	}
}

/* -H: open N connections, hold them, then ask on all and verify. */
static void
run_hold(struct gen *g)
{
	uint64_t	 t0, t1, t2;
	int		 i;

	t0 = now_ns();
	for (i = 0; i < g->nconns; i++)
		conn_open(g, i);
	event_loop(g, t0 + HOLD_NS);
	t1 = now_ns();
	fprintf(stderr, "loadgen: holding %" PRIu64 " connections, "
	    "%" PRIu64 " failed, after %.3f s\n", g->held, errors(g),
	    (double)(t1 - t0) / NS);
	fflush(stderr);
	hold_wait(g->wait);
	t1 = now_ns();
	hold_ask_all(g);
	event_loop(g, t1 + HOLD_NS);
	t2 = now_ns();
	printf("held=%d connected=%" PRIu64 " ok=%" PRIu64 " errors=%" PRIu64
	    " wrong=%" PRIu64 " answer_secs=%.3f", g->nconns, g->held,
	    g->ok, errors(g), g->wrong, (double)(t2 - t1) / NS);
	report_latency(g);
	printf("\n");
	report_errors(g);
}

/* Print usage and exit. */
static void
usage(void)
{
	fprintf(stderr, "usage: loadgen [-6] [-c concurrency] "
	    "[-d seconds | -n count] [-l line] [-S sources] host port\n"
	    "       loadgen [-6] -H connections [-w seconds] [-l line] "
	    "[-S sources] host port\n");
	exit(1);
}

/* Parse the options, set up the slots and epoll, and run. */
int
main(int argc, char *argv[])
{
	struct gen	 g;
	sigset_t	 set;
	int		 i, status;

	memset(&g, 0, sizeof(g));
	parse_args(&g, argc, argv);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		err(1, "sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	raise_nofile((rlim_t)g.nconns);
	if ((g.conns = calloc((size_t)g.nconns, sizeof(*g.conns))) == NULL)
		err(1, "calloc");
	for (i = 0; i < g.nconns; i++)
		g.conns[i].fd = -1;
	if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");
	if (g.hold)
		run_hold(&g);
	else
		run_load(&g);
	status = (errors(&g) == 0 && g.wrong == 0) ? 0 : 2;
	close(g.ep);
	free(g.conns);
	free(g.lat);
	free(g.line);
	free(g.expect);
	return status;
}
