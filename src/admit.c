/*
 * admit.c: the parent's decision about each accepted client: the access
 * rules, crash penalties and max-per-source, with refusals logged
 * (rate-limited) and counted; behind a balancer the same decision about the
 * real client a child reports, answered with a verdict.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "server.h"

/* Log one refusal or denial record, rate-limited. */
static void
log_refusal(struct server *s, const struct sockaddr_storage *ss,
    const char *outcome, const char *reason, int64_t now)
{
	char		 ip[INET6_ADDRSTRLEN];
	unsigned long	 held;

	if (!ratelimit_allow(&s->rl_refused, now, &held))
		return;
	log_info("end client=%s port=%d pid=%ld outcome=%s%s%s in=0 out=0 "
	    "duration=0.000%s", addr_ntop(ss, ip, sizeof(ip)), addr_port(ss),
	    (long)getpid(), outcome, reason ? " reason=" : "", reason ? reason : "",
	    held ? " (more refusals not logged)" : "");
	if (held)
		log_info("%lu refusals were not logged", held);
}

/* Refuse a client with one error line, then close lingering. */
void
admit_refuse(struct server *s, int fd, const struct sockaddr_storage *ss,
    const char *line, const char *reason, int64_t now)
{
	(void)send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	linger_start(s->lingers, fd, now);
	log_refusal(s, ss, "refused", reason, now);
}

/*
 * A child died with its report still unread: a bad header is logged and
 * counted like any other (the child exits right after reporting one).
 */
void
admit_report_dead(struct server *s, struct child *c, int64_t now)
{
	struct handoff_report	 r;

	if (handoff_recv(c->ctl, &r) == 1 && r.error != PROXY_OK) {
		s->st.refused_proxy++;
		log_refusal(s, &r.addr, "refused", proxy_error_name(r.error), now);
	}
	close(c->ctl);
	c->ctl = -2;
}

/* Would this source exceed max-per-source? */
static int
over_source_limit(struct server *s, const struct addrmask *src, int64_t now)
{
	size_t	 limit = s->conf->max_per_source;

	if (limit == 0 || children_count_source(&s->kids, src) < limit)
		return 0;
	server_reap(s, now);
	return children_count_source(&s->kids, src) >= limit;
}

/*
 * The access rules, crash penalties and max-per-source for the client at ss
 * (its source network in *src): the verdict, with a refusal logged and
 * counted here.  The caller closes the connection as the verdict says.
 */
static enum verdict
judge(struct server *s, const struct sockaddr_storage *ss,
    struct addrmask *src, int64_t now)
{
	struct addrmask	 host;

	addr_from_sockaddr(ss, &host);
	if (s->conf->nacl > 0 && !conf_acl_allows(s->conf, &host)) {
		s->st.outcome[OUTCOME_DENIED]++;
		log_refusal(s, ss, "denied", NULL, now);
		return VERDICT_DENY;
	}
	*src = host;
	addr_mask(src, host.family == AF_INET ? s->conf->prefix4 :
	    s->conf->prefix6);
	if (penalty_active(s->pen, src, now)) {
		s->st.refused_penalty++;
		log_refusal(s, ss, "refused", "crash-penalty", now);
		return VERDICT_PENALTY;
	}
	if (over_source_limit(s, src, now)) {
		s->st.refused_limit++;
		log_refusal(s, ss, "refused", "max-per-source", now);
		return VERDICT_LIMIT;
	}
	return VERDICT_SERVE;
}

/*
 * Behind a balancer, only the balancers in proxy-from may connect; the rules
 * about the client wait for the child's report of its real address.
 */
static void
admit_proxied(struct server *s, int fd, struct sockaddr_storage *ss,
    int64_t now)
{
	struct addrmask	 host, none;

	addr_from_sockaddr(ss, &host);
	if (!conf_proxy_trusted(s->conf, &host)) {
		s->st.refused_proxy++;
		linger_start(s->lingers, fd, now);
		log_refusal(s, ss, "refused", proxy_error_name(PROXY_E_UNTRUSTED),
		    now);
		return;
	}
	memset(&none, 0, sizeof(none));		/* AF_UNSPEC: no source yet */
	server_spawn(s, fd, ss, &none, 1, now);
}

/* Decide about one accepted client: deny, refuse, or serve. */
void
admit_client(struct server *s, int fd, struct sockaddr_storage *ss, int64_t now)
{
	struct addrmask	 src;

	addr_normalize(ss);
	if (s->conf->proxy_protocol) {
		admit_proxied(s, fd, ss, now);
		return;
	}
	switch (judge(s, ss, &src, now)) {
	case VERDICT_SERVE:
		server_spawn(s, fd, ss, &src, 0, now);
		return;
	case VERDICT_PENALTY:
		(void)send(fd, SE_ERR_PENALTY, strlen(SE_ERR_PENALTY),
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case VERDICT_LIMIT:
		(void)send(fd, SE_ERR_PER_SOURCE, strlen(SE_ERR_PER_SOURCE),
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case VERDICT_DENY:		/* no reply at all */
		break;
	}
	linger_start(s->lingers, fd, now);
}

/*
 * A child behind a balancer reported: judge the real client as admit()
 * would, re-account the child under the real source when it is to serve, and
 * tell it.  The report was sent before the child waits, so this never blocks.
 */
void
admit_report(struct server *s, pid_t pid, int64_t now)
{
	struct handoff_report	 r;
	struct addrmask		 src;
	struct child		*c;
	enum verdict		 v;
	char			 ip[INET6_ADDRSTRLEN];
	int			 ctl, n;

	if ((c = children_find(&s->kids, pid)) == NULL || c->ctl < 0 ||
	    (n = handoff_recv(c->ctl, &r)) == 0)
		return;
	ctl = c->ctl;
	c->ctl = -2;		/* judge() may reap and move the table */
	if (n == 1 && r.error != PROXY_OK) {
		s->st.refused_proxy++;
		log_refusal(s, &r.addr, "refused", proxy_error_name(r.error), now);
	} else if (n == 1) {
		addr_normalize(&r.addr);
		v = judge(s, &r.addr, &src, now);
		if (v == VERDICT_SERVE && (c = children_find(&s->kids, pid)) !=
		    NULL) {
			c->source = src;
			strlcpy(c->ip, addr_ntop(&r.addr, ip, sizeof(ip)),
			    sizeof(c->ip));
		}
		handoff_send_verdict(ctl, v);
	}
	close(ctl);
}
