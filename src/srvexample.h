/*
 * srvexample: a fork-per-connection echo-one-line daemon.
 *
 * One header for the whole program; prototypes are grouped by the file that
 * defines them, so this file reads as a map of src/.
 */
#ifndef SRVEXAMPLE_H
#define SRVEXAMPLE_H

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <poll.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SE_NAME			"srvexample"
#define SE_REPLY_PREFIX		"You said:"
#define SE_REPLY_PREFIX_LEN	(sizeof(SE_REPLY_PREFIX) - 1)

#define CONF_MAX_LISTEN		16
#define CONF_MAX_ACL		256
#define CONF_MAX_PROXY_FROM	64

/* The refusal lines, sent by the parent or (behind a balancer) a child. */
#define SE_ERR_PER_SOURCE	"Error: too many connections from your address\n"
#define SE_ERR_PENALTY		"Error: try again later\n"
#define SE_ERR_BUSY		"Error: server busy\n"
#define SE_ERR_RATE		"Error: too many new connections from your address\n"

/* Both sides: a child's watchdog fires this long past its timeout; its
 * lingering close drains for at most this long and this much. */
#define SE_WATCHDOG_SLACK	2	/* seconds */
#define LINGER_MS		1000
#define LINGER_BYTES		(256 * 1024)

/* Child exit statuses; the parent counts outcomes from them. */
enum outcome {
	OUTCOME_OK = 0,		/* answered */
	OUTCOME_EOF,		/* client closed without sending anything */
	OUTCOME_TIMEOUT,
	OUTCOME_TOO_LONG,
	OUTCOME_ERROR,
	OUTCOME_REFUSED,	/* parent only */
	OUTCOME_DENIED,		/* parent only */
	OUTCOME_PROXY,		/* no valid PROXY header (counted by the parent) */
	OUTCOME_MAX
};

enum log_sink {
	LOG_SINK_DEFAULT = 0,	/* not set: stderr with -d, else syslog */
	LOG_SINK_SYSLOG,
	LOG_SINK_STDERR
};

/* Which clients get their Connection from and end lines (log-clients). */
enum log_clients {
	LOG_CLIENTS_ALL = 0,
	LOG_CLIENTS_PROBLEMS	/* only outcomes other than ok and eof */
};

/* An IPv4 or IPv6 network: address bytes and prefix length. */
struct addrmask {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];	/* 4 bytes used for AF_INET */
	int		prefixlen;
};

struct acl_rule {
	int		allow;		/* 1 allow, 0 deny */
	struct addrmask	net;
};

struct conf {
	char		*listen[CONF_MAX_LISTEN];	/* numeric; none = all */
	int		 nlisten;
	int		 port;
	char		*user;
	char		*group;		/* NULL: the user's primary group */
	char		*chroot;	/* NULL: none */
	char		*pidfile;	/* NULL: none */
	int		 max_children;
	int		 max_per_source;
	int		 prefix4;
	int		 prefix6;
	int		 timeout;
	int		 max_line;
	int		 resolve;
	int		 resolve_cache;	/* seconds the resolver keeps a name */
	struct acl_rule	 acl[CONF_MAX_ACL];
	int		 nacl;
	int		 backlog;
	int		 grace;
	int		 crash_penalty;
	enum log_sink	 log;
	int		 log_facility;
	enum log_clients log_clients;
	int		 reuse_port;
	int		 proxy_protocol;
	struct addrmask	 proxy_from[CONF_MAX_PROXY_FROM];
	int		 nproxy_from;
	int		 rate_per_source;
	struct addrmask	 exempt[CONF_MAX_ACL];
	int		 nexempt;
	int		 timeout_penalty;
	int		 penalty_max;
	int		 defer_accept;	/* TCP_DEFER_ACCEPT seconds; 0: off */
	int		 shutdown_delay;	/* seconds serving after SIGTERM */
	int		 agent_port;	/* HAProxy's agent check; 0: none */
	char		*metrics_file;	/* NULL: none */
	int		 metrics_interval;	/* seconds */
};

/* Where the configuration comes from, kept so that SIGHUP can read it again. */
struct conf_source {
	const char	*path;		/* file name as given */
	int		 explicit_path;	/* -f given: a missing file is an error */
	int		 dirfd;		/* the file's directory, opened before chroot */
	const char	*base;		/* file name relative to dirfd */
	char		**overrides;	/* -o keyword=value, in order */
	int		 noverrides;
};

/* addr.c */
int	 addr_parse(const char *, struct addrmask *, int, const char **);
int	 addr_match(const struct addrmask *, const struct addrmask *);
void	 addr_from_sockaddr(const struct sockaddr_storage *, struct addrmask *);
void	 addr_mask(struct addrmask *, int);
void	 addr_normalize(struct sockaddr_storage *);
const char *addr_ntop(const struct sockaddr_storage *, char *, size_t);
int	 addr_port(const struct sockaddr_storage *);
const char *addr_mask_ntop(const struct addrmask *, char *, size_t);

/* conf.c */
void	 conf_init(struct conf *);
void	 conf_clear(struct conf *);
int	 conf_load(const struct conf_source *, struct conf *);
int	 conf_read_stream(FILE *, const char *, struct conf *);
int	 conf_set(struct conf *, const char *, const char *, const char *);
void	 conf_print(const struct conf *);
int	 conf_acl_allows(const struct conf *, const struct addrmask *, int *);
int	 conf_proxy_trusted(const struct conf *, const struct addrmask *);
int	 conf_exempt(const struct conf *, const struct addrmask *);
int	 conf_facility(const char *);

/* log.c */
void	 log_init(enum log_sink, int, int);
void	 log_setverbose(int);
int	 log_getverbose(void);
void	 log_detached(void);
void	 log_started(void);
int	 log_fd(void);
int	 log_to_file(void);
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	 log_escape(char *, size_t, const void *, size_t);
#define NAME_LOG_MAX	(64 * 4 + 8)	/* a name as log_escape() writes it */

/* ratelimit.c */
struct ratelimit {
	int64_t		 window_start;	/* ms, monotonic */
	unsigned long	 suppressed;
	const char	*what;		/* what is counted, for ratelimit_flush */
};
int	 ratelimit_allow(struct ratelimit *, int64_t, const char *);
void	 ratelimit_flush(struct ratelimit *, int64_t);
void	 ratelimit_finish(struct ratelimit *, int64_t);
int64_t	 ratelimit_deadline(const struct ratelimit *);
void	 log_repeated(struct ratelimit *, int64_t, const char *);

/* clock.c */
int64_t	 clock_ms(void);

/* listen.c */
int	 listen_open(const struct conf *, int *, int);
int	 listen_inherited(int *, int);
int	 listen_inherited_count(void);
void	 listen_defer(const int *, int, int);
int	 listen_inherited_agent(int *, int);
void	 listen_close(int *, int);
unsigned long listen_queued(const int *, int);

/* privdrop.c */
struct privdrop {
	int	 is_root;
	uid_t	 uid;
	gid_t	 gid;
	char	 user[64];
};
int	 privdrop_lookup(const struct conf *, struct privdrop *);
int	 privdrop_check_chroot(const char *);
int	 privdrop_apply(const struct privdrop *, const char *);

/* daemon.c */
struct pidfile;
struct pidfile *daemon_pidfile_open(const char *, const struct privdrop *);
void	 daemon_detach(struct pidfile *);
void	 daemon_pidfile_write(struct pidfile *);
void	 daemon_pidfile_remove(struct pidfile *);
void	 daemon_pidfile_close(struct pidfile *);
int	 daemon_pidfile_dirfd(const struct pidfile *);

/* notify.c */
void	 notify_init(void);
void	 notify_send(const char *, ...) __attribute__((format(printf, 1, 2)));
int	 notify_fd(void);

/* sandbox.c */
int	 sandbox_parent(int, int, int);
int	 sandbox_enter(void);
void	 sandbox_child_asks(int);
int	 sandbox_active(void);
int	 sandbox_may_unlink(void);
int	 sandbox_under_valgrind(void);

/* session.c */
enum scan_result {
	SCAN_MORE,		/* no terminator yet, room for more */
	SCAN_LINE,		/* a complete line */
	SCAN_TOO_LONG		/* longer than max-line */
};
struct session_result {
	enum outcome	 outcome;
	size_t		 bytes_in;
	size_t		 bytes_out;
	size_t		 line_len;	/* bytes of the line in the buffer */
};
enum scan_result session_scan(const char *, size_t, size_t, size_t, size_t *);
size_t	 session_bufsize(size_t);
void	 session_run(int, char *, size_t, int64_t, struct session_result *);
void	 session_linger(int);

/* proxy.c */
#define PROXY_MAX_LEN	1024	/* the longest header taken, v2 TLVs included */
enum proxy_error {
	PROXY_OK = 0,
	PROXY_E_SIGNATURE,	/* not a PROXY header (or none at all) */
	PROXY_E_VERSION,
	PROXY_E_COMMAND,
	PROXY_E_FAMILY,
	PROXY_E_ADDRESS,
	PROXY_E_TLV,
	PROXY_E_TOO_LONG,
	PROXY_E_TRUNCATED,	/* the connection ended inside the header */
	PROXY_E_TIMEOUT,
	PROXY_E_EOF,		/* closed before sending anything */
	PROXY_E_IO,
	PROXY_E_UNTRUSTED,	/* the sender is not in proxy-from */
	PROXY_E_MAX
};
struct proxy_hdr {
	int			 version;	/* 1 or 2 */
	int			 local;		/* use the connection's addresses */
	struct sockaddr_storage	 src;		/* the client */
	struct sockaddr_storage	 dst;		/* the address it connected to */
};
ssize_t	 proxy_parse(const uint8_t *, size_t, struct proxy_hdr *, int *);
const char *proxy_error_name(int);

/* handoff.c */
enum verdict {
	VERDICT_SERVE = 's',
	VERDICT_LIMIT = 'l',	/* max-per-source */
	VERDICT_PENALTY = 'p',	/* crash-penalty, timeout-penalty */
	VERDICT_RATE = 'r',	/* rate-per-source */
	VERDICT_BUSY = 'b',	/* out of resources */
	VERDICT_DENY = 'd'	/* allow/deny */
};
struct handoff_report {
	int			 error;	/* enum proxy_error; PROXY_OK: served */
	struct sockaddr_storage	 addr;	/* the real client; the balancer on error */
};
int	 handoff_child(int, int, const struct sockaddr_storage *, int64_t,
	    struct sockaddr_storage *);
int	 handoff_recv(int, struct handoff_report *);
void	 handoff_send_verdict(int, enum verdict);
const char *verdict_line(enum verdict);

/* inetd.c */
int	 inetd_serve(const struct conf *, const struct privdrop *);

/* fds.c */
int	 fds_close_except(int *, int);

/* names.c: a client's name, forward-confirmed, and how a child asks the
 * resolver process for it. */
#define NAMES_WAIT_MS	2000	/* the whole lookup, PTR and A/AAAA */
enum name_status {
	NAME_FAILED = 0,	/* no answer (time-out, server failure, busy) */
	NAME_NONE,		/* the address has no PTR name */
	NAME_CONFIRMED,		/* the name maps back to the address */
	NAME_UNCONFIRMED	/* it does not: the address is logged */
};
struct names_query {
	uint8_t		 op;		/* NAMES_OP_* */
	uint8_t		 nocache;	/* look up, do not remember */
	uint8_t		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 pad;
	int32_t		 ttl;		/* NAMES_OP_FORGET: resolve-cache */
	uint8_t		 addr[16];
};
#define NAMES_OP_QUERY	'q'	/* carries the socket for the answer */
#define NAMES_OP_FORGET	'f'	/* from the parent: SIGHUP */
struct names_answer {
	uint8_t		 status;	/* enum name_status */
	char		 name[NAME_LOG_MAX];	/* escaped, for the log */
};
/* From the resolver to the parent: what it found for an address and will
 * remember for ttl_ms (resolver.c). */
struct names_learned {
	struct names_query	 q;
	struct names_answer	 a;
	int32_t			 ttl_ms;
};
void	 names_query_init(struct names_query *, const struct sockaddr_storage *);
void	 names_lookup(const struct names_query *, struct names_answer *);
int	 names_answer_valid(const struct names_answer *);
int	 names_open(int [2]);
int	 names_ask(int, int [2], const struct sockaddr_storage *, int, int64_t,
	    struct names_answer *);

/* resolver.c (the parent's side) */
int	 resolver_start(const struct conf *);
int	 resolver_fd(void);
pid_t	 resolver_pid(void);
void	 resolver_forget(int);
int	 resolver_reaped(pid_t, int, int);
void	 resolver_check(void);
int	 resolver_reports_fd(void);
void	 resolver_reports(int64_t);

/* resolver-sandbox.c */
int	 resolver_sandbox(void);

/* namecache.c: the memory of names, the resolver's and the parent's. */
int	 namecache_init(void);
int	 namecache_get(const struct names_query *, int64_t,
	    struct names_answer *);
void	 namecache_put(const struct names_query *, const struct names_answer *,
	    int64_t);
void	 namecache_clear(void);

/* child.c */
struct child_ctx {
	int				 fd;
	const struct sockaddr_storage	*peer;
	const char			*ip;	/* peer's numeric address */
	const struct conf		*conf;
	char				*buf;
	int64_t				 start;
	int				 ctl;	/* to the parent, behind a balancer */
	const struct names_answer	*name;	/* looked up already (-i), or
						   NULL */
	int				 namefd; /* the resolver; -1: none */
	int				 nocache; /* ask it not to remember */
	int				 remembered; /* name from the parent's
						   memory */
};
void	 child_ctx_init(struct child_ctx *, int, const struct sockaddr_storage *,
	    const char *, const struct conf *, char *, int64_t);
const char *child_outcome_name(enum outcome);
void	 child_signals_ignore(void);
void	 child_main(const struct child_ctx *) __attribute__((noreturn));

/* server.c */
struct server_ctx {
	struct conf		*conf;
	struct conf_source	*source;
	int			*lfd;
	int			 nlfd;
	int			 foreground;	/* -d: log defaults to stderr */
};
int	 server_run(struct server_ctx *);

#endif /* SRVEXAMPLE_H */
