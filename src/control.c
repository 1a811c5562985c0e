/*
 * control.c: what the operator's signals do besides stopping: SIGHUP
 * re-reads the configuration, SIGUSR1 reports the counters (also sent to
 * systemd as STATUS=, and refreshed there while serving); and the check that
 * max-children fits the descriptors the parent may hold.
 */
#include <sys/types.h>
#include <sys/resource.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srvexample.h"
#include "parent.h"

/* Descriptors the parent holds besides one per child: stdio, log, signalfd,
 * epoll, reserve, name socket, configuration directory, notify socket,
 * pidfile, the lingering slots and a few in flight while forking. */
#define FDS_FIXED	(32 + LINGER_SLOTS)

/* Are two optional strings equal? */
static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Are the listen lists equal? */
static int
same_listen(const struct conf *a, const struct conf *b)
{
	int	 i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i], b->listen[i]) != 0)
			return 0;
	return 1;
}

/* Swap two string pointers. */
static void
swap_str(char **a, char **b)
{
	char	*t = *a;

	*a = *b;
	*b = t;
}

/*
 * resolve yes needs the resolver process, which only start-up makes, before
 * the parent's filter and any chroot: forked later, it would inherit a filter
 * under which no NSS module loads.  Without one, clients stay logged by
 * address.
 */
static void
keep_resolve(const struct conf *old, struct conf *new)
{
	if (!new->resolve || resolver_fd() != -1)
		return;
	if (!old->resolve)
		log_warnx("resolve changed: takes effect after a restart");
	new->resolve = 0;
}

/*
 * Keep the running values of keywords that only a restart can change, and say
 * so for each that the new file changes.
 */
static void
keep_restart_only(struct conf *old, struct conf *new)
{
	struct conf	 t;

	const struct {
		const char	*keyword;
		int		 changed;
	} restart[] = {
		{ "listen", !same_listen(old, new) },
		{ "port", old->port != new->port },
		{ "reuse-port", old->reuse_port != new->reuse_port },
		{ "backlog", old->backlog != new->backlog },
		{ "user", !same_str(old->user, new->user) },
		{ "group", !same_str(old->group, new->group) },
		{ "chroot", !same_str(old->chroot, new->chroot) },
		{ "pidfile", !same_str(old->pidfile, new->pidfile) },
		{ "agent-port", old->agent_port != new->agent_port },
		{ "metrics-file", !same_str(old->metrics_file,
		    new->metrics_file) },
	};
	size_t		 i;

	for (i = 0; i < sizeof(restart) / sizeof(restart[0]); i++)
		if (restart[i].changed)
			log_warnx("%s changed: takes effect after a restart",
			    restart[i].keyword);
	memcpy(t.listen, new->listen, sizeof(t.listen));
	memcpy(new->listen, old->listen, sizeof(new->listen));
	memcpy(old->listen, t.listen, sizeof(old->listen));
	t.nlisten = new->nlisten;
	new->nlisten = old->nlisten;
	old->nlisten = t.nlisten;
	new->port = old->port;
	new->reuse_port = old->reuse_port;
	new->backlog = old->backlog;
	swap_str(&old->user, &new->user);
	swap_str(&old->group, &new->group);
	swap_str(&old->chroot, &new->chroot);
	swap_str(&old->pidfile, &new->pidfile);
	new->agent_port = old->agent_port;
	swap_str(&old->metrics_file, &new->metrics_file);
}

/* The monotonic clock in microseconds, for MONOTONIC_USEC. */
static unsigned long long
monotonic_usec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Does max-children fit the limits?  Behind a balancer the parent holds a
 * report socket per child, and each child's exit is a queued signal until
 * the parent takes it (RLIMIT_SIGPENDING).  -1, with one message naming
 * both numbers, when it does not.
 */
int
control_check_limits(const struct conf *c, int nlfd)
{
	struct rlimit	 rl;
	long long	 need;

	need = c->max_children + 64LL;
	if (getrlimit(RLIMIT_SIGPENDING, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (long long)rl.rlim_cur < need) {
		log_warnx("max-children %d needs %lld queued signals, but the "
		    "limit (RLIMIT_SIGPENDING) is %llu: lower max-children or "
		    "raise the limit (LimitSIGPENDING= under systemd, ulimit -i)",
		    c->max_children, need, (unsigned long long)rl.rlim_cur);
		return -1;
	}
	need = FDS_FIXED + nlfd + (c->proxy_protocol ? c->max_children : 0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
	    (long long)rl.rlim_cur >= need)
		return 0;
	log_warnx("max-children %d needs %lld descriptors, but the limit "
	    "(RLIMIT_NOFILE) is %llu: lower max-children or raise the limit "
	    "(LimitNOFILE= under systemd, ulimit -n)", c->max_children, need,
	    (unsigned long long)rl.rlim_cur);
	return -1;
}

/*
 * SIGHUP: read the configuration again.  Limits, timeouts, logging and access
 * rules apply to new clients; an invalid file changes nothing.  The
 * children's line buffer is resized when max-line changes.
 */
void
control_reload(struct server *s)
{
	struct server_ctx *ctx = s->ctx;
	struct conf	 new;
	char		*nbuf;

	notify_send("RELOADING=1\nMONOTONIC_USEC=%llu", monotonic_usec());
	log_info("reloading configuration");
	if (conf_load(ctx->source, &new) == -1) {
		log_warnx("reload failed, keeping the running configuration");
		notify_send("READY=1");
		return;
	}
	if (new.log == LOG_SINK_DEFAULT)
		new.log = ctx->foreground ? LOG_SINK_STDERR : LOG_SINK_SYSLOG;
	if (control_check_limits(&new, ctx->nlfd) == -1) {
		log_warnx("reload failed, keeping the running configuration");
		conf_clear(&new);
		notify_send("READY=1");
		return;
	}
	if (new.max_line != ctx->conf->max_line) {
		if ((nbuf = malloc(session_bufsize(new.max_line))) == NULL) {
			log_warn("reload failed, keeping the running configuration");
			conf_clear(&new);
			notify_send("READY=1");
			return;
		}
		free(s->buf);
		s->buf = nbuf;
	}
	keep_restart_only(ctx->conf, &new);
	keep_resolve(ctx->conf, &new);
	if (new.defer_accept != ctx->conf->defer_accept)
		listen_defer(ctx->lfd, ctx->nlfd, new.defer_accept);
	if (new.log != ctx->conf->log || new.log_facility != ctx->conf->log_facility)
		log_init(new.log, new.log_facility, 0);
	conf_clear(ctx->conf);
	*ctx->conf = new;
	log_info("configuration reloaded");
	notify_send("READY=1");
}

/* The counters as one line of key=value pairs. */
static void
stats_line(const struct server *s, char *line, size_t len)
{
	const struct stats *st = &s->st;
	unsigned long	 refused = 0;
	int		 i;

	for (i = 0; i < REFUSAL_MAX; i++)
		refused += st->refused[i];
	snprintf(line, len, "served=%lu active=%u eof=%lu timeouts=%lu "
	    "too-long=%lu errors=%lu refused=%lu denied=%lu crashed=%lu "
	    "queued=%lu",
	    st->outcome[OUTCOME_OK], s->kids.n, st->outcome[OUTCOME_EOF],
	    st->outcome[OUTCOME_TIMEOUT], st->outcome[OUTCOME_TOO_LONG],
	    st->outcome[OUTCOME_ERROR], refused, st->outcome[OUTCOME_DENIED],
	    st->crashed, listen_queued(s->ctx->lfd, s->ctx->nlfd));
}

/*
 * SIGUSR1: the refusals by reason, then one line of counters, also sent to
 * systemd as STATUS=.
 */
void
control_stats(struct server *s)
{
	const unsigned long *r = s->st.refused;
	char		 line[512];

	stats_line(s, line, sizeof(line));
	log_info("refusals: max-per-source=%lu rate=%lu crash-penalty=%lu "
	    "timeout-penalty=%lu proxy=%lu busy=%lu",
	    r[REFUSAL_MAX_PER_SOURCE], r[REFUSAL_RATE], r[REFUSAL_CRASH_PENALTY],
	    r[REFUSAL_TIMEOUT_PENALTY], r[REFUSAL_PROXY], r[REFUSAL_BUSY]);
	log_info("stats: %s", line);
	notify_send("STATUS=%s", s->draining ? "draining" : line);
	s->status_changes = s->st.changes;
}

/*
 * While serving, refresh STATUS= with the counters when they have changed,
 * at most once a second (systemctl status shows them without a signal).
 */
void
control_status(struct server *s, int64_t now)
{
	char	 line[512];

	if (s->st.changes == s->status_changes ||
	    now < s->status_at + 1000 || notify_fd() == -1 || s->draining) {
		if (notify_fd() == -1 || s->draining)
			s->status_changes = s->st.changes;
		return;
	}
	stats_line(s, line, sizeof(line));
	notify_send("STATUS=%s", line);
	s->status_at = now;
	s->status_changes = s->st.changes;
}
