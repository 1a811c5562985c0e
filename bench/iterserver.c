/*
 * iterserver: the minimal iterative line-echo server, a second reference
 * for srvexample: refserver without fork(), so one client at a time.
 * Accept, answer one line with "You said:" + line, close gracefully.
 *
 * usage: iterserver [port]	(127.0.0.1; port 0 or none: any free port)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/socket.h>

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "lineserver.h"

/* Accept forever, serving one client at a time. */
int
main(int argc, char *argv[])
{
	int	 lfd, fd;

	if (argc > 2) {
		fprintf(stderr, "usage: iterserver [port]\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = ls_listen(argc == 2 ? argv[1] : "0");
	fprintf(stderr, "ready: iterserver, pid %ld\n", (long)getpid());
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			continue;
		ls_answer(fd);
	}
}
