/*
 * refserver: the minimal fork-per-connection line-echo server, the ceiling
 * srvexample is measured against.  Accept, fork, answer one line with
 * "You said:" + line, close gracefully, _exit.  Nothing else: no limits,
 * no timeouts, no logging beyond the startup lines.  (The listening and
 * the answer are in lineserver.c, shared with iterserver and ladder.)
 *
 * usage: refserver [port]	(127.0.0.1; port 0 or none: any free port)
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

/* Accept forever, forking one child per client. */
int
main(int argc, char *argv[])
{
	int	 lfd, fd;

	if (argc > 2) {
		fprintf(stderr, "usage: refserver [port]\n");
		return 1;
	}
	signal(SIGCHLD, SIG_IGN);	/* children are reaped by the kernel */
	signal(SIGPIPE, SIG_IGN);
	lfd = ls_listen(argc == 2 ? argv[1] : "0");
	fprintf(stderr, "ready: refserver, pid %ld\n", (long)getpid());
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			continue;
		switch (fork()) {
		case 0:
			close(lfd);
			ls_answer(fd);
			_exit(0);
		default:
			close(fd);
			break;
		}
	}
}
