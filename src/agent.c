/*
 * agent.c: HAProxy's agent check, answered by the parent itself.
 *
 * HAProxy connects to agent-port, reads one line and closes.  The parent
 * accepts, writes "up N%" (N: the free share of max-children, at least 1,
 * so that a full server keeps a little weight rather than none) or "drain"
 * during shutdown-delay, and ends the connection with a lingering close:
 * no fork, no log record, no counter.  It is bounded like the refusals: a
 * small backlog, a few accepts per wakeup, and when every lingering slot is
 * taken the connection is closed without an answer.
 *
 * The sockets are opened on every listen address before the privilege
 * drop, or taken from systemd (the socket named "agent" in LISTEN_FDNAMES,
 * kept apart by listen.c).  Children close them with every other
 * inherited descriptor.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

#define AGENT_MAX	(CONF_MAX_LISTEN * 2)
#define AGENT_BACKLOG	16	/* connections the kernel holds for us */
#define AGENT_BATCH	16	/* accepts per socket per wakeup */
#define AGENT_PAUSE_MS	1000	/* after running out of descriptors */

static int	 agent_fd[AGENT_MAX];
static int	 agent_n;
static int64_t	 agent_paused_until;	/* 0: not paused */

/*
 * Open the agent's sockets: those systemd passed, else agent-port on every
 * listen address.  -1 (logged) on error; 0 with none wanted.
 */
int
agent_open(const struct conf *c)
{
	struct conf	*ac;
	int		 n;

	if ((agent_n = listen_inherited_agent(agent_fd, AGENT_MAX)) > 0) {
		if (c->agent_port != 0)
			log_info("socket activation: agent-port is ignored");
		return 0;
	}
	if (c->agent_port == 0)
		return 0;
	/* The same addresses as the clients', on the agent's port. */
	if ((ac = malloc(sizeof(*ac))) == NULL) {
		log_warn("agent");
		return -1;
	}
	*ac = *c;
	ac->port = c->agent_port;
	ac->backlog = AGENT_BACKLOG;
	n = listen_open(ac, agent_fd, AGENT_MAX);
	free(ac);
	if (n == -1)
		return -1;
	agent_n = n;
	log_info("agent-port %d: answering HAProxy's agent check", c->agent_port);
	return 0;
}

/* How many agent sockets there are, and the i-th. */
int
agent_count(void)
{
	return agent_n;
}

int
agent_fd_at(int i)
{
	return i < agent_n ? agent_fd[i] : -1;
}

/* Close the agent's sockets (shutdown). */
void
agent_close(void)
{
	listen_close(agent_fd, agent_n);
}

/* The line to send now. */
static int
agent_line(const struct server *s, char *buf, size_t len)
{
	long	 max = s->conf->max_children, used = s->kids.n, pct;

	if (s->draining || s->stopping)
		return snprintf(buf, len, "drain\n");
	pct = used >= max ? 0 : (max - used) * 100 / max;
	return snprintf(buf, len, "up %ld%%\n", pct < 1 ? 1 : pct);
}

/* Watch or stop watching the agent's sockets in the loop's epoll set. */
static void
agent_watch(struct server *s, int on)
{
	struct epoll_event	 ev;
	int			 i;

	for (i = 0; i < agent_n; i++) {
		if (agent_fd[i] == -1)
			continue;
		ev.events = on ? EPOLLIN : 0;
		ev.data.u64 = EV_AGENT | (uint32_t)i;
		(void)epoll_ctl(s->epfd, EPOLL_CTL_MOD, agent_fd[i], &ev);
	}
}

/* Out of descriptors: stop watching for a while, or the loop would spin
 * on a socket that stays readable. */
static void
agent_pause(struct server *s, int64_t now)
{
	agent_watch(s, 0);
	agent_paused_until = now + AGENT_PAUSE_MS;
}

/* When the pause is over, watch again. */
void
agent_resume(struct server *s, int64_t now)
{
	if (agent_paused_until != 0 && now >= agent_paused_until) {
		agent_paused_until = 0;
		agent_watch(s, 1);
	}
}

/* When the pause ends, for the loop's timeout; -1 when not paused. */
int64_t
agent_pause_end(void)
{
	return agent_paused_until != 0 ? agent_paused_until : -1;
}

/* Answer what is waiting on agent socket i: one line each, then close. */
void
agent_ready(struct server *s, uint32_t i, int64_t now)
{
	char	 line[32];
	int	 k, fd, n;

	if ((int)i >= agent_n || agent_fd[i] == -1)
		return;
	for (k = 0; k < AGENT_BATCH; k++) {
		if ((fd = accept4(agent_fd[i], NULL, NULL, SOCK_CLOEXEC)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				agent_pause(s, now);
			return;
		}
		if (s->lingers->n == LINGER_SLOTS) {
			close(fd);	/* overwhelmed: no answer */
			continue;
		}
		n = agent_line(s, line, sizeof(line));
		(void)send(fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		linger_start(s->lingers, fd, now);
	}
}
