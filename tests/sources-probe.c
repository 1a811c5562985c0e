/*
 * sources-probe: drives the parent's per-source table (src/sources.c) at
 * its real size, for tests/abuse.bats: no daemon could fill 65,536
 * sources within a test's few seconds.  Each check prints "ok NAME" or
 * "FAIL NAME: why" and the exit status is 1 if any failed.  The last line
 * reports the cost of one lookup-or-insert while the table is full (for
 * the record, not checked).
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srvexample.h"
#include "parent.h"

#define CHURN	1000000

static int	 failed;

static void
result(const char *name, int ok, const char *why)
{
	if (ok)
		printf("ok %s\n", name);
	else {
		printf("FAIL %s: %s\n", name, why);
		failed = 1;
	}
}

/* Source number i: an IPv4 /32 in 10.0.0.0/8 and beyond. */
static struct addrmask
key(uint32_t i)
{
	struct addrmask	 k;

	memset(&k, 0, sizeof(k));
	k.family = AF_INET;
	k.prefixlen = 32;
	k.addr[0] = 10 + (uint8_t)(i >> 24);
	k.addr[1] = (uint8_t)(i >> 16);
	k.addr[2] = (uint8_t)(i >> 8);
	k.addr[3] = (uint8_t)i;
	return k;
}

/* The penalty, in seconds, of source i: distinct for the first 65,536. */
static int
secs_of(uint32_t i)
{
	return 100 + (int)((i * 40503u) & 0xffff);
}

int
main(void)
{
	struct sources	 t;
	struct source	*e, *held;
	struct addrmask	 k;
	struct timespec	 a, b;
	int64_t		 now = 1000;
	uint32_t	 i, gone;
	int		 ok;

	if (sources_init(&t) == -1) {
		perror("sources_init");
		return 1;
	}
	/* 1. Full of sources with a live child each: a new one gets nothing. */
	for (i = 0, ok = 1; i < SOURCES_MAX; i++) {
		k = key(i);
		if ((e = sources_get(&t, &k, now)) == NULL) {
			ok = 0;
			break;
		}
		sources_attach(&t, e);
	}
	result("65536 sources with children fit", ok && t.live == SOURCES_MAX,
	    "an entry was refused before the table was full");
	k = key(SOURCES_MAX);
	result("a 65537th source gets no entry while all have children",
	    sources_get(&t, &k, now) == NULL, "an entry with a child was reused");

	/* 2. Each ends with a penalty of its own; then 1,000 new sources
	 * take the entries that expire soonest, and only those. */
	for (i = 0; i < SOURCES_MAX; i++) {
		k = key(i);
		e = sources_find(&t, &k);
		sources_penalise(&t, e, PENALTY_CRASH, secs_of(i), 86400, now);
		sources_detach(&t, e, now);
	}
	for (i = 0; i < 1000; i++) {
		k = key(SOURCES_MAX + i);
		if ((e = sources_get(&t, &k, now)) == NULL)
			break;
	}
	result("new sources find room in a full table of idle sources",
	    i == 1000 && t.live == SOURCES_MAX, "sources_get returned NULL");
	for (i = 0, ok = 1, gone = 0; i < SOURCES_MAX; i++) {
		k = key(i);
		if (sources_find(&t, &k) == NULL) {
			gone++;
			if (secs_of(i) >= 100 + 1000)
				ok = 0;
		}
	}
	result("the entries reused are those whose penalty ends soonest",
	    ok && gone == 1000, "a later-expiring entry was reused");

	/* 3. One source keeps a child while a million others pass: it is
	 * never forgotten, memory stays at SOURCES_MAX entries. */
	k = key(7);
	if ((held = sources_find(&t, &k)) == NULL) {
		k = key(SOURCES_MAX + 1);
		held = sources_find(&t, &k);
	}
	sources_attach(&t, held);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	for (i = 0, ok = 1; i < CHURN; i++) {
		k = key(2 * SOURCES_MAX + i);
		now += i % 16 == 0;
		if ((e = sources_get(&t, &k, now)) == NULL ||
		    t.used > SOURCES_MAX || t.live > SOURCES_MAX) {
			ok = 0;
			break;
		}
		sources_attach(&t, e);
		sources_rate_take(e, 1, now);
		sources_detach(&t, e, now);
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	result("a million new sources: always room, never more than 65536 entries",
	    ok, "no entry, or the table grew");
	result("a source with a live child is never reused",
	    sources_find(&t, &held->key) == held && held->children == 1,
	    "the held source was forgotten");
	printf("churn: %.0f ns of CPU per new source with the table full\n",
	    ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / CHURN);
	sources_free(&t);
	return failed;
}
