/*
 * namecache.c: the resolver process's memory of the names it looked up
 * (resolve-cache), so that a client that comes back costs its child one
 * question and no lookup.  Only the resolver writes it, with what it found
 * itself: a child names an address, never an answer, so no client can
 * choose what is remembered.  The callers (resolver.c's threads) hold one
 * lock around every call.
 *
 * A hash of NAMECACHE_SIZE entries keyed by the address (with a random
 * seed, so that no client can aim at one bucket), probed over PROBES
 * entries; a new name takes a free or stale entry there, else the one that
 * expires soonest.  Static and zero: resident only as far as entries are
 * used.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "srvexample.h"

#define NAMECACHE_SIZE	4096	/* a power of two */
#define PROBES		8

struct name_entry {
	int64_t			 expires;	/* ms, monotonic; 0: free */
	uint8_t			 family;
	uint8_t			 addr[16];
	struct names_answer	 answer;
};

static struct name_entry names[NAMECACHE_SIZE];
static uint32_t		 seed;

/* Where q's address is looked for first. */
static uint32_t
home(const struct names_query *q)
{
	uint32_t	 h;
	size_t		 i;

	if (seed == 0)
		seed = arc4random() | 1;
	h = 2166136261U ^ seed;		/* FNV-1a */
	h = (h ^ q->family) * 16777619U;
	for (i = 0; i < sizeof(q->addr); i++)
		h = (h ^ q->addr[i]) * 16777619U;
	return h & (NAMECACHE_SIZE - 1);
}

static int
same(const struct name_entry *e, const struct names_query *q)
{
	return e->family == q->family &&
	    memcmp(e->addr, q->addr, sizeof(e->addr)) == 0;
}

/* The remembered answer for q's address into a: 1, or 0 when unknown or
 * stale. */
int
namecache_get(const struct names_query *q, int64_t now, struct names_answer *a)
{
	struct name_entry	*e;
	uint32_t		 h = home(q), i;

	for (i = 0; i < PROBES; i++) {
		e = &names[(h + i) & (NAMECACHE_SIZE - 1)];
		if (e->expires > now && same(e, q)) {
			*a = e->answer;
			return 1;
		}
	}
	return 0;
}

/* Remember a for q's address until expires. */
void
namecache_put(const struct names_query *q, const struct names_answer *a,
    int64_t expires)
{
	struct name_entry	*e, *victim = NULL;
	uint32_t		 h = home(q), i;

	for (i = 0; i < PROBES; i++) {
		e = &names[(h + i) & (NAMECACHE_SIZE - 1)];
		if (e->expires != 0 && same(e, q)) {
			victim = e;
			break;
		}
		if (victim == NULL || e->expires < victim->expires)
			victim = e;
	}
	victim->family = q->family;
	memcpy(victim->addr, q->addr, sizeof(victim->addr));
	victim->answer = *a;
	victim->expires = expires;
}

/* Forget every name (SIGHUP: the resolver's files may have changed). */
void
namecache_clear(void)
{
	size_t	 i;

	for (i = 0; i < NAMECACHE_SIZE; i++)
		if (names[i].expires != 0)	/* unused pages stay untouched */
			names[i].expires = 0;
}
