/*
 * inetd.c: -i, serve the one client already connected on standard input
 * (inetd, xinetd, tcpserver, systemd Accept=yes) with the same protocol and
 * limits, then exit.  No listening, no forking.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdlib.h>
#include <unistd.h>

#include "srvexample.h"

/* Serve the client on fd 0 and exit; returns only on a setup error. */
int
inetd_serve(const struct conf *c, const struct privdrop *pd)
{
	struct sockaddr_storage	 ss;
	struct addrmask		 host;
	struct child_ctx	 cx;
	struct names_query	 q;
	struct names_answer	 name;
	socklen_t		 len = sizeof(ss);
	char			 ip[INET6_ADDRSTRLEN];
	char			*buf;

	if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &len) == -1) {
		log_warn("-i: standard input is not a connected socket");
		return -1;
	}
	addr_normalize(&ss);
	if (c->proxy_protocol) {
		log_warnx("-i: proxy-protocol is not supported with -i");
		return -1;
	}
	if (privdrop_apply(pd, c->chroot) == -1)
		return -1;
	/* One client, no children: its name is looked up here, before the
	   filter, which no NSS module's code could live with. */
	if (c->resolve) {
		names_query_init(&q, &ss);
		names_lookup(&q, &name);
	}
	if (sandbox_parent(-1, -1, 0) == -1)
		return -1;
	addr_from_sockaddr(&ss, &host);
	if (c->nacl > 0 && !conf_acl_allows(c, &host, NULL)) {
		log_info("denied client from inetd, closing");
		session_linger(STDIN_FILENO);
		_exit(OUTCOME_DENIED);
	}
	if ((buf = malloc(session_bufsize(c->max_line))) == NULL) {
		log_warn("malloc");
		return -1;
	}
	child_ctx_init(&cx, STDIN_FILENO, &ss, addr_ntop(&ss, ip, sizeof(ip)), c,
	    buf, clock_ms());
	if (c->resolve)
		cx.name = &name;
	child_signals_ignore();
	child_main(&cx);
}
