/*
 * lineserver.c: listen on loopback and answer one client, for the
 * benchmark's reference servers.  Nothing a measured server would not do:
 * no limits, no timeouts, no logging beyond the startup line.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lineserver.h"

/* Bind and listen on 127.0.0.1 port; print the port actually bound. */
int
ls_listen(const char *port)
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

/*
 * Answer the client on fd: its line with LS_PREFIX in front, then a
 * half-close and a drain to EOF, so the client reads a clean end; close
 * fd.  Returns the length of the line (0 when none came or it could not
 * be answered).
 */
size_t
ls_answer(int fd)
{
	char	 buf[sizeof(LS_PREFIX) - 1 + LS_MAXLINE];
	size_t	 plen = sizeof(LS_PREFIX) - 1, len;

	memcpy(buf, LS_PREFIX, plen);
	len = read_line(fd, buf + plen, LS_MAXLINE);
	if (len > 0 && write(fd, buf, plen + len) == -1) {
		close(fd);
		return 0;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return len;
}
