/*
 * fuzz_policy.c: libFuzzer harness for the admission decision (policy.c)
 * and the per-source table it reads (sources.c, heap.c).
 *
 * The input is a configuration file, a line "--", then one event per line:
 *
 *	c ADDRESS	a client connects from ADDRESS (IPv4 or IPv6)
 *	e N OUTCOME	the Nth live child (modulo their number) ends:
 *			ok, crash (crash-penalty) or timeout (timeout-penalty)
 *	t MS		MS milliseconds pass
 *
 * Each event is applied the way clients.c applies it (decide; serve:
 * sources_get, attach, take a token; end: penalise, then detach) to the
 * real table, and to a reference that never forgets a source and keeps
 * its state in a plain array.  The decisions must agree, every one of
 * them: the table may drop an entry only once it holds nothing that
 * changes a decision (its penalty over, its bucket full again), and it
 * must find, reuse and free entries without losing one.  A violated
 * invariant prints which and calls abort().
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "srvexample.h"
#include "parent.h"

#define MAX_EVENTS	512
#define MAX_KIDS	256
#define MAX_REF		MAX_EVENTS
#define RATE_WINDOW_US	60000000LL

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define check(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

/* What the reference remembers about a source, forever. */
struct ref {
	struct addrmask	 key;
	uint32_t	 children;
	int		 cause;
	int64_t		 penalty_until;	/* ms */
	int64_t		 tat_us;
};

struct kid {
	struct source	*src;		/* NULL: exempt */
	struct ref	*ref;
};

struct state {
	const struct conf *c;
	struct sources	 t;
	struct ref	 ref[MAX_REF];
	int		 nref;
	struct kid	 kids[MAX_KIDS];
	int		 nkids;
	int64_t		 now;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(LOG_SINK_DEFAULT, LOG_DAEMON, 0);
	return 0;
}

static int
same_key(const struct addrmask *a, const struct addrmask *b)
{
	return a->family == b->family && a->prefixlen == b->prefixlen &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* The reference entry for key, made when there is none. */
static struct ref *
ref_get(struct state *st, const struct addrmask *key)
{
	int	 i;

	for (i = 0; i < st->nref; i++)
		if (same_key(&st->ref[i].key, key))
			return &st->ref[i];
	check(st->nref < MAX_REF);
	memset(&st->ref[st->nref], 0, sizeof(st->ref[0]));
	st->ref[st->nref].key = *key;
	return &st->ref[st->nref++];
}

/* The reference decision, written from SPEC.md's order of rules. */
static enum refusal
ref_refusal(const struct conf *c, const struct ref *r, int64_t now)
{
	if (r->penalty_until > now)
		return r->cause == PENALTY_TIMEOUT ? REFUSAL_TIMEOUT_PENALTY :
		    REFUSAL_CRASH_PENALTY;
	if (c->max_per_source > 0 && r->children >= (uint32_t)c->max_per_source)
		return REFUSAL_MAX_PER_SOURCE;
	/* a bucket of n tokens, one back every minute / n */
	if (c->rate_per_source > 0 && r->tat_us - now * 1000 >
	    RATE_WINDOW_US - RATE_WINDOW_US / c->rate_per_source)
		return REFUSAL_RATE;
	return REFUSAL_NONE;
}

static int
ref_exempt(const struct conf *c, const struct addrmask *host)
{
	int	 i;

	for (i = 0; i < c->nexempt; i++)
		if (addr_match(&c->exempt[i], host))
			return 1;
	return 0;
}

/* A client from text connects. */
static void
connect_from(struct state *st, const char *text)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;
	struct decision		 d;
	struct source		*e;
	struct ref		*r;
	int			 allows;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return;
	addr_normalize(&ss);
	policy_decide(st->c, &st->t, &ss, st->now, &d);
	check(d.source.prefixlen == (d.host.family == AF_INET ?
	    st->c->prefix4 : st->c->prefix6));
	check(addr_match(&d.source, &d.host));
	check(d.exempt == ref_exempt(st->c, &d.host));
	allows = conf_acl_allows(st->c, &d.host, NULL);
	if (!allows) {
		check(d.verdict == VERDICT_DENY);
		return;
	}
	if (d.exempt) {
		check(d.verdict == VERDICT_SERVE && d.refusal == REFUSAL_NONE);
	} else {
		r = ref_get(st, &d.source);
		check(d.refusal == ref_refusal(st->c, r, st->now));
	}
	if (d.verdict != VERDICT_SERVE || st->nkids == MAX_KIDS)
		return;
	e = NULL;
	r = NULL;
	if (!d.exempt) {
		/* fewer sources than the table holds: there is always room */
		check((e = sources_get(&st->t, &d.source, st->now)) != NULL);
		check(same_key(&e->key, &d.source));
		sources_attach(&st->t, e);
		r = ref_get(st, &d.source);
		r->children++;
		check(e->children == r->children);
		if (st->c->rate_per_source > 0) {
			sources_rate_take(e, st->c->rate_per_source, st->now);
			r->tat_us = (r->tat_us > st->now * 1000 ? r->tat_us :
			    st->now * 1000) + RATE_WINDOW_US /
			    st->c->rate_per_source;
		}
	}
	st->kids[st->nkids].src = e;
	st->kids[st->nkids].ref = r;
	st->nkids++;
}

/* Add a penalty to the reference: from now or the current end, capped. */
static void
ref_penalise(struct ref *r, int cause, int secs, int max, int64_t now)
{
	int64_t	 until;

	until = (r->penalty_until > now ? r->penalty_until : now) + secs * 1000LL;
	if (until > now + max * 1000LL)
		until = now + max * 1000LL;
	r->penalty_until = until;
	r->cause = cause;
}

/* The nth child ends with outcome. */
static void
end_child(struct state *st, unsigned long n, const char *outcome)
{
	struct kid	*k;
	int		 cause = PENALTY_NONE, secs = 0;

	if (st->nkids == 0)
		return;
	k = &st->kids[n % st->nkids];
	if (strcmp(outcome, "crash") == 0)
		cause = PENALTY_CRASH, secs = st->c->crash_penalty;
	else if (strcmp(outcome, "timeout") == 0)
		cause = PENALTY_TIMEOUT, secs = st->c->timeout_penalty;
	if (k->src != NULL) {
		if (secs > 0) {
			sources_penalise(&st->t, k->src, cause, secs,
			    st->c->penalty_max, st->now);
			ref_penalise(k->ref, cause, secs, st->c->penalty_max,
			    st->now);
			check(k->src->penalty_until == k->ref->penalty_until);
		}
		sources_detach(&st->t, k->src, st->now);
		k->ref->children--;
	}
	*k = st->kids[--st->nkids];
}

/* The table's counts hold together. */
static void
check_table(const struct state *st)
{
	check(st->t.used <= SOURCES_MAX && st->t.live <= st->t.used);
	check(st->t.idle.n <= st->t.live);
	check(st->t.live <= (uint32_t)st->nref);
}

static void
event(struct state *st, char *line)
{
	char		*arg, *end;
	unsigned long	 n;

	if (line[0] == '\0' || line[1] != ' ')
		return;
	arg = line + 2;
	switch (line[0]) {
	case 'c':
		connect_from(st, arg);
		break;
	case 'e':
		n = strtoul(arg, &end, 10);
		end_child(st, n, *end == ' ' ? end + 1 : "ok");
		break;
	case 't':
		n = strtoul(arg, NULL, 10);
		st->now += (int64_t)(n % 1000000000UL);
		break;
	}
	check_table(st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state	 st;
	struct conf		 c;
	char			*text, *p, *nl, *sep;
	size_t			 filelen;
	FILE			*f;
	int			 n = 0, ok;

	if ((text = malloc(size + 1)) == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	if ((sep = strstr(text, "\n--\n")) == NULL) {
		free(text);
		return 0;
	}
	filelen = sep - text + 1;
	conf_init(&c);
	if ((f = fmemopen(text, filelen, "r")) == NULL)
		abort();
	ok = conf_read_stream(f, "fuzz.conf", &c) == 0;
	fclose(f);
	if (!ok || sources_init(&st.t) == -1) {
		conf_clear(&c);
		free(text);
		return 0;
	}
	st.c = &c;
	st.nref = st.nkids = 0;
	st.now = 1000;
	for (p = sep + 4; *p != '\0' && n < MAX_EVENTS; p = nl + 1, n++) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl = '\0';
		event(&st, p);
		if (nl == NULL)
			break;
	}
	while (st.nkids > 0)
		end_child(&st, 0, "ok");
	check_table(&st);
	sources_free(&st.t);
	conf_clear(&c);
	free(text);
	return 0;
}
