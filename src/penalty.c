/*
 * penalty.c: sources whose child crashed, refused for crash-penalty seconds.
 * Forking without exec gives every child the parent's stack canary and
 * address layout, so a source must not get unlimited tries at guessing them
 * (sshd's PerSourcePenalties).  A bounded table: when full, the entry that
 * expires first makes room.
 */
#include <string.h>

#include "srvexample.h"

#define PENALTY_MAX	(sizeof(((struct penalty *)0)->v) / \
			    sizeof(((struct penalty *)0)->v[0]))

/* Drop expired entries. */
static void
penalty_expire(struct penalty *p, int64_t now)
{
	size_t	 i;

	for (i = p->n; i-- > 0;)
		if (p->v[i].until <= now)
			p->v[i] = p->v[--p->n];
}

/* Refuse source until the given time (extending any earlier penalty). */
void
penalty_add(struct penalty *p, const struct addrmask *source, int64_t until)
{
	size_t	 i, victim = 0;

	for (i = 0; i < p->n; i++)
		if (memcmp(&p->v[i].source, source, sizeof(*source)) == 0) {
			if (p->v[i].until < until)
				p->v[i].until = until;
			return;
		}
	if (p->n == PENALTY_MAX) {
		for (i = 1; i < p->n; i++)
			if (p->v[i].until < p->v[victim].until)
				victim = i;
		p->v[victim] = p->v[--p->n];
	}
	p->v[p->n].source = *source;
	p->v[p->n].until = until;
	p->n++;
}

/* Is source being refused at time now? */
int
penalty_active(struct penalty *p, const struct addrmask *source, int64_t now)
{
	size_t	 i;

	if (p->n == 0)
		return 0;
	penalty_expire(p, now);
	for (i = 0; i < p->n; i++)
		if (memcmp(&p->v[i].source, source, sizeof(*source)) == 0)
			return 1;
	return 0;
}
