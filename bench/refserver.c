/*
 * refserver: the minimal fork-per-connection line-echo server, the ceiling
 * srvexample is measured against.  Accept, fork, answer one line with
 * "You said:" + line, close gracefully, _exit.  Nothing else: no limits,
 * no timeouts, no logging beyond the startup lines.
 *
 * usage: refserver [port]	(127.0.0.1; port 0 or none: any free port)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX	"You said:"
#define MAXLINE	4096

/* Bind and listen on 127.0.0.1 port; print the port actually bound. */
static int
listen_on(const char *port)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	char			*end;
	long			 p;
	int			 fd, one = 1;

	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || p < 0 || p > 65535)
		errx(1, "invalid port \"%s\"", port);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)p);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		err(1, "setsockopt");
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(1, "bind 127.0.0.1 port %s", port);
	if (listen(fd, SOMAXCONN) == -1)
		err(1, "listen");
	if (getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		err(1, "getsockname");
	fprintf(stderr, "listening on 127.0.0.1 port %u\n",
	    (unsigned)ntohs(sin.sin_port));
	return fd;
}

/* Read until a newline, EOF or a full buffer; return the length. */
static size_t
read_line(int fd, char *buf, size_t size)
{
	char	*nl;
	size_t	 len = 0;
	ssize_t	 n;

	while (len < size) {
		n = read(fd, buf + len, size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl != NULL)
			return (size_t)(nl - buf) + 1;
	}
	return len;
}

/* Serve one client: answer its line, half-close, drain to EOF, exit. */
static void
serve(int fd)
{
	char	 buf[sizeof(PREFIX) - 1 + MAXLINE];
	size_t	 plen = sizeof(PREFIX) - 1, len;

	memcpy(buf, PREFIX, plen);
	len = read_line(fd, buf + plen, MAXLINE);
	if (len > 0 && write(fd, buf, plen + len) == -1)
		_exit(1);
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	_exit(0);
}

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
	lfd = listen_on(argc == 2 ? argv[1] : "0");
	fprintf(stderr, "ready: refserver, pid %ld\n", (long)getpid());
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			continue;
		switch (fork()) {
		case 0:
			close(lfd);
			serve(fd);
			break;
		default:
			close(fd);
			break;
		}
	}
}
