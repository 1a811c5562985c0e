/*
 * clock.c: the one clock the daemon uses for deadlines: monotonic milliseconds.
 */
#include <time.h>

#include "srvexample.h"

/* Milliseconds of CLOCK_MONOTONIC (served from the vDSO, no system call). */
int64_t
clock_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
