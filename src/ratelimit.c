/*
 * ratelimit.c: rate-limited logging.  One message of a kind gets through per
 * window and the rest are counted, so that a flood of refusals or repeated
 * failures (accept, fork) becomes a few lines with their counts.
 */
#include <errno.h>
#include <string.h>

#include "srvexample.h"

#define RATELIMIT_WINDOW_MS	5000

/* Is rl's window still open at now? */
static int
window_open(const struct ratelimit *rl, int64_t now)
{
	return rl->window_start != 0 && now - rl->window_start < RATELIMIT_WINDOW_MS;
}

/*
 * May a line of this kind be logged now?  If not it is counted, and the count
 * is logged when the window ends (ratelimit_flush), naming what as the kind
 * ("refusals").  When yes, a count left from the window just ended is logged
 * first, so that it is never read as the next burst's.
 */
int
ratelimit_allow(struct ratelimit *rl, int64_t now, const char *what)
{
	if (window_open(rl, now)) {
		rl->suppressed++;
		rl->what = what;
		return 0;
	}
	ratelimit_flush(rl, now);
	rl->window_start = now;
	return 1;
}

/* Log how many lines rl held back in the window that began at its start. */
static void
report(struct ratelimit *rl, int64_t now)
{
	log_info("%s not logged in the last %lld s: %lu", rl->what,
	    (long long)(now - rl->window_start + 500) / 1000, rl->suppressed);
	rl->suppressed = 0;
}

/* Once rl's window is over, log how many lines it held back, if any. */
void
ratelimit_flush(struct ratelimit *rl, int64_t now)
{
	if (rl->suppressed > 0 && !window_open(rl, now))
		report(rl, now);
}

/* At exit: log what rl held back, even though its window is not over. */
void
ratelimit_finish(struct ratelimit *rl, int64_t now)
{
	if (rl->suppressed > 0)
		report(rl, now);
}

/* When ratelimit_flush has a count to log (ms, monotonic), or -1. */
int64_t
ratelimit_deadline(const struct ratelimit *rl)
{
	return rl->suppressed == 0 ? -1 : rl->window_start + RATELIMIT_WINDOW_MS;
}

/*
 * Log "what: strerror(errno)" for a repeated failure at most once per window,
 * with "(repeated N times)" for those held back since the last one: the count
 * goes with the next failure, as the failure it counts is the same.
 */
void
log_repeated(struct ratelimit *rl, int64_t now, const char *what)
{
	unsigned long	 held;
	int		 saved = errno;

	if (window_open(rl, now)) {
		rl->suppressed++;
		return;
	}
	held = rl->suppressed;
	rl->suppressed = 0;
	rl->window_start = now;
	if (held > 0)
		log_warnx("%s: %s (repeated %lu times)", what, strerror(saved),
		    held);
	else
		log_warnx("%s: %s", what, strerror(saved));
	errno = saved;
}
