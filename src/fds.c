/*
 * fds.c: what a forked process keeps of the parent's descriptors.  Both the
 * children and the resolver start from a copy of the parent's table and
 * close all of it but the few they are to use.
 */
#include <unistd.h>

#include "srvexample.h"

/*
 * Close every descriptor but stdio and the n in keep (-1, stdio or a
 * duplicate among them is ignored); keep is sorted in place.  -1 when the
 * kernel cannot (close_range(2) is Linux 5.9).
 */
int
fds_close_except(int *keep, int n)
{
	unsigned int	 lo = 3;
	int		 t, i, j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (keep[j] < keep[i]) {
				t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned int)keep[i] > lo &&
		    close_range(lo, keep[i] - 1, 0) == -1)
			return -1;
		lo = keep[i] + 1;
	}
	return close_range(lo, ~0U, 0);
}
