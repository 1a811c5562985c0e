/*
 * sources.c: what the parent remembers about each client source (an address
 * masked by source-prefix): its live children, its rate-per-source bucket
 * and its penalty.  A keyed hash finds an entry in O(1); at most SOURCES_MAX
 * entries exist, so an attacker with many addresses costs bounded memory.
 *
 * An entry with no live child is idle and carries only times: when its
 * penalty ends and when its bucket is full again.  Idle entries sit in a
 * heap by the later of the two, so that when the table is full the one that
 * expires soonest is reused, and accepting never stops for want of room.
 * An entry whose times have passed holds nothing and is reused first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "srvexample.h"
#include "parent.h"

#define NBUCKETS	(SOURCES_MAX * 2)	/* a power of two */
#define RATE_WINDOW_US	60000000LL		/* rate-per-source is per minute */

/* The heap tells each entry where it sits. */
static void
idle_moved(void *ctx, uint32_t id, size_t pos)
{
	struct sources	*t = ctx;

	t->v[id].heappos = (uint32_t)pos;
}

/* Allocate the table, out of the children's reach (table.c); its pages
 * become resident only as entries are used. */
int
sources_init(struct sources *t)
{
	memset(t, 0, sizeof(*t));
	if ((t->v = table_alloc(SOURCES_MAX, sizeof(*t->v))) == NULL ||
	    (t->bucket = table_alloc(NBUCKETS, sizeof(*t->bucket))) == NULL) {
		sources_free(t);
		return -1;
	}
	t->idle.moved = idle_moved;
	t->idle.ctx = t;
	t->seed = ((uint64_t)arc4random() << 32) | arc4random();
	return 0;
}

void
sources_free(struct sources *t)
{
	table_free(t->v, SOURCES_MAX, sizeof(*t->v));
	table_free(t->bucket, NBUCKETS, sizeof(*t->bucket));
	heap_free(&t->idle);
	t->v = NULL;
	t->bucket = NULL;
}

/* The bucket of key: a multiply-xorshift hash keyed by a random seed, so a
 * client cannot choose addresses that all fall into one chain. */
static uint32_t
hash(const struct sources *t, const struct addrmask *key)
{
	uint64_t	 h = t->seed ^ (uint64_t)key->family, w;
	int		 i;

	for (i = 0; i < 16; i += 8) {
		memcpy(&w, key->addr + i, sizeof(w));
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	h = (h ^ (uint64_t)key->prefixlen) * 0xbf58476d1ce4e5b9ULL;
	return (uint32_t)(h ^ (h >> 32)) & (NBUCKETS - 1);
}

static int
same_key(const struct addrmask *a, const struct addrmask *b)
{
	return a->family == b->family && a->prefixlen == b->prefixlen &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* The entry for key, or NULL. */
struct source *
sources_find(struct sources *t, const struct addrmask *key)
{
	uint32_t	 i;

	for (i = t->bucket[hash(t, key)]; i != 0; i = t->v[i - 1].next)
		if (same_key(&t->v[i - 1].key, key))
			return &t->v[i - 1];
	return NULL;
}

uint32_t
sources_index(const struct sources *t, const struct source *e)
{
	return (uint32_t)(e - t->v);
}

struct source *
sources_at(struct sources *t, uint32_t i)
{
	return &t->v[i];
}

/* When an idle entry stops meaning anything: its penalty and bucket. */
static int64_t
expiry(const struct source *e)
{
	int64_t	 full = e->tat_us / 1000 + 1;

	return e->penalty_until > full ? e->penalty_until : full;
}

/* Take the entry out of the hash (and the idle heap) for reuse. */
static void
unlink_entry(struct sources *t, struct source *e)
{
	uint32_t	*p, self = sources_index(t, e) + 1;

	if (e->heappos != 0)
		heap_remove(&t->idle, e->heappos - 1);
	for (p = &t->bucket[hash(t, &e->key)]; *p != self; p = &t->v[*p - 1].next)
		;
	*p = e->next;
	t->live--;
}

/* Forget the entry. */
static void
free_entry(struct sources *t, struct source *e)
{
	unlink_entry(t, e);
	memset(e, 0, sizeof(*e));
	e->next = t->freelist;
	t->freelist = sources_index(t, e) + 1;
}

/* An entry to fill: a free one, else the idle one that expires soonest;
 * NULL only when every entry serves a live child. */
static struct source *
take_entry(struct sources *t, int64_t now)
{
	const struct heap_node *top = heap_top(&t->idle);
	struct source	*e;

	if (top != NULL && (top->key <= now || (t->freelist == 0 &&
	    t->used == SOURCES_MAX))) {
		e = &t->v[top->id];
		unlink_entry(t, e);
		memset(e, 0, sizeof(*e));
		return e;
	}
	if (t->freelist != 0) {
		e = &t->v[t->freelist - 1];
		t->freelist = e->next;
		e->next = 0;
		return e;
	}
	if (t->used < SOURCES_MAX)
		return &t->v[t->used++];
	return NULL;
}

/* The entry for key, made when there is none; NULL when the table is full
 * of sources with live children. */
struct source *
sources_get(struct sources *t, const struct addrmask *key, int64_t now)
{
	struct source	*e;
	uint32_t	 b;

	if ((e = sources_find(t, key)) != NULL)
		return e;
	if ((e = take_entry(t, now)) == NULL)
		return NULL;
	e->key = *key;
	b = hash(t, key);
	e->next = t->bucket[b];
	t->bucket[b] = sources_index(t, e) + 1;
	t->live++;
	return e;		/* idle, in no heap: the caller attaches a child */
}

/* Put an idle entry where it belongs: the heap, or free when it is empty. */
static void
settle(struct sources *t, struct source *e, int64_t now)
{
	if (e->children > 0)
		return;
	if (e->heappos != 0)
		heap_remove(&t->idle, e->heappos - 1);
	if (expiry(e) <= now ||
	    heap_push(&t->idle, sources_index(t, e), expiry(e)) == -1)
		free_entry(t, e);
}

/* A child now serves the source. */
void
sources_attach(struct sources *t, struct source *e)
{
	if (e->children++ == 0 && e->heappos != 0)
		heap_remove(&t->idle, e->heappos - 1);
}

/* A child of the source is gone. */
void
sources_detach(struct sources *t, struct source *e, int64_t now)
{
	if (e->children > 0)
		e->children--;
	settle(t, e, now);
}

/*
 * rate-per-source as a token bucket of n tokens refilled at n per minute,
 * kept as one time (the generic cell rate algorithm): each connection moves
 * the theoretical arrival time on by a minute / n; a connection is allowed
 * while that time is less than a minute ahead of now.
 */
int
sources_rate_ok(const struct source *e, int n, int64_t now)
{
	int64_t	 step = RATE_WINDOW_US / n;

	return e == NULL || e->tat_us - now * 1000 <= RATE_WINDOW_US - step;
}

/* Take a token (the caller checked sources_rate_ok). */
void
sources_rate_take(struct source *e, int n, int64_t now)
{
	int64_t	 now_us = now * 1000;

	e->tat_us = (e->tat_us > now_us ? e->tat_us : now_us) +
	    RATE_WINDOW_US / n;
}

/*
 * Add a penalty of secs to the source: penalties of every cause add up from
 * now, never beyond max_secs from now; the latest cause is remembered.
 */
void
sources_penalise(struct sources *t, struct source *e, enum penalty_cause why,
    int secs, int max_secs, int64_t now)
{
	int64_t	 until, cap = now + max_secs * 1000LL;

	until = (e->penalty_until > now ? e->penalty_until : now) +
	    secs * 1000LL;
	e->penalty_until = until < cap ? until : cap;
	e->cause = why;
	settle(t, e, now);
}
