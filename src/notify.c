/*
 * notify.c: the sd_notify(3) protocol spoken directly: one datagram per state
 * change to the AF_UNIX socket named by NOTIFY_SOCKET.  No libsystemd: a
 * daemon that starts as root should link as little as it can.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

static int	 notify_sock = -1;

/*
 * Connect to $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace)
 * before chroot and the privilege drop, and hide it from children.
 */
void
notify_init(void)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	const char		*path = getenv("NOTIFY_SOCKET");
	size_t			 len;

	if (path == NULL)
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len < 2 ||
	    len >= sizeof(sun.sun_path)) {
		log_warnx("NOTIFY_SOCKET: not a usable socket address");
		goto done;
	}
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	notify_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_sock == -1 || connect(notify_sock, (struct sockaddr *)&sun,
	    offsetof(struct sockaddr_un, sun_path) + len) == -1) {
		log_warn("NOTIFY_SOCKET %s", path);
		if (notify_sock != -1)
			close(notify_sock);
		notify_sock = -1;
	}
done:
	unsetenv("NOTIFY_SOCKET");
}

/* Send one notification, e.g. "READY=1"; silently nothing without systemd. */
void
notify_send(const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;
	int	 n;

	if (notify_sock == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(msg))
		return;
	(void)send(notify_sock, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The notify descriptor, or -1. */
int
notify_fd(void)
{
	return notify_sock;
}
