/*
 * child.c: the life of a child, from fork to _exit: shed what it inherited
 * from the parent, name itself after its client, log the classic
 * "Connection from" line, sandbox itself, serve, log the end record.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

#define WATCHDOG_SLACK	2	/* seconds past timeout before SIGALRM kills */

static const char *const outcome_names[OUTCOME_MAX] = {
	"ok", "eof", "timeout", "too-long", "error", "refused", "denied"
};

/* The name of an outcome for the logs. */
const char *
child_outcome_name(enum outcome o)
{
	return o < OUTCOME_MAX ? outcome_names[o] : "unknown";
}

/* Close every descriptor but stdio, the client and the log socket. */
static void
close_inherited(int keep1, int keep2)
{
	int	 lo = keep1 < keep2 ? keep1 : keep2;
	int	 hi = keep1 < keep2 ? keep2 : keep1;

	if (lo < 3)		/* stdio is always kept */
		lo = hi;
	if (hi < 3)
		hi = lo = 2;
	if (lo > 3)
		close_range(3, lo - 1, 0);
	if (hi > lo + 1)
		close_range(lo + 1, hi - 1, 0);
	close_range(hi + 1, ~0U, 0);
}

/*
 * Undo the parent's signal setup: all unblocked.  Reload and stats signals
 * are ignored (pkill -HUP must not kill children), and so is SIGINT: a ^C
 * on the terminal reaches the parent, which drains children with grace.
 */
static void
reset_signals(void)
{
	sigset_t	 none;

	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The client's name for the log: reverse DNS when asked, else the address. */
static void
client_name(const struct child_ctx *cx, const char *ip, char *name, size_t len)
{
	char	 host[NI_MAXHOST];

	if (cx->conf->resolve && getnameinfo((const struct sockaddr *)cx->peer,
	    cx->peer->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6), host, sizeof(host), NULL, 0,
	    NI_NAMEREQD) == 0)
		log_escape(name, len, host, strlen(host));
	else
		strlcpy(name, ip, len);
}

/* Serve the client of cx and exit with the outcome as status. */
void
child_main(const struct child_ctx *cx)
{
	struct session_result	 res;
	char			 ip[INET6_ADDRSTRLEN];
	char			 name[64 * 4 + 8], esc[64 * 4 + 8];	/* log_escape */
	int			 port = addr_port(cx->peer);
	pid_t			 self;
	int64_t			 end;

	self = log_postfork();
	reset_signals();
	close_inherited(cx->fd, log_fd());
	alarm(cx->conf->timeout + WATCHDOG_SLACK);
	addr_ntop(cx->peer, ip, sizeof(ip));
	setproctitle("client %s port %d", ip, port);
	client_name(cx, ip, name, sizeof(name));
	log_info("Connection from %s [%s] %d", name, ip, port);
	if (sandbox_enter() == -1)
		_exit(OUTCOME_ERROR);
	session_run(cx->fd, cx->buf, cx->conf->max_line,
	    cx->start + cx->conf->timeout * 1000LL, &res);
	end = clock_ms();
	if (res.line_len > 0 && log_getverbose() > 0) {
		log_escape(esc, sizeof(esc), cx->buf + SE_REPLY_PREFIX_LEN,
		    res.line_len);
		log_debug("client %s port %d sent \"%s\"", ip, port, esc);
	}
	log_info("end client=%s port=%d pid=%ld outcome=%s in=%zu out=%zu "
	    "duration=%lld.%03lld", ip, port, (long)self,
	    child_outcome_name(res.outcome), res.bytes_in, res.bytes_out,
	    (long long)(end - cx->start) / 1000,
	    (long long)(end - cx->start) % 1000);
	_exit(res.outcome);
}
