/*
 * child.c: the life of a child, from fork to _exit: shed what it inherited
 * from the parent, name itself after its client, log the classic
 * "Connection from" line, sandbox itself, serve, log the end record.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

static const char *const outcome_names[OUTCOME_MAX] = {
	"ok", "eof", "timeout", "too-long", "error", "refused", "denied",
	"proxy"
};

/* The name of an outcome for the logs. */
const char *
child_outcome_name(enum outcome o)
{
	return o < OUTCOME_MAX ? outcome_names[o] : "unknown";
}

/*
 * Close every descriptor but stdio and those in keep (the client, the log
 * socket, the socket to the parent behind a balancer, the resolver's; -1
 * for none).  -1 when the kernel cannot (close_range(2) is Linux 5.9): a
 * child must not serve with the parent's descriptors.
 */
static int
close_inherited(int keep0, int keep1, int keep2, int keep3)
{
	int	 keep[4] = { keep0, keep1, keep2, keep3 };

	return fds_close_except(keep, 4);
}

/*
 * What children ignore: reload and stats signals (pkill -HUP must not kill
 * them), and SIGINT: a ^C on the terminal reaches the parent, which drains
 * children with grace.  Set once in the parent, which keeps these signals
 * blocked for its signalfd (the kernel never discards a blocked signal, so
 * ignoring them costs the parent nothing), and inherited by every fork: a
 * child that made these calls itself would touch three more pages of libc.
 */
static sigset_t	 child_mask;	/* empty: a child blocks nothing */

void
child_signals_ignore(void)
{
	sigemptyset(&child_mask);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
}

/*
 * Undo the parent's signal mask: all unblocked.  The empty set was made by
 * the parent: reading its memory is free, calling sigemptyset() is not
 * (glibc's sigprocmask() is a wrapper on another page around this call).
 */
static void
reset_signals(void)
{
	pthread_sigmask(SIG_SETMASK, &child_mask, NULL);
}

/*
 * The client's name for the log: from the parent's memory, else asked of
 * the resolver process (names.c) on the socketpair sv made before the
 * filter (NULL: nothing to ask), at most NAMES_WAIT_MS and inside the
 * client's timeout; else the address.  A PTR name that does not map back
 * to the address is not used; with -v one line says so, and one that the
 * name came from the parent's memory.  The resolver's socket is closed
 * before the client's line is read.
 */
static void
client_name(const struct child_ctx *cx, const struct sockaddr_storage *peer,
    const char *ip, int *sv, char *name, size_t len)
{
	struct names_answer	 got;
	const struct names_answer *a = cx->name;
	int64_t			 deadline;

	strlcpy(name, ip, len);
	if (sv != NULL) {
		deadline = cx->start + cx->conf->timeout * 1000LL;
		if (clock_ms() + NAMES_WAIT_MS < deadline)
			deadline = clock_ms() + NAMES_WAIT_MS;
		if (names_ask(cx->namefd, sv, peer, cx->nocache, deadline,
		    &got) == 0)
			a = &got;
	}
	if (cx->namefd != -1)
		close(cx->namefd);
	if (a == NULL)
		return;
	if (cx->remembered)
		log_debug("name of %s from the cache", ip);
	if (a->status == NAME_CONFIRMED)
		strlcpy(name, a->name, len);
	else if (a->status == NAME_UNCONFIRMED)
		log_debug("client %s: name %s does not map back to it", ip,
		    a->name);
}

/*
 * Behind a balancer: read the PROXY header and ask the parent whether to
 * serve the real client, whose address is put in *real.  Returns only to
 * serve; a refusal ends here as the parent's own refusals do (the parent
 * logged and counted it): an "Error: " line, or silence when denied.
 */
static void
child_handoff(const struct child_ctx *cx, struct sockaddr_storage *real)
{
	const char *ip = cx->ip, *line;
	int	 v;

	setproctitle("proxy %s port %d", ip, addr_port(cx->peer));
	v = handoff_child(cx->fd, cx->ctl, cx->peer,
	    cx->start + cx->conf->timeout * 1000LL, real);
	close(cx->ctl);
	if (v == VERDICT_SERVE)
		return;
	if (v > 0 && (line = verdict_line(v)) != NULL)
		(void)send(cx->fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	else if (v == 0)
		log_warnx("client %s port %d: no answer from the parent",
		    ip, addr_port(cx->peer));
	session_linger(cx->fd);
	_exit(v == -1 ? OUTCOME_PROXY : v == VERDICT_DENY ? OUTCOME_DENIED :
	    v == 0 ? OUTCOME_ERROR : OUTCOME_REFUSED);
}

/*
 * What a child starts from, the same for a forked child and for inetd mode:
 * the client on fd at peer (ip, its numeric address), the configuration, the
 * line buffer, and when it was accepted; no report socket and no name yet.
 */
void
child_ctx_init(struct child_ctx *cx, int fd, const struct sockaddr_storage *peer,
    const char *ip, const struct conf *conf, char *buf, int64_t start)
{
	*cx = (struct child_ctx){ .fd = fd, .peer = peer, .ip = ip,
	    .conf = conf, .buf = buf, .start = start, .ctl = -1, .name = NULL,
	    .namefd = -1, .nocache = 0, .remembered = 0 };
}

/* Serve the client of cx and exit with the outcome as status. */
void
child_main(const struct child_ctx *cx)
{
	struct session_result	 res;
	struct sockaddr_storage	 real;
	const struct sockaddr_storage *peer = cx->peer;
	const char		*ip = cx->ip;
	char			 realip[INET6_ADDRSTRLEN];
	char			 name[NAME_LOG_MAX], esc[NAME_LOG_MAX];
	int			 port, sv[2], *ask = NULL;
	pid_t			 self;
	int64_t			 end;

	self = getpid();
	reset_signals();
	if (close_inherited(cx->fd, log_fd(), cx->ctl, cx->namefd) == -1) {
		log_warn("close_range");
		_exit(OUTCOME_ERROR);
	}
	alarm(cx->conf->timeout + SE_WATCHDOG_SLACK);
	/* Sandboxed before reading a byte.  Asking the resolver takes a
	 * socketpair, which the child's own filter forbids: it is made first,
	 * and the question is sent on the resolver's socket, the one the
	 * filter allows sendmsg(2) on. */
	if (cx->namefd != -1 && cx->name == NULL && names_open(sv) == 0)
		ask = sv;
	if (sandbox_enter() == -1)
		_exit(OUTCOME_ERROR);
	if (cx->ctl != -1) {
		child_handoff(cx, &real);
		peer = &real;
		ip = addr_ntop(peer, realip, sizeof(realip));
	}
	port = addr_port(peer);
	setproctitle("client %s port %d", ip, port);
	client_name(cx, peer, ip, ask, name, sizeof(name));
	if (cx->conf->log_clients == LOG_CLIENTS_ALL)
		log_info("Connection from %s [%s] %d", name, ip, port);
	session_run(cx->fd, cx->buf, cx->conf->max_line,
	    cx->start + cx->conf->timeout * 1000LL, &res);
	end = clock_ms();
	if (res.line_len > 0 && log_getverbose() > 0) {
		log_escape(esc, sizeof(esc), cx->buf + SE_REPLY_PREFIX_LEN,
		    res.line_len);
		log_debug("client %s port %d sent \"%s\"", ip, port, esc);
	}
	if (cx->conf->log_clients == LOG_CLIENTS_PROBLEMS &&
	    (res.outcome == OUTCOME_OK || res.outcome == OUTCOME_EOF))
		_exit(res.outcome);
	log_info("end client=%s port=%d pid=%ld outcome=%s in=%zu out=%zu "
	    "duration=%lld.%03lld", ip, port, (long)self,
	    child_outcome_name(res.outcome), res.bytes_in, res.bytes_out,
	    (long long)(end - cx->start) / 1000,
	    (long long)(end - cx->start) % 1000);
	_exit(res.outcome);
}
