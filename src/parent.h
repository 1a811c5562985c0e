/*
 * parent.h: what only the parent process has: its loop, the table of live
 * children, the per-source state and the admission policy.  A child never
 * reads any of it (it leaves through child_main() right after fork), so
 * nothing here is shared across the fork boundary, and the tables that grow
 * with the children (table.c) are not even mapped in a child; srvexample.h
 * holds what both sides use.
 */
#ifndef PARENT_H
#define PARENT_H

#include <sys/types.h>

#include <signal.h>
#include <stdint.h>

/* The signal a child's exit sends the parent: a realtime signal, queued
 * once per child with its pid, where SIGCHLD would be merged. */
#define SE_EXIT_SIGNAL	SIGRTMIN

/* table.c: zeroed memory for the parent's tables, which fork(2) does not
 * copy into any child (MADV_DONTFORK): a child that touched it would fault. */
void	*table_alloc(size_t, size_t);
void	*table_resize(void *, size_t, size_t, size_t);
void	 table_free(void *, size_t, size_t);

/* heap.c: an indexed min-heap of (key, id); the owner of the ids is told
 * each id's position, so that any element can be removed in O(log n). */
struct heap_node {
	int64_t		 key;
	uint32_t	 id;
};
struct heap {
	struct heap_node *v;
	size_t		 n;
	size_t		 cap;
	/* Called with pos + 1 for every id placed, 0 when it leaves. */
	void		(*moved)(void *, uint32_t, size_t);
	void		*ctx;
};
int	 heap_push(struct heap *, uint32_t, int64_t);
void	 heap_remove(struct heap *, size_t);
const struct heap_node *heap_top(const struct heap *);
void	 heap_free(struct heap *);

/* sources.c: per-source state, bounded (SOURCES_MAX), O(1) per client. */
#define SOURCES_MAX	65536
enum penalty_cause {
	PENALTY_NONE = 0,
	PENALTY_CRASH,		/* crash-penalty */
	PENALTY_TIMEOUT		/* timeout-penalty */
};
struct source {
	struct addrmask	 key;		/* masked with source-prefix */
	uint32_t	 next;		/* hash chain: index + 1, 0 ends */
	uint32_t	 heappos;	/* in the idle heap: position + 1 */
	uint32_t	 children;	/* live children serving it */
	uint8_t		 cause;		/* enum penalty_cause of the latest */
	int64_t		 penalty_until;	/* ms, monotonic */
	int64_t		 tat_us;	/* rate: theoretical arrival time, us */
};
struct sources {
	struct source	*v;		/* SOURCES_MAX entries, zeroed */
	uint32_t	*bucket;	/* hash heads: index + 1 */
	uint32_t	 used;		/* entries ever handed out */
	uint32_t	 live;		/* entries in the hash */
	uint32_t	 freelist;	/* index + 1 */
	struct heap	 idle;		/* entries with no child, by expiry */
	uint64_t	 seed;		/* keys the hash against collisions */
};
int	 sources_init(struct sources *);
void	 sources_free(struct sources *);
struct source *sources_find(struct sources *, const struct addrmask *);
struct source *sources_get(struct sources *, const struct addrmask *,
	    int64_t);
uint32_t sources_index(const struct sources *, const struct source *);
struct source *sources_at(struct sources *, uint32_t);
void	 sources_attach(struct sources *, struct source *);
void	 sources_detach(struct sources *, struct source *, int64_t);
void	 sources_rate_take(struct source *, int, int64_t);
int	 sources_rate_ok(const struct source *, int, int64_t);
void	 sources_penalise(struct sources *, struct source *, enum penalty_cause,
	    int, int, int64_t);

/* policy.c: what to do with a client, from the configuration, the source's
 * state and the address alone: no I/O, nothing changed. */
enum refusal {
	REFUSAL_NONE = 0,
	REFUSAL_MAX_PER_SOURCE,
	REFUSAL_RATE,
	REFUSAL_CRASH_PENALTY,
	REFUSAL_TIMEOUT_PENALTY,
	REFUSAL_PROXY,
	REFUSAL_BUSY,
	REFUSAL_MAX
};
struct decision {
	enum verdict	 verdict;
	enum refusal	 refusal;	/* why, when refused */
	int		 rule;		/* index of the matching acl rule, -1 */
	int		 exempt;
	int		 proxy_trusted;
	struct addrmask	 host;		/* the client */
	struct addrmask	 source;	/* host masked with source-prefix */
};
void	 policy_decide(const struct conf *, struct sources *,
	    const struct sockaddr_storage *, int64_t, struct decision *);
const char *policy_refusal_name(enum refusal);
int	 policy_dry_run(const struct conf *, const char *);

/* children.c: the live children, by slot, found by pid in O(1), with
 * their deadlines. */
struct child {
	pid_t		 pid;
	int		 ctl;		/* behind a balancer: its report socket
					   until read; else -1 */
	uint32_t	 source;	/* sources index + 1; 0: none */
	uint32_t	 heappos;	/* in the deadline heap: position + 1 */
	uint32_t	 nextfree;	/* free list: slot + 1 */
	int64_t		 start;		/* ms, monotonic */
	uint8_t		 inuse;
	uint8_t		 signalled;	/* the parent sent it a signal */
	uint8_t		 overdue;	/* killed for outliving its deadline */
	uint8_t		 proxied;	/* behind a balancer */
	char		 ip[46];
};
struct children {
	struct child	*v;
	uint32_t	 cap;
	uint32_t	 n;		/* alive */
	uint32_t	 freelist;	/* slot + 1 */
	uint32_t	*bypid;		/* open addressing: slot + 1, 0 free */
	uint32_t	 bypid_mask;	/* its size - 1, a power of two - 1 */
	struct heap	 deadlines;
};
int	 children_add(struct children *, pid_t, const char *, int64_t, int64_t);
void	 children_remove(struct children *, uint32_t);
struct child *children_at(struct children *, uint32_t);
struct child *children_overdue(struct children *, int64_t);
struct child *children_find_pid(struct children *, pid_t);
uint32_t children_slot(const struct children *, const struct child *);
int	 children_signal(struct child *, int);
void	 children_signal_all(struct children *, int);
void	 children_free(struct children *);

/* linger.c: the lingering close of connections the parent ends. */
#define LINGER_SLOTS	128
struct linger_ent {
	int		 fd;		/* -1: free */
	int64_t		 deadline;
	size_t		 drained;
};
struct lingers {
	struct linger_ent v[LINGER_SLOTS];
	size_t		 n;		/* in use */
	int		 epfd;
	uint64_t	 tag;		/* or-ed with the slot for epoll */
};
void	 linger_init(struct lingers *, int, uint64_t);
void	 linger_start(struct lingers *, int, int64_t);
void	 linger_ready(struct lingers *, uint32_t);
void	 linger_expire(struct lingers *, int64_t);
int64_t	 linger_next_deadline(const struct lingers *);
void	 linger_close_all(struct lingers *);

/* Counters, kept by the parent. */
struct stats {
	unsigned long	outcome[OUTCOME_MAX];
	unsigned long	refused[REFUSAL_MAX];
	unsigned long	crashed;
	unsigned long	changes;	/* bumped on every change, for STATUS= */
};

/* The parent's state, shared by its loop (server.c) and what it does about
 * each client (clients.c). */
struct server {
	struct server_ctx	*ctx;
	struct conf		*conf;
	int			 epfd;
	int			 sigfd;		/* readable when a signal is pending */
	sigset_t		 sigs;		/* the signals it reports */
	int			 reservefd;	/* given up when descriptors run out */
	struct children		 kids;
	struct sources		 src;
	struct stats		 st;
	char			*buf;		/* the children's line buffer */
	int			 accepting;	/* listeners are in the epoll set */
	int			 classic;	/* fork(2) and SIGCHLD (valgrind) */
	int64_t			 paused_until;
	int			 pause_ms;
	int			 stopping;
	int64_t			 stop_deadline;
	int			 draining;	/* in shutdown-delay */
	int64_t			 drain_until;
	int			 terminated;	/* SIGTERM sent to children */
	int64_t			 status_at;	/* STATUS= last sent */
	unsigned long		 status_changes;
	struct ratelimit	 rl_accept, rl_fork, rl_refused, rl_crash;
	int64_t			 metrics_at;	/* next metrics-file write */
	struct lingers		*lingers;
};

/* epoll tags: the high 32 bits of the event data say what is ready, the
 * low 32 bits which one. */
#define EV_SIGNAL	(1ULL << 32)
#define EV_LISTEN	(2ULL << 32)
#define EV_CTL		(4ULL << 32)
#define EV_LINGER	(5ULL << 32)
#define EV_AGENT	(7ULL << 32)
#define EV_NAMES	(8ULL << 32)
#define EV_TAG(d)	((d) & ~0xffffffffULL)
#define EV_INDEX(d)	((uint32_t)(d))

/* agent.c */
int	 agent_open(const struct conf *);
int	 agent_count(void);
int	 agent_fd_at(int);
void	 agent_close(void);
void	 agent_ready(struct server *, uint32_t, int64_t);
void	 agent_resume(struct server *, int64_t);
int64_t	 agent_pause_end(void);

/* clients.c */
void	 clients_accepted(struct server *, int, struct sockaddr_storage *,
	    int64_t);
void	 clients_refuse_busy(struct server *, int,
	    const struct sockaddr_storage *, int64_t);
int	 clients_watch(struct server *, int, uint64_t, uint32_t);
void	 clients_report(struct server *, uint32_t, int64_t);
void	 clients_exited(struct server *, pid_t, int64_t);
void	 clients_reap_any(struct server *, int64_t);
void	 clients_overdue(struct server *, int64_t);
void	 clients_pause(struct server *, int64_t);
int	 clients_at_limit(struct server *, int64_t);

/* control.c */
void	 control_reload(struct server *);
void	 control_stats(struct server *);
void	 control_status(struct server *, int64_t);
int	 control_check_limits(const struct conf *, int);

/* metrics.c */
int	 metrics_open(const struct conf *);
int	 metrics_dirfd(void);
int	 metrics_open_flags(void);
void	 metrics_write(const struct server *, int64_t);

#endif /* PARENT_H */
