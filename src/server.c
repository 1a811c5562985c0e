/*
 * server.c: the parent's loop: wait for events, accept, and hand each client
 * and each child's end to clients.c.
 *
 * One epoll set holds everything the parent waits for: a signalfd (signals
 * are blocked for good, so none is lost between a check and the wait, and
 * none can starve: it is one more ready descriptor), the listeners, the
 * report sockets of children behind a balancer, and the lingering
 * connections.  Each child's exit comes as its own queued signal naming its
 * pid (clients.c), so it is reaped by waitid(P_PID) and never by a
 * waitpid(-1) that walks every child.  epoll_wait() returns only what is
 * ready, so a pass costs the events it handles, not the children alive.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

#define ACCEPT_BATCH	32	/* accepts per listener per wakeup */
#define EVENT_BATCH	256	/* events per epoll_wait */
#define KILL_AFTER_MS	2000	/* SIGKILL stragglers this long after SIGTERM */
#define STATUS_EVERY_MS	1000	/* STATUS= at most this often */

/*
 * The lingering table lives apart in static storage (resident only once
 * used): after each fork every page the parent writes costs it a copy, so
 * struct server, written per client, stays small.
 */
static struct lingers	 lingering;

/*
 * Block the handled signals, for good, and open a signalfd that says when
 * one is pending; they are taken with sigtimedwait(), which gives each exit
 * signal's pid.  SIGCHLD comes from processes forked with fork(2): the
 * resolver, and under valgrind every child.
 */
static int
signals_setup(struct server *s)
{
	sigemptyset(&s->sigs);
	sigaddset(&s->sigs, SE_EXIT_SIGNAL);
	sigaddset(&s->sigs, SIGCHLD);
	sigaddset(&s->sigs, SIGTERM);
	sigaddset(&s->sigs, SIGINT);
	sigaddset(&s->sigs, SIGHUP);
	sigaddset(&s->sigs, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &s->sigs, NULL) == -1 ||
	    (s->sigfd = signalfd(-1, &s->sigs, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		log_warn("signalfd");
		return -1;
	}
	child_signals_ignore();		/* blocked first: none is lost */
	return 0;
}

/* Listen for new clients or stop: the listeners stay in the set, with
 * their events switched on or off only when that changes. */
static void
set_accepting(struct server *s, int on)
{
	struct epoll_event	 ev;
	int			 i;

	if (s->accepting == on)
		return;
	for (i = 0; i < s->ctx->nlfd; i++) {
		if (s->ctx->lfd[i] == -1)
			continue;
		ev.events = on ? EPOLLIN : 0;
		ev.data.u64 = EV_LISTEN | (uint32_t)i;
		(void)epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->ctx->lfd[i], &ev);
	}
	s->accepting = on;
}

/* Should the listeners be watched now? */
static int
want_accepting(struct server *s, int64_t now)
{
	return !s->stopping && now >= s->paused_until &&
	    !clients_at_limit(s, now);
}

/*
 * Out of descriptors: give up the reserve one to accept and refuse a client
 * (so the backlog moves), then pause accepting until descriptors free up.
 */
static void
out_of_descriptors(struct server *s, int lfd, int64_t now)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 fd;

	log_repeated(&s->rl_accept, now, "accept");
	if (s->reservefd != -1) {
		close(s->reservefd);
		s->reservefd = -1;	/* made again when descriptors free up */
		if ((fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC)) != -1) {
			addr_normalize(&ss);
			clients_refuse_busy(s, fd, &ss, now);
		}
	}
	clients_pause(s, now);
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

/* Accept what is waiting on one listener, within the child limit. */
static void
accept_some(struct server *s, int lfd, int64_t now)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 i, fd;

	for (i = 0; i < ACCEPT_BATCH && want_accepting(s, now); i++) {
		len = sizeof(ss);
		if ((fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC)) != -1) {
			clients_accepted(s, fd, &ss, now);
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
		clients_pause(s, now);
		return;
	}
}

/* Close the listeners and give children grace seconds to finish. */
static void
begin_shutdown(struct server *s, int sig, int64_t now)
{
	if (s->stopping)
		return;
	if (sig == 0)
		log_info("shutdown-delay over, shutting down");
	else if (s->draining)
		log_info("received SIG%s again, shutting down",
		    sigabbrev_np(sig));
	else
		log_info("received SIG%s, shutting down", sigabbrev_np(sig));
	s->draining = 0;
	notify_send("STOPPING=1");
	set_accepting(s, 0);
	listen_close(s->ctx->lfd, s->ctx->nlfd);
	agent_close();
	s->stopping = 1;
	s->stop_deadline = now + s->conf->grace * 1000LL;
}

/*
 * SIGTERM or SIGINT: with shutdown-delay, first drain: go on accepting and
 * serving while balancers are told to send no new clients (the agent says
 * drain, systemd's status says draining); a second signal, or the end of
 * the delay, stops as without it.
 */
static void
stop_signal(struct server *s, int sig, int64_t now)
{
	if (s->stopping)
		return;
	if (s->draining || s->conf->shutdown_delay == 0) {
		begin_shutdown(s, sig, now);
		return;
	}
	log_info("received SIG%s, draining for %d s before shutting down",
	    sigabbrev_np(sig), s->conf->shutdown_delay);
	notify_send("STOPPING=1\nSTATUS=draining");
	s->draining = 1;
	s->drain_until = now + s->conf->shutdown_delay * 1000LL;
}

/* Past the grace period: terminate children, then kill stragglers. */
static void
shutdown_step(struct server *s, int64_t now)
{
	if (now < s->stop_deadline || s->kids.n == 0)
		return;
	if (!s->terminated) {
		log_info("grace period over, stopping %u children", s->kids.n);
		children_signal_all(&s->kids, SIGTERM);
		s->terminated = 1;
	} else
		children_signal_all(&s->kids, SIGKILL);
	s->stop_deadline = now + KILL_AFTER_MS;
}

/* Write the metrics file and set the time of the next write. */
static void
write_metrics(struct server *s, int64_t now)
{
	metrics_write(s, now);
	s->metrics_at = now + s->conf->metrics_interval * 1000LL;
}

/* Take and act on every pending signal: children's exits first, so that
 * counts are exact, then the operator's. */
static void
handle_signals(struct server *s, int64_t now)
{
	static const struct timespec zero;
	siginfo_t	 si;
	int		 hup = 0, usr1 = 0, stop = 0;

	while (sigtimedwait(&s->sigs, &si, &zero) > 0) {
		if (si.si_signo == SE_EXIT_SIGNAL)
			clients_exited(s, si.si_pid, now);
		else if (si.si_signo == SIGCHLD) {
			resolver_check();	/* the resolver is fork(2)ed */
			if (s->classic)
				clients_reap_any(s, now);
		} else if (si.si_signo == SIGHUP)
			hup = 1;
		else if (si.si_signo == SIGUSR1)
			usr1 = 1;
		else if (si.si_signo == SIGTERM || si.si_signo == SIGINT)
			stop = si.si_signo;
	}
	if (hup) {
		control_reload(s);
		resolver_forget(s->conf->resolve_cache);
	}
	if (usr1) {
		control_stats(s);
		if (s->conf->metrics_file != NULL)
			write_metrics(s, now);
	}
	if (stop)
		stop_signal(s, stop, now);
}

/* The wait's timeout: the nearest of pause end, linger, child and shutdown
 * deadlines, the next STATUS= refresh and the end of a rate-limit window
 * that held log lines back. */
static int
wait_timeout(const struct server *s, int64_t now)
{
	const struct heap_node *top = heap_top(&s->kids.deadlines);
	int64_t	 t = linger_next_deadline(s->lingers), d, a;

#define NEARER(x)	do { if (t == -1 || (x) < t) t = (x); } while (0)
	if (s->paused_until > now)
		NEARER(s->paused_until);
	if (top != NULL)
		NEARER(top->key);
	if (s->stopping && s->kids.n > 0)
		NEARER(s->stop_deadline);
	if (s->draining)
		NEARER(s->drain_until);
	if ((a = agent_pause_end()) != -1)
		NEARER(a);
	if (s->st.changes != s->status_changes)
		NEARER(s->status_at + STATUS_EVERY_MS);
	if ((d = ratelimit_deadline(&s->rl_refused)) != -1)
		NEARER(d);
	if ((d = ratelimit_deadline(&s->rl_crash)) != -1)
		NEARER(d);
	if (s->conf->metrics_file != NULL)
		NEARER(s->metrics_at);
#undef NEARER
	if (t == -1)
		return -1;
	d = t - now;
	return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

/* Act on one event. */
static void
dispatch(struct server *s, uint64_t data, int64_t now)
{
	uint32_t	 i = EV_INDEX(data);

	switch (EV_TAG(data)) {
	case EV_SIGNAL:
		handle_signals(s, now);
		break;
	case EV_LISTEN:
		if (!s->stopping && (int)i < s->ctx->nlfd)
			accept_some(s, s->ctx->lfd[i], now);
		break;
	case EV_CTL:
		clients_report(s, i, now);
		break;
	case EV_LINGER:
		linger_ready(s->lingers, i);
		break;
	case EV_AGENT:
		if (!s->stopping)
			agent_ready(s, i, now);
		break;
	case EV_NAMES:
		resolver_reports(now);
		break;
	}
}

/* Rank of an event: reports before exits (a child's last report is read
 * before its exit is counted), exits before new clients (counts are exact
 * when the limits are checked). */
static int
event_rank(uint64_t data)
{
	switch (EV_TAG(data)) {
	case EV_CTL:
		return 0;
	case EV_SIGNAL:
		return 1;
	default:
		return 2;
	}
}

/* One pass: wait, then handle what is ready, in rank order, then timers. */
static void
server_pass(struct server *s)
{
	struct epoll_event	 ev[EVENT_BATCH];
	int64_t			 now = clock_ms();
	int			 i, n, rank;

	agent_resume(s, now);
	set_accepting(s, want_accepting(s, now));
	n = epoll_wait(s->epfd, ev, EVENT_BATCH, wait_timeout(s, now));
	if (n == -1 && errno != EINTR)
		fatal("epoll_wait");
	now = clock_ms();
	if (s->reservefd == -1 && now >= s->paused_until)
		s->reservefd = eventfd(0, EFD_CLOEXEC);
	for (rank = 0; rank < 3; rank++)
		for (i = 0; i < n; i++)
			if (event_rank(ev[i].data.u64) == rank)
				dispatch(s, ev[i].data.u64, now);
	linger_expire(s->lingers, now);
	clients_overdue(s, now);
	control_status(s, now);
	ratelimit_flush(&s->rl_refused, now);
	ratelimit_flush(&s->rl_crash, now);
	if (s->conf->metrics_file != NULL && now >= s->metrics_at)
		write_metrics(s, now);
	if (s->draining && now >= s->drain_until)
		begin_shutdown(s, 0, now);
	if (s->stopping)
		shutdown_step(s, now);
}

/* The epoll set with the signalfd and the listeners in it. */
static int
events_setup(struct server *s)
{
	int	 i;

	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		log_warn("epoll_create1");
		return -1;
	}
	if (clients_watch(s, s->sigfd, EV_SIGNAL, 0) == -1)
		return -1;
	for (i = 0; i < s->ctx->nlfd; i++)
		if (clients_watch(s, s->ctx->lfd[i], EV_LISTEN, i) == -1)
			return -1;
	for (i = 0; i < agent_count(); i++)
		if (clients_watch(s, agent_fd_at(i), EV_AGENT, i) == -1)
			return -1;
	if (resolver_reports_fd() != -1 &&
	    clients_watch(s, resolver_reports_fd(), EV_NAMES, 0) == -1)
		return -1;
	s->accepting = 1;
	linger_init(s->lingers, s->epfd, EV_LINGER);
	return 0;
}

/* Run until SIGTERM or SIGINT and every child is gone. */
int
server_run(struct server_ctx *ctx)
{
	struct server	 s;

	memset(&s, 0, sizeof(s));
	s.lingers = &lingering;
	s.ctx = ctx;
	s.conf = ctx->conf;
	s.classic = sandbox_under_valgrind();
	if (signals_setup(&s) == -1)
		return -1;
	if ((s.reservefd = eventfd(0, EFD_CLOEXEC)) == -1 ||
	    (s.buf = malloc(session_bufsize(s.conf->max_line))) == NULL ||
	    sources_init(&s.src) == -1) {
		log_warn("server setup");
		return -1;
	}
	if (events_setup(&s) == -1)
		return -1;
	if (s.conf->metrics_file != NULL)
		write_metrics(&s, clock_ms());	/* every series, from the start */
	while (!s.stopping || s.kids.n > 0)
		server_pass(&s);
	linger_close_all(s.lingers);
	ratelimit_finish(&s.rl_refused, clock_ms());
	ratelimit_finish(&s.rl_crash, clock_ms());
	log_info("exiting");
	free(s.buf);
	children_free(&s.kids);
	sources_free(&s.src);
	close(s.reservefd);
	close(s.sigfd);
	close(s.epfd);
	return 0;
}
