/*
 * namecache.c: the memory of the names the resolver looked up
 * (resolve-cache), so that a client that comes back costs no lookup.  Two
 * processes keep one each: the resolver, which answers a child's question
 * from it, and the parent, which hands a known name to the child at its
 * fork, so that the child asks nothing.  Both are written with what the
 * resolver found itself (the parent's from resolver.c's reports): a child
 * names an address, never an answer, so no client can choose what is
 * remembered.  The resolver's callers (its threads) hold one lock around
 * every call; the parent has one thread.
 *
 * A hash of NAMECACHE_SIZE entries keyed by the address (with a random
 * seed, so that no client can aim at one bucket), probed over PROBES
 * entries; a new name takes a free or stale entry there, else the one that
 * expires soonest.  Zeroed memory of its own, resident only as far as
 * entries are used, and not inherited by children (table.c).
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "srvexample.h"
#include "parent.h"

#define NAMECACHE_SIZE	4096	/* a power of two */
#define PROBES		8

struct name_entry {
	int64_t			 expires;	/* ms, monotonic; 0: free */
	uint8_t			 family;
	uint8_t			 addr[16];
	struct names_answer	 answer;
};

static struct name_entry *names;	/* NULL: none yet, nothing known */
static uint32_t		 seed;

/* Make the memory, once per process that keeps names; -1 (logged) when
 * there is none: names are then looked up every time. */
int
namecache_init(void)
{
	if (names == NULL &&
	    (names = table_alloc(NAMECACHE_SIZE, sizeof(*names))) == NULL) {
		log_warn("resolve-cache: no memory");
		return -1;
	}
	return 0;
}

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
	uint32_t		 h, i;

	if (names == NULL)
		return 0;
	h = home(q);
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
	uint32_t		 h, i;

	if (names == NULL)
		return;
	h = home(q);
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

	if (names == NULL)
		return;
	for (i = 0; i < NAMECACHE_SIZE; i++)
		if (names[i].expires != 0)	/* unused pages stay untouched */
			names[i].expires = 0;
}
