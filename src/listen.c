/*
 * listen.c: the listening sockets: opened from the configuration, or taken
 * from systemd socket activation (LISTEN_PID/LISTEN_FDS, sd_listen_fds(3)).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

#define SD_LISTEN_FDS_START	3
#define SD_AGENT_MAX		8

/* One clear message for a failed bind, with a hint for the usual causes. */
static void
bind_error(const char *addr, int port)
{
	const char	*hint = "";

	if (errno == EACCES && port < 1024)
		hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
	else if (errno == EADDRNOTAVAIL)
		hint = " (no interface has this address)";
	log_warnx("bind %s port %d: %s%s", addr, port, strerror(errno), hint);
}

/* Open, bind and listen on one address; -1 on error (logged), -2 if the family is missing. */
static int
listen_one(const struct conf *c, const char *addr, int optional)
{
	struct addrinfo	 hints, *ai;
	char		 port[8];
	int		 fd, on = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", c->port);
	if ((e = getaddrinfo(addr, port, &hints, &ai)) != 0) {
		log_warnx("listen %s: %s", addr, gai_strerror(e));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		e = errno;
		freeaddrinfo(ai);
		errno = e;
		if (optional && (e == EAFNOSUPPORT || e == EPROTONOSUPPORT))
			return -2;
		log_warn("socket for %s", addr);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (c->reuse_port &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
		log_warn("setsockopt SO_REUSEPORT on %s", addr);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		e = errno;
		freeaddrinfo(ai);
		close(fd);
		errno = e;
		if (optional && e == EADDRNOTAVAIL)
			return -2;	/* IPv6 disabled on this host */
		bind_error(addr, c->port);
		return -1;
	}
	freeaddrinfo(ai);
	if (listen(fd, c->backlog) == -1) {
		log_warn("listen %s port %d", addr, c->port);
		close(fd);
		return -1;
	}
	log_info("listening on %s port %d", addr, c->port);
	return fd;
}

/* Open the listeners for one listen value; "*" is both families (IPv6 optional). */
static int
listen_value(const struct conf *c, const char *value, int *fds, int n, int max)
{
	static const char	*all[] = { "::", "0.0.0.0" };
	int			 i, fd;

	if (strcmp(value, "*") != 0) {
		if (n == max || (fd = listen_one(c, value, 0)) == -1)
			return -1;
		fds[n++] = fd;
		return n;
	}
	for (i = 0; i < 2; i++) {
		if (n == max || (fd = listen_one(c, all[i], i == 0)) == -1)
			return -1;
		if (fd != -2)
			fds[n++] = fd;
	}
	return n;
}

/*
 * Open every configured listener into fds (room for max); with no listen
 * keyword, all addresses.  Returns the count, or -1 with everything closed.
 */
int
listen_open(const struct conf *c, int *fds, int max)
{
	int	 i, n = 0, m;

	if (c->nlisten == 0)
		return listen_value(c, "*", fds, 0, max);
	for (i = 0; i < c->nlisten; i++) {
		if ((m = listen_value(c, c->listen[i], fds, n, max)) == -1) {
			listen_close(fds, n);
			return -1;
		}
		n = m;
	}
	return n;
}

/* Check one inherited descriptor: a listening stream socket; make it ours. */
static int
inherited_ok(int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 type, listening;
	socklen_t		 olen = sizeof(int);
	char			 a[INET6_ADDRSTRLEN];

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen) == -1 ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) == -1 ||
	    !listening || getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		log_warnx("socket activation: descriptor %d is not a listening "
		    "TCP socket", fd);
		return -1;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		log_warn("socket activation: descriptor %d", fd);
		return -1;
	}
	log_info("listening on %s port %d (socket activation)",
	    addr_ntop(&ss, a, sizeof(a)), addr_port(&ss));
	return 0;
}

/* The agent's sockets systemd passed, kept apart by listen_inherited(). */
static int	 agent_inherited[SD_AGENT_MAX];
static int	 agent_ninherited;

/*
 * Is the i-th of the names in LISTEN_FDNAMES (colon-separated, as
 * sd_listen_fds_with_names(3) reads them) "agent"?
 */
static int
named_agent(const char *names, int i)
{
	const char	*p = names, *end;

	if (p == NULL)
		return 0;
	while (i-- > 0)
		if ((p = strchr(p, ':')) == NULL)
			return 0;
		else
			p++;
	end = strchrnul(p, ':');
	return end - p == 5 && strncmp(p, "agent", 5) == 0;
}

/*
 * Take the sockets systemd passed, if LISTEN_PID is us.  Returns how many (0:
 * not socket-activated), or -1 on a bad handover.  A socket named "agent"
 * in LISTEN_FDNAMES is HAProxy's agent's (listen_inherited_agent), not a
 * listener.  The variables are removed so that children do not see them.
 */
int
listen_inherited(int *fds, int max)
{
	const char	*pid, *nfds, *errstr, *names;
	int		 n, i, k = 0;

	pid = getenv("LISTEN_PID");
	nfds = getenv("LISTEN_FDS");
	if (pid == NULL || nfds == NULL)
		return 0;
	if (strtonum(pid, 1, INT32_MAX, &errstr) != getpid() || errstr != NULL)
		return 0;
	n = strtonum(nfds, 1, max, &errstr);
	if (errstr != NULL) {
		log_warnx("socket activation: LISTEN_FDS=%.16s is %s", nfds, errstr);
		return -1;
	}
	names = getenv("LISTEN_FDNAMES");
	for (i = 0; i < n; i++) {
		if (inherited_ok(SD_LISTEN_FDS_START + i) == -1)
			return -1;
		if (named_agent(names, i) && agent_ninherited < SD_AGENT_MAX)
			agent_inherited[agent_ninherited++] =
			    SD_LISTEN_FDS_START + i;
		else
			fds[k++] = SD_LISTEN_FDS_START + i;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (k == 0) {
		log_warnx("socket activation: no socket but the agent's");
		return -1;
	}
	return k;
}

/* The agent's sockets listen_inherited() took, into fds (room for max). */
int
listen_inherited_agent(int *fds, int max)
{
	int	 i;

	for (i = 0; i < agent_ninherited && i < max; i++)
		fds[i] = agent_inherited[i];
	return i;
}

/*
 * defer-accept: TCP_DEFER_ACCEPT on each listener, its own or systemd's, so
 * that a connection is queued for accept(2) only once it has sent data (or
 * after about secs seconds): a client that never speaks costs no child.
 * 0 turns it off.  A failure is logged and the socket serves as it was.
 */
void
listen_defer(const int *fds, int n, int secs)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (fds[i] != -1 && setsockopt(fds[i], IPPROTO_TCP,
		    TCP_DEFER_ACCEPT, &secs, sizeof(secs)) == -1)
			log_warn("setsockopt TCP_DEFER_ACCEPT on descriptor %d",
			    fds[i]);
}

/* Close n listeners. */
void
listen_close(int *fds, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (fds[i] != -1) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* How many descriptors socket activation passes, for closefrom() (0 if none). */
int
listen_inherited_count(void)
{
	const char	*pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
	const char	*errstr;
	int		 n;

	if (pid == NULL || nfds == NULL ||
	    strtonum(pid, 1, INT32_MAX, &errstr) != getpid())
		return 0;
	n = strtonum(nfds, 1, 1024, &errstr);
	return errstr == NULL ? n : 0;
}

/*
 * The clients waiting in the accept queues of n listeners right now: for a
 * listening socket, TCP_INFO's tcpi_unacked is the accept queue's current
 * length (and tcpi_sacked its limit, the backlog).
 */
unsigned long
listen_queued(const int *fds, int n)
{
	struct tcp_info	 ti;
	socklen_t	 len;
	unsigned long	 sum = 0;
	int		 i;

	for (i = 0; i < n; i++) {
		len = sizeof(ti);
		if (fds[i] != -1 && getsockopt(fds[i], IPPROTO_TCP, TCP_INFO,
		    &ti, &len) == 0)
			sum += ti.tcpi_unacked;
	}
	return sum;
}
