/*
 * server.h: the parent's state, shared by its loop (server.c) and its
 * decisions about clients (admit.c); private to those two files.
 */
#ifndef SERVER_H
#define SERVER_H

struct server {
	struct server_ctx	*ctx;
	struct conf		*conf;
	int			 sigfd;
	int			 reservefd;	/* given up when descriptors run out */
	struct children		 kids;
	struct stats		 st;
	char			*buf;		/* the children's line buffer */
	struct pollfd		*pfd;
	pid_t			*ctlpid;	/* the child behind each ctl pollfd */
	size_t			 pfdcap;
	int64_t			 paused_until;
	int			 pause_ms;
	int			 stopping;
	int64_t			 stop_deadline;
	int			 terminated;	/* SIGTERM sent to children */
	struct ratelimit	 rl_accept, rl_fork, rl_refused, rl_crash;
	struct lingers		*lingers;
	struct penalty		*pen;
};

/* server.c */
void	 server_reap(struct server *, int64_t);
void	 server_spawn(struct server *, int, const struct sockaddr_storage *,
	    const struct addrmask *, int, int64_t);

/* admit.c */
void	 admit_client(struct server *, int, struct sockaddr_storage *, int64_t);
void	 admit_refuse(struct server *, int, const struct sockaddr_storage *,
	    const char *, const char *, int64_t);
void	 admit_report(struct server *, pid_t, int64_t);
void	 admit_report_dead(struct server *, struct child *, int64_t);

#endif /* SERVER_H */
