/*
 * server.c: the parent's loop: wait, accept, fork, reap (admit.c decides
 * about each client).
 *
 * Signals are blocked for good and read from a signalfd that sits in the
 * poll set beside the listeners.  So no signal is ever lost between a check
 * and the wait, and none can starve: a ppoll() whose descriptors are already
 * ready returns without delivering pending signals, but a signalfd is just
 * one more ready descriptor, handled in the same pass as the others.
 */
#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "server.h"

#define PAUSE_MIN_MS	100	/* accepting paused after a resource error */
#define PAUSE_MAX_MS	1000
#define ACCEPT_BATCH	32	/* accepts per listener per wakeup */
#define KILL_AFTER_MS	2000	/* SIGKILL stragglers this long after SIGTERM */

/*
 * The big tables live apart in static storage (resident only once used):
 * after each fork every page the parent writes costs it a copy, so struct
 * server, written per client, stays small and on the loop's stack page.
 */
static struct lingers	 lingering;
static struct penalty	 penalties;

/* Block the handled signals and open the signalfd that reports them. */
static int
signals_setup(struct server *s)
{
	sigset_t	 set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		log_warn("signalfd");
		return -1;
	}
	child_signals_ignore();		/* blocked first: none is lost */
	return 0;
}

/* Stop accepting for a while after a resource error, backing off. */
static void
pause_accepting(struct server *s, int64_t now)
{
	s->pause_ms = s->pause_ms == 0 ? PAUSE_MIN_MS :
	    s->pause_ms * 2 > PAUSE_MAX_MS ? PAUSE_MAX_MS : s->pause_ms * 2;
	s->paused_until = now + s->pause_ms;
}

/* Account for one dead child. */
static void
child_died(struct server *s, const struct child *c, int status, int64_t now)
{
	unsigned long	 held;
	int		 sig, code;

	if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
		/* Refused behind a balancer: counted when the parent decided. */
		if (c->ctl == -2 && (code == OUTCOME_REFUSED ||
		    code == OUTCOME_DENIED || code == OUTCOME_PROXY))
			return;
		s->st.outcome[code < OUTCOME_MAX ? code : OUTCOME_ERROR]++;
		return;
	}
	sig = WTERMSIG(status);
	if (sig == SIGALRM) {		/* its watchdog: the deadline passed */
		s->st.outcome[OUTCOME_TIMEOUT]++;
		log_info("child %ld (client %s) stopped by its watchdog",
		    (long)c->pid, c->ip);
		return;
	}
	if (c->signalled) {
		s->st.outcome[OUTCOME_ERROR]++;
		return;
	}
	s->st.crashed++;
	if (s->conf->crash_penalty > 0 && c->source.family != AF_UNSPEC)
		penalty_add(s->pen, &c->source, now + s->conf->crash_penalty * 1000LL);
	if (!ratelimit_allow(&s->rl_crash, now, &held))
		return;
	if (s->conf->crash_penalty > 0 && c->source.family != AF_UNSPEC)
		log_warnx("child %ld (client %s) killed by signal SIG%s, refusing "
		    "%s for %d s%s", (long)c->pid, c->ip, sigabbrev_np(sig), c->ip,
		    s->conf->crash_penalty, held ? " (more crashes not logged)" : "");
	else
		log_warnx("child %ld (client %s) killed by signal SIG%s%s",
		    (long)c->pid, c->ip, sigabbrev_np(sig),
		    held ? " (more crashes not logged)" : "");
}

/* Reap every child that has exited: a waitpid(WNOHANG) loop, no zombies. */
void
server_reap(struct server *s, int64_t now)
{
	struct child	 c;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (children_remove(&s->kids, pid, &c) == 0) {
			if (c.ctl >= 0)
				admit_report_dead(s, &c, now);
			child_died(s, &c, status, now);
		}
}

/* Is the child limit reached (after reaping, so the count is exact)? */
static int
at_child_limit(struct server *s, int64_t now)
{
	if (s->kids.n < (size_t)s->conf->max_children)
		return 0;
	server_reap(s, now);
	return s->kids.n >= (size_t)s->conf->max_children;
}

/*
 * The client's name, when the parent remembers it (resolve-cache); else the
 * child looks it up and reports it on the name socket.  Behind a balancer
 * the real client is known only to the child: it looks up and keeps quiet.
 */
static void
spawn_name(struct server *s, struct child_ctx *cx, int proxy, int64_t now)
{
	cx->name = NULL;
	cx->namefd = -1;
	if (!s->conf->resolve || proxy || s->conf->resolve_cache == 0)
		return;
	if ((cx->name = namecache_get(cx->ip, now)) == NULL)
		cx->namefd = namecache_child_fd();
}

/*
 * Fork a child for the client; the parent keeps only the record.  Behind a
 * balancer (proxy) the child gets one end of a socketpair for its report,
 * and counts for no source until it has told the real one.
 */
void
server_spawn(struct server *s, int fd, const struct sockaddr_storage *ss,
    const struct addrmask *src, int proxy, int64_t now)
{
	struct child_ctx	 cx = { fd, ss, NULL, s->conf, s->buf, now, -1,
				    NULL, -1 };
	struct child		*kid;
	char			 ip[INET6_ADDRSTRLEN];
	int			 sv[2] = { -1, -1 };
	pid_t			 pid = -1;

	cx.ip = addr_ntop(ss, ip, sizeof(ip));	/* once, for both sides */
	spawn_name(s, &cx, proxy, now);

	if (!proxy || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0, sv) == 0) {
		cx.ctl = sv[1];
		if ((pid = fork()) == 0)
			child_main(&cx);
	}
	if (sv[1] != -1)
		close(sv[1]);
	if (pid == -1) {
		log_repeated(&s->rl_fork, now, proxy ? "fork or socketpair" :
		    "fork");
		if (sv[0] != -1)
			close(sv[0]);
		s->st.refused_busy++;
		admit_refuse(s, fd, ss, SE_ERR_BUSY, "busy", now);
		pause_accepting(s, now);
		return;
	}
	s->pause_ms = 0;
	close(fd);
	if ((kid = children_add(&s->kids, pid, src, ip, now)) == NULL) {
		children_kill(pid, SIGKILL);	/* untracked: must not serve */
		if (sv[0] != -1)
			close(sv[0]);
		return;
	}
	kid->ctl = sv[0];
	kid->naming = cx.namefd != -1;
}

/*
 * Out of descriptors: give up the reserve one to accept and refuse a client
 * (so the backlog moves), then pause accepting until descriptors free up.
 */
static void
out_of_descriptors(struct server *s, int lfd, int64_t now)
{
	int		 fd;

	log_repeated(&s->rl_accept, now, "accept");
	if (s->reservefd != -1) {
		close(s->reservefd);
		s->reservefd = -1;	/* made again when descriptors free up */
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) != -1) {
			(void)send(fd, SE_ERR_BUSY, strlen(SE_ERR_BUSY),
			    MSG_DONTWAIT | MSG_NOSIGNAL);
			linger_start(s->lingers, fd, now);
			s->st.refused_busy++;
		}
	}
	pause_accepting(s, now);
}

/* Errors accept() reports for one client's connection, not for the server. */
static int
accept_error_transient(int e)
{
	switch (e) {
	case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
	case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP:
	case ENETUNREACH: case EPERM: case ETIMEDOUT: case EINTR:
		return 1;
	}
	return 0;
}

/* Accept what is waiting on one listener, within the limits. */
static void
accept_some(struct server *s, int lfd, int64_t now)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 i, fd;

	for (i = 0; i < ACCEPT_BATCH && !at_child_limit(s, now); i++) {
		len = sizeof(ss);
		if ((fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC)) != -1) {
			admit_client(s, fd, &ss, now);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (accept_error_transient(errno))
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			out_of_descriptors(s, lfd, now);
			return;
		}
		log_repeated(&s->rl_accept, now, "accept");
		pause_accepting(s, now);
		return;
	}
}

/* Close the listeners and give children grace seconds to finish. */
static void
begin_shutdown(struct server *s, int sig, int64_t now)
{
	if (s->stopping)
		return;
	log_info("received SIG%s, shutting down", sigabbrev_np(sig));
	notify_send("STOPPING=1");
	listen_close(s->ctx->lfd, s->ctx->nlfd);
	s->stopping = 1;
	s->stop_deadline = now + s->conf->grace * 1000LL;
}

/* Past the grace period: terminate children, then kill stragglers. */
static void
shutdown_step(struct server *s, int64_t now)
{
	if (now < s->stop_deadline || s->kids.n == 0)
		return;
	if (!s->terminated) {
		log_info("grace period over, stopping %zu children", s->kids.n);
		children_signal_all(&s->kids, SIGTERM);
		s->terminated = 1;
		s->stop_deadline = now + KILL_AFTER_MS;
	} else {
		children_signal_all(&s->kids, SIGKILL);
		s->stop_deadline = now + KILL_AFTER_MS;
	}
}

/* Read and act on every pending signal. */
static void
handle_signals(struct server *s, int64_t now)
{
	struct signalfd_siginfo	 si;
	int			 hup = 0, usr1 = 0, stop = 0;

	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			hup = 1;
			break;
		case SIGUSR1:
			usr1 = 1;
			break;
		case SIGTERM:
		case SIGINT:
			stop = si.ssi_signo;
			break;
		}
	}
	server_reap(s, now);		/* first, so that counts are exact */
	if (hup) {
		control_reload(s->ctx, &s->buf);
		namecache_clear(&s->kids);
	}
	if (usr1)
		control_stats(&s->st, s->kids.n);
	if (stop)
		begin_shutdown(s, stop, now);
}

/* The poll timeout: the nearest of pause end, linger and shutdown deadlines. */
static int
poll_timeout(const struct server *s, int64_t now)
{
	int64_t	 t = linger_next_deadline(s->lingers), d;

	if (s->paused_until > now && (t == -1 || s->paused_until < t))
		t = s->paused_until;
	if (s->stopping && s->kids.n > 0 && (t == -1 || s->stop_deadline < t))
		t = s->stop_deadline;
	if (t == -1)
		return -1;
	d = t - now;
	return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

/*
 * Make room in the poll set for signals, listeners, lingering clients,
 * every child's report socket and the name socket.
 */
static void
poll_grow(struct server *s)
{
	size_t	 need = 2 + s->ctx->nlfd + sizeof(s->lingers->v) /
	    sizeof(s->lingers->v[0]) + s->kids.n;
	void	*p, *q;

	if (need <= s->pfdcap)
		return;
	need += need / 2;
	if ((p = reallocarray(s->pfd, need, sizeof(*s->pfd))) == NULL)
		fatal("poll set");
	s->pfd = p;
	if ((q = reallocarray(s->ctlpid, need, sizeof(*s->ctlpid))) == NULL)
		fatal("poll set");
	s->ctlpid = q;
	s->pfdcap = need;
}

/* Add the report sockets of children behind a balancer; how many. */
static size_t
poll_ctl(struct server *s, struct pollfd *pfd, pid_t *pids)
{
	size_t	 i, n = 0;

	for (i = 0; i < s->kids.n; i++) {
		if (s->kids.v[i].ctl < 0)
			continue;
		pfd[n].fd = s->kids.v[i].ctl;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		pids[n++] = s->kids.v[i].pid;
	}
	return n;
}

/* Build the poll set: signals, listeners (when accepting), lingering clients. */
static size_t
poll_set(struct server *s, struct pollfd *pfd, int64_t now)
{
	int	 i, accepting;

	accepting = !s->stopping && now >= s->paused_until &&
	    !at_child_limit(s, now);
	pfd[0].fd = s->sigfd;
	pfd[0].events = POLLIN;
	for (i = 0; i < s->ctx->nlfd; i++) {
		pfd[1 + i].fd = accepting ? s->ctx->lfd[i] : -1;
		pfd[1 + i].events = POLLIN;
		pfd[1 + i].revents = 0;
	}
	return linger_pollfds(s->lingers, pfd + 1 + s->ctx->nlfd);
}

/*
 * One pass: wait, then handle children's reports (before reaping, so that a
 * child's last report is read before its exit is counted), signals,
 * lingering clients, new clients.
 */
static void
server_pass(struct server *s)
{
	struct pollfd	*pfd;
	int64_t		 now = clock_ms();
	size_t		 nl, nc, k, base;
	int		 i, n;

	poll_grow(s);
	pfd = s->pfd;
	nl = poll_set(s, pfd, now);
	base = 1 + s->ctx->nlfd + nl;
	nc = poll_ctl(s, pfd + base, s->ctlpid);
	pfd[base + nc].fd = namecache_fd();
	pfd[base + nc].events = POLLIN;
	pfd[base + nc].revents = 0;
	n = poll(pfd, base + nc + 1, poll_timeout(s, now));
	if (n == -1 && errno != EINTR)
		fatal("poll");
	now = clock_ms();
	if (s->reservefd == -1 && now >= s->paused_until)
		s->reservefd = eventfd(0, EFD_CLOEXEC);
	for (k = 0; n > 0 && k < nc; k++)
		if (pfd[base + k].revents)
			admit_report(s, s->ctlpid[k], now);
	if (n > 0 && pfd[base + nc].revents)
		namecache_read(&s->kids, s->conf->resolve_cache, now);
	if (n > 0 && pfd[0].revents)
		handle_signals(s, now);
	linger_service(s->lingers, pfd + 1 + s->ctx->nlfd, nl, now);
	for (i = 0; n > 0 && i < s->ctx->nlfd; i++)
		if (pfd[1 + i].revents && !s->stopping)
			accept_some(s, s->ctx->lfd[i], now);
	if (s->stopping)
		shutdown_step(s, now);
}

/* Run until SIGTERM or SIGINT and every child is gone. */
int
server_run(struct server_ctx *ctx)
{
	struct server	 s;

	memset(&s, 0, sizeof(s));
	s.lingers = &lingering;
	s.pen = &penalties;
	s.ctx = ctx;
	s.conf = ctx->conf;
	if (signals_setup(&s) == -1)
		return -1;
	if ((s.reservefd = eventfd(0, EFD_CLOEXEC)) == -1 ||
	    (s.buf = malloc(session_bufsize(s.conf->max_line))) == NULL) {
		log_warn("server setup");
		return -1;
	}
	if (namecache_open() == -1)
		return -1;
	while (!s.stopping || s.kids.n > 0)
		server_pass(&s);
	linger_close_all(s.lingers);
	log_info("exiting");
	free(s.pfd);
	free(s.ctlpid);
	free(s.buf);
	children_free(&s.kids);
	close(s.reservefd);
	close(s.sigfd);
	namecache_close();
	return 0;
}
