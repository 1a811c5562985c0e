/*
 * policy.c: the parent's decision about a client, as a pure function of the
 * configuration, the client's address and what the parent remembers about
 * its source (sources.c): allow/deny, exempt, penalties, max-per-source and
 * rate-per-source, in that order.  It does no I/O and changes nothing, so the
 * loop acts on its verdict, the dry run (-n -C addr=) prints the very same
 * decision, and tests and fuzzers can call it directly.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "srvexample.h"
#include "parent.h"

static const char *const refusal_names[REFUSAL_MAX] = {
	"none", "max-per-source", "rate", "crash-penalty", "timeout-penalty",
	"proxy", "busy"
};

/* The reason's name, as in logs and metrics. */
const char *
policy_refusal_name(enum refusal r)
{
	return r < REFUSAL_MAX ? refusal_names[r] : "unknown";
}

/* The refusal a source's state calls for, or REFUSAL_NONE. */
static enum refusal
source_refusal(const struct conf *c, const struct source *e, int64_t now)
{
	if (e != NULL && e->penalty_until > now)
		return e->cause == PENALTY_TIMEOUT ? REFUSAL_TIMEOUT_PENALTY :
		    REFUSAL_CRASH_PENALTY;
	if (c->max_per_source > 0 && e != NULL &&
	    e->children >= (uint32_t)c->max_per_source)
		return REFUSAL_MAX_PER_SOURCE;
	if (c->rate_per_source > 0 && !sources_rate_ok(e, c->rate_per_source,
	    now))
		return REFUSAL_RATE;
	return REFUSAL_NONE;
}

/* The verdict a refusal is told with. */
static enum verdict
refusal_verdict(enum refusal r)
{
	switch (r) {
	case REFUSAL_NONE:
		return VERDICT_SERVE;
	case REFUSAL_MAX_PER_SOURCE:
		return VERDICT_LIMIT;
	case REFUSAL_RATE:
		return VERDICT_RATE;
	default:
		return VERDICT_PENALTY;
	}
}

/*
 * Decide about the client at ss (IPv4-mapped addresses already made IPv4)
 * at time now; the tables may be NULL (the dry run: nothing remembered).
 */
void
policy_decide(const struct conf *c, struct sources *t,
    const struct sockaddr_storage *ss, int64_t now, struct decision *d)
{
	memset(d, 0, sizeof(*d));
	addr_from_sockaddr(ss, &d->host);
	d->source = d->host;
	addr_mask(&d->source, d->host.family == AF_INET ? c->prefix4 :
	    c->prefix6);
	d->exempt = conf_exempt(c, &d->host);
	d->proxy_trusted = conf_proxy_trusted(c, &d->host);
	if (!conf_acl_allows(c, &d->host, &d->rule)) {
		d->verdict = VERDICT_DENY;
		return;
	}
	if (!d->exempt)
		d->refusal = source_refusal(c, t == NULL ? NULL :
		    sources_find(t, &d->source), now);
	d->verdict = refusal_verdict(d->refusal);
}

/*
 * -n -C addr=ADDRESS: print the decision for a client from ADDRESS as the
 * daemon would take it for a first connection; 0, or 1 on a bad address.
 */
int
policy_dry_run(const struct conf *c, const char *addr)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;
	struct decision		 d;
	char			 net[INET6_ADDRSTRLEN + 8];

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else {
		fprintf(stderr, "%s: -C addr=%s: not a numeric IPv4 or IPv6 "
		    "address\n", SE_NAME, addr);
		return 1;
	}
	addr_normalize(&ss);
	policy_decide(c, NULL, &ss, 0, &d);
	printf("verdict %s\n", d.verdict == VERDICT_DENY ? "deny" : "allow");
	if (d.rule >= 0)
		printf("rule %s %s\n", c->acl[d.rule].allow ? "allow" : "deny",
		    addr_mask_ntop(&c->acl[d.rule].net, net, sizeof(net)));
	else
		printf("rule default\n");
	printf("source %s\n", addr_mask_ntop(&d.source, net, sizeof(net)));
	printf("exempt %s\nproxy-trusted %s\n", d.exempt ? "yes" : "no",
	    d.proxy_trusted ? "yes" : "no");
	return 0;
}
