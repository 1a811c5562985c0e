/*
 * ratelimit.c: let one message of a kind through per window and count the rest,
 * so that repeated failures (accept, fork, denied clients) become a summary.
 */
#include "srvexample.h"

#define RATELIMIT_WINDOW_MS	5000

/*
 * May a message be logged now?  When yes, *suppressed is how many were held
 * back since the last one (for "repeated N times"), and the window restarts.
 */
int
ratelimit_allow(struct ratelimit *rl, int64_t now, unsigned long *suppressed)
{
	if (rl->window_start != 0 && now - rl->window_start < RATELIMIT_WINDOW_MS) {
		rl->suppressed++;
		return 0;
	}
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	rl->window_start = now;
	return 1;
}
