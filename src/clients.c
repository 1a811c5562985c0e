/*
 * clients.c: what the parent's loop does about each client: ask the policy,
 * then refuse (one error line, a lingering close, a rate-limited log record,
 * a counter) or fork a child; hear a child's report from behind a balancer;
 * account for a child that ended; end a child that outlives its deadline.
 * The loop (server.c) calls in here; this file calls only down, into the
 * policy, the tables and the child.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

#define PAUSE_MIN_MS	100	/* accepting paused after a resource error */
#define PAUSE_MAX_MS	1000
#define PENDING_BATCH	64	/* exits taken per look in reap_pending() */

static void	 reap_pending(struct server *, int64_t);

/* Stop accepting for a while after a resource error, backing off. */
void
clients_pause(struct server *s, int64_t now)
{
	s->pause_ms = s->pause_ms == 0 ? PAUSE_MIN_MS :
	    s->pause_ms * 2 > PAUSE_MAX_MS ? PAUSE_MAX_MS : s->pause_ms * 2;
	s->paused_until = now + s->pause_ms;
}

/* Log one refusal or denial record, rate-limited. */
static void
log_refusal(struct server *s, const struct sockaddr_storage *ss,
    const char *outcome, const char *reason, int64_t now)
{
	char		 ip[INET6_ADDRSTRLEN];

	if (!ratelimit_allow(&s->rl_refused, now, "refusals"))
		return;
	log_info("end client=%s port=%d pid=%ld outcome=%s%s%s in=0 out=0 "
	    "duration=0.000", addr_ntop(ss, ip, sizeof(ip)), addr_port(ss),
	    (long)getpid(), outcome, reason ? " reason=" : "", reason ? reason : "");
}

/* Count and log a decision other than serving (the line is sent elsewhere). */
static void
account_refusal(struct server *s, const struct sockaddr_storage *ss,
    const struct decision *d, int64_t now)
{
	s->st.changes++;
	if (d->verdict == VERDICT_DENY) {
		s->st.outcome[OUTCOME_DENIED]++;
		log_refusal(s, ss, "denied", NULL, now);
		return;
	}
	s->st.refused[d->refusal]++;
	log_refusal(s, ss, "refused", policy_refusal_name(d->refusal), now);
}

/* End a connection the parent refuses: its error line, then lingering. */
static void
refuse(struct server *s, int fd, const struct sockaddr_storage *ss,
    const struct decision *d, int64_t now)
{
	const char	*line = verdict_line(d->verdict);

	if (line != NULL)
		(void)send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	linger_start(s->lingers, fd, now);
	account_refusal(s, ss, d, now);
}

/* Refuse the client at ss for want of resources (fork, memory,
 * descriptors). */
void
clients_refuse_busy(struct server *s, int fd, const struct sockaddr_storage *ss,
    int64_t now)
{
	const struct decision	 d = { .verdict = VERDICT_BUSY,
				    .refusal = REFUSAL_BUSY };

	refuse(s, fd, ss, &d, now);
}

/*
 * Who names the client: the parent, when the resolver told it the name of
 * that address within resolve-cache (known, in the parent's frame, which
 * the child's copy of it keeps); else the resolver process, asked by the
 * child.  Behind a balancer the real client is known only to the child,
 * from a header its client sent: the resolver looks that up too, but does
 * not remember it.
 */
static void
spawn_name(struct server *s, struct child_ctx *cx, int proxy,
    struct names_answer *known, int64_t now)
{
	struct names_query	 q;

	cx->name = NULL;
	cx->remembered = 0;
	cx->namefd = s->conf->resolve ? resolver_fd() : -1;
	cx->nocache = proxy || s->conf->resolve_cache == 0;
	if (cx->namefd == -1 || cx->nocache)
		return;
	names_query_init(&q, cx->peer);
	if (namecache_get(&q, now, known)) {
		cx->name = known;
		cx->remembered = 1;
		cx->namefd = -1;	/* nothing to ask: not inherited */
	}
}

/* Watch fd in the loop's epoll set as tag | index; -1 (logged) on error. */
int
clients_watch(struct server *s, int fd, uint64_t tag, uint32_t index)
{
	struct epoll_event	 ev = { .events = EPOLLIN };

	ev.data.u64 = tag | index;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		log_warn("epoll_ctl");
		return -1;
	}
	return 0;
}

/*
 * fork(2), except that the child's exit is reported with SE_EXIT_SIGNAL: a
 * realtime signal, queued once per child and carrying its pid, so that the
 * parent reaps exactly that child (waitid(P_PID)) and never asks the kernel
 * to walk all of them.  It is the clone(2) call fork(2) makes, without
 * glibc's fork handlers: the parent runs no threads and holds no lock, and
 * a child calls nothing that depends on them (arc4random, pthread_kill).
 * A descriptor per child (a pidfd) would do as well, but fork(2) copies the
 * descriptor table and the child must close them all again: measured here,
 * 130 us of the parent's CPU per fork with no other child, 237 us with
 * 2,000, where this stays the same.  Under valgrind, plain fork(2).
 */
static pid_t
fork_child(const struct server *s)
{
	if (s->classic)
		return fork();
	return (pid_t)syscall(SYS_clone, (unsigned long)SE_EXIT_SIGNAL, NULL,
	    NULL, NULL, 0UL);
}

/*
 * Record the child just forked: its deadline, and behind a balancer its
 * report socket.  -1 when it cannot be tracked: it is then killed, since an
 * untracked child must not serve.
 */
static int
track(struct server *s, pid_t pid, const char *ip, int ctl, int64_t now)
{
	struct child	*c;
	int64_t		 deadline;
	int		 slot;

	deadline = now + (s->conf->timeout + SE_WATCHDOG_SLACK +
	    LINGER_MS / 1000 + 1) * 1000LL;
	if ((slot = children_add(&s->kids, pid, ip, now, deadline)) == -1) {
		(void)kill(pid, SIGKILL);	/* reaped by its exit signal */
		return -1;
	}
	c = children_at(&s->kids, slot);
	if (ctl != -1 && clients_watch(s, ctl, EV_CTL, slot) == -1) {
		(void)children_signal(c, SIGKILL);	/* reaped as signalled */
		return slot;
	}
	c->ctl = ctl;
	c->proxied = ctl != -1;
	return slot;
}

/*
 * Fork a child for the client; the parent keeps only the record.  Behind a
 * balancer (d is NULL) the child gets one end of a socketpair for its
 * report, and counts for no source until it has told the real one.
 */
static void
spawn(struct server *s, int fd, const struct sockaddr_storage *ss,
    const struct decision *d, int64_t now)
{
	struct child_ctx	 cx;
	struct names_answer	 known;
	struct source		*src = NULL;
	char			 ip[INET6_ADDRSTRLEN];
	int			 sv[2] = { -1, -1 }, slot;
	pid_t			 pid = -1;

	if (d != NULL && !d->exempt &&
	    (src = sources_get(&s->src, &d->source, now)) == NULL) {
		clients_refuse_busy(s, fd, ss, now);	/* every source is busy */
		return;
	}
	child_ctx_init(&cx, fd, ss, addr_ntop(ss, ip, sizeof(ip)), s->conf,
	    s->buf, now);
	spawn_name(s, &cx, d == NULL, &known, now);
	if (d != NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0, sv) == 0) {
		cx.ctl = sv[1];
		if ((pid = fork_child(s)) == 0)
			child_main(&cx);
	}
	if (sv[1] != -1)
		close(sv[1]);
	if (pid == -1) {
		log_repeated(&s->rl_fork, now, d == NULL ? "fork or socketpair" :
		    "fork");
		if (sv[0] != -1)
			close(sv[0]);
		clients_refuse_busy(s, fd, ss, now);
		clients_pause(s, now);
		return;
	}
	s->pause_ms = 0;
	close(fd);
	if ((slot = track(s, pid, ip, sv[0], now)) == -1) {
		if (sv[0] != -1)
			close(sv[0]);
		return;
	}
	if (src != NULL) {
		sources_attach(&s->src, src);
		if (s->conf->rate_per_source > 0)
			sources_rate_take(src, s->conf->rate_per_source, now);
		children_at(&s->kids, slot)->source = sources_index(&s->src,
		    src) + 1;
	}
}

/* Decide about one accepted client: deny, refuse, or serve. */
void
clients_accepted(struct server *s, int fd, struct sockaddr_storage *ss,
    int64_t now)
{
	struct decision	 d;

	addr_normalize(ss);
	policy_decide(s->conf, &s->src, ss, now, &d);
	if (s->conf->proxy_protocol) {
		/* Only balancers may connect; the rules about the client wait
		 * for the child's report of its real address. */
		if (d.proxy_trusted) {
			spawn(s, fd, ss, NULL, now);
			return;
		}
		s->st.refused[REFUSAL_PROXY]++;
		s->st.changes++;
		linger_start(s->lingers, fd, now);
		log_refusal(s, ss, "refused", proxy_error_name(PROXY_E_UNTRUSTED),
		    now);
		return;
	}
	if (d.verdict == VERDICT_LIMIT) {
		/* Children of this source may have exited since the loop
		 * looked: count them out before refusing. */
		reap_pending(s, now);
		policy_decide(s->conf, &s->src, ss, now, &d);
	}
	if (d.verdict == VERDICT_SERVE)
		spawn(s, fd, ss, &d, now);
	else
		refuse(s, fd, ss, &d, now);
}

/* A bad PROXY header a child reported: logged and counted like any other. */
static void
bad_header(struct server *s, const struct handoff_report *r, int64_t now)
{
	s->st.refused[REFUSAL_PROXY]++;
	s->st.changes++;
	log_refusal(s, &r->addr, "refused", proxy_error_name(r->error), now);
}

/* Stop listening to a child's report socket. */
static void
close_ctl(struct child *c)
{
	close(c->ctl);		/* leaves the epoll set with it */
	c->ctl = -1;
}

/*
 * A child behind a balancer reported: decide about the real client as for
 * any other, account the child under the real source when it is to serve,
 * and tell it.  The report was sent before the child waits, so this never
 * blocks; the child sends the refusal line itself.
 */
void
clients_report(struct server *s, uint32_t slot, int64_t now)
{
	struct handoff_report	 r;
	struct decision		 d;
	struct source		*src = NULL;
	struct child		*c;
	pid_t			 pid;
	int			 n;

	if ((c = children_at(&s->kids, slot)) == NULL || c->ctl == -1 ||
	    (n = handoff_recv(c->ctl, &r)) == 0)
		return;
	if (n == 1 && r.error != PROXY_OK)
		bad_header(s, &r, now);
	else if (n == 1) {
		addr_normalize(&r.addr);
		policy_decide(s->conf, &s->src, &r.addr, now, &d);
		if (d.verdict == VERDICT_LIMIT) {
			pid = c->pid;
			reap_pending(s, now);
			if ((c = children_find_pid(&s->kids, pid)) == NULL)
				return;		/* it died meanwhile */
			policy_decide(s->conf, &s->src, &r.addr, now, &d);
		}
		if (d.verdict == VERDICT_SERVE && !d.exempt &&
		    (src = sources_get(&s->src, &d.source, now)) == NULL)
			d.verdict = VERDICT_BUSY, d.refusal = REFUSAL_BUSY;
		if (d.verdict != VERDICT_SERVE)
			account_refusal(s, &r.addr, &d, now);
		else if (src != NULL) {
			sources_attach(&s->src, src);
			if (s->conf->rate_per_source > 0)
				sources_rate_take(src, s->conf->rate_per_source,
				    now);
			c->source = sources_index(&s->src, src) + 1;
		}
		if (d.verdict == VERDICT_SERVE)
			addr_ntop(&r.addr, c->ip, sizeof(c->ip));
		handoff_send_verdict(c->ctl, d.verdict);
	}
	close_ctl(c);
}

/* Apply a penalty to the child's source, unless it has none (exempt). */
static void
penalise(struct server *s, struct child *c, enum penalty_cause why, int secs,
    int64_t now)
{
	if (c->source == 0 || secs <= 0)
		return;
	sources_penalise(&s->src, sources_at(&s->src, c->source - 1), why, secs,
	    s->conf->penalty_max, now);
}

/* A child killed by a signal it was not sent: a crash, penalised.  The log
 * names the whole penalty now in force: penalties add up (penalty-max). */
static void
crashed(struct server *s, struct child *c, int sig, int64_t now)
{
	int		 secs = s->conf->crash_penalty;

	s->st.crashed++;
	penalise(s, c, PENALTY_CRASH, secs, now);
	if (!ratelimit_allow(&s->rl_crash, now, "crashes"))
		return;
	if (secs > 0 && c->source != 0)
		secs = (int)((sources_at(&s->src, c->source - 1)->penalty_until -
		    now + 999) / 1000);
	if (secs > 0 && c->source != 0)
		log_warnx("child %ld (client %s) killed by signal SIG%s, refusing "
		    "%s for %d s", (long)c->pid, c->ip, sigabbrev_np(sig), c->ip,
		    secs);
	else
		log_warnx("child %ld (client %s) killed by signal SIG%s",
		    (long)c->pid, c->ip, sigabbrev_np(sig));
}

/* Count how a child ended (code and status as waitid(2) reports them). */
static void
account_child(struct server *s, struct child *c, int code, int status,
    int64_t now)
{
	if (code == CLD_EXITED) {
		/* Refused behind a balancer: counted when the parent decided. */
		if (c->proxied && (status == OUTCOME_REFUSED ||
		    status == OUTCOME_DENIED || status == OUTCOME_PROXY))
			return;
		if (status == OUTCOME_TIMEOUT)
			penalise(s, c, PENALTY_TIMEOUT, s->conf->timeout_penalty,
			    now);
		s->st.outcome[status < OUTCOME_MAX ? status : OUTCOME_ERROR]++;
	} else if (c->overdue || status == SIGALRM) {
		/* its watchdog, or the parent's: the deadline passed */
		s->st.outcome[OUTCOME_TIMEOUT]++;
		penalise(s, c, PENALTY_TIMEOUT, s->conf->timeout_penalty, now);
		log_info("child %ld (client %s) stopped by its watchdog",
		    (long)c->pid, c->ip);
	} else if (c->signalled)
		s->st.outcome[OUTCOME_ERROR]++;
	else
		crashed(s, c, status, now);
}

/* One child has ended: its last report, its outcome, its slot. */
static void
child_ended(struct server *s, struct child *c, int code, int status,
    int64_t now)
{
	struct handoff_report	 r;
	uint32_t		 slot = children_slot(&s->kids, c);

	if (c->ctl != -1) {
		if (handoff_recv(c->ctl, &r) == 1 && r.error != PROXY_OK)
			bad_header(s, &r, now);
		close_ctl(c);
	}
	account_child(s, c, code, status, now);
	s->st.changes++;
	if (c->source != 0)
		sources_detach(&s->src, sources_at(&s->src, c->source - 1), now);
	children_remove(&s->kids, slot);
}

/* Child pid's exit signal came: reap exactly that child. */
void
clients_exited(struct server *s, pid_t pid, int64_t now)
{
	struct child	*c;
	siginfo_t	 si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | __WALL) == -1 ||
	    si.si_pid != pid || (c = children_find_pid(&s->kids, pid)) == NULL)
		return;
	child_ended(s, c, si.si_code, si.si_status, now);
}

/*
 * Under valgrind (fork(2) and SIGCHLD, which the kernel merges): reap with
 * a waitpid(-1) loop.  Its cost grows with the children alive; valgrind
 * does not know the realtime exit signal's clone(2), and runs slowly anyway.
 */
void
clients_reap_any(struct server *s, int64_t now)
{
	struct child	*c;
	pid_t		 pid;
	int		 status, code;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		code = WIFEXITED(status) ? CLD_EXITED : CLD_KILLED;
		status = WIFEXITED(status) ? WEXITSTATUS(status) :
		    WTERMSIG(status);
		if ((c = children_find_pid(&s->kids, pid)) != NULL)
			child_ended(s, c, code, status, now);
		else
			(void)resolver_reaped(pid, code, status);
	}
}

/*
 * End every child that outlives its deadline: its timeout, its watchdog's
 * slack and the lingering close, plus a second.  Its own SIGALRM comes
 * first; this is for a child that cancelled it (taken over by its client).
 */
void
clients_overdue(struct server *s, int64_t now)
{
	struct child	*c;

	while ((c = children_overdue(&s->kids, now)) != NULL) {
		c->overdue = 1;
		log_warnx("child %ld (client %s) outlived its deadline, killing "
		    "it", (long)c->pid, c->ip);
		(void)children_signal(c, SIGKILL);
		c->signalled = 0;	/* its death is a timeout, not ours */
	}
}

/*
 * Before a decision that depends on the counts (the child limit, a source's
 * limit): reap the children that have exited since the loop last looked,
 * taking only their exit signals (the others stay pending for the loop).
 * Any child may be gone afterwards: callers find theirs again by pid.
 */
static void
reap_pending(struct server *s, int64_t now)
{
	static const struct timespec zero;
	sigset_t	 exits;
	siginfo_t	 si;
	int		 i;

	if (s->classic) {
		clients_reap_any(s, now);
		return;
	}
	sigemptyset(&exits);
	sigaddset(&exits, SE_EXIT_SIGNAL);
	for (i = 0; i < PENDING_BATCH && sigtimedwait(&exits, &si, &zero) > 0;
	    i++)
		clients_exited(s, si.si_pid, now);
}

/* At the child limit: are we still, once exited children are counted out? */
int
clients_at_limit(struct server *s, int64_t now)
{
	if (s->kids.n < (uint32_t)s->conf->max_children)
		return 0;
	reap_pending(s, now);
	return s->kids.n >= (uint32_t)s->conf->max_children;
}
