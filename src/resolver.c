/*
 * resolver.c: the process that looks names up for the children (resolve
 * yes), so that no child ever runs NSS code: a child may then be one that
 * can do nothing but talk to its client, while NSS modules (myhostname,
 * mymachines, resolve, mdns) load files, libraries and sockets as they
 * please in a process of their own.
 *
 * The parent forks it once, after the privilege drop and before its own
 * seccomp filter, with one end of a SOCK_SEQPACKET socketpair; the other
 * end is inherited by every child, which sends its query with a socket for
 * the answer (names.c) and closes it before it reads from its client.
 * The process is two: a supervisor that does nothing but fork a worker and
 * fork it again when it dies (at most once a second), and the worker,
 * which installs its own filter (resolver-sandbox.c), then answers from
 * its cache (namecache.c) at once and hands misses to WORKERS threads over
 * a queue of QUEUE_MAX; a full queue is answered "no name" at once, and a
 * query older than the asker's bound is dropped unanswered.  What a thread
 * found and remembers it also reports to the parent, on a socketpair of
 * their own that no child holds: the parent keeps the names too, and hands
 * a known one to the next child from that address at its fork, which then
 * asks nothing (a socketpair, a message with a descriptor and a wait saved
 * per child).  A slow or
 * dead name server therefore holds threads, never a child past its bound,
 * and never a client whose name is remembered.  The supervisor is what the
 * parent reaps (SIGCHLD): restarted by a filtered parent it could not load
 * modules, so its death is logged and children log addresses from then on.
 * Both end when the last holder of the children's end is gone.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

#define WORKERS		4	/* lookups at once */
#define QUEUE_MAX	64	/* misses waiting for a thread */
#define RESTART_MS	1000	/* a worker is forked at most this often */
#define REPORTS_MAX	64	/* reports the parent reads in one go */

struct job {
	struct names_query	 q;
	int			 fd;		/* the asker's answer socket */
	int64_t			 arrived;	/* ms, monotonic */
};

/* The parent's side. */
static int	 rsock[2] = { -1, -1 };	/* resolver 0, children 1 */
static int	 lsock[2] = { -1, -1 };	/* its reports: resolver 0, parent 1 */
static pid_t	 rpid = -1;

/* The worker's side: the queue and the cache, under one lock. */
static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 ready = PTHREAD_COND_INITIALIZER;
static struct job	 queue[QUEUE_MAX];
static size_t		 qhead, qlen;
static int		 ttl;		/* resolve-cache, seconds */

/* Send the answer and close the asker's socket. */
static void
answer(int fd, const struct names_answer *a)
{
	(void)send(fd, a, sizeof(*a), MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

/* Tell the parent what was found for q and is remembered; best effort: a
 * full socket loses the report, and the next child from there asks. */
static void
report(const struct names_query *q, const struct names_answer *a)
{
	struct names_learned	 l;

	memset(&l, 0, sizeof(l));
	l.q = *q;
	l.a = *a;
	l.ttl_ms = ttl * 1000;
	(void)send(lsock[0], &l, sizeof(l), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* A thread: take a job, look it up, remember it, answer. */
static void *
worker_thread(void *arg)
{
	struct names_answer	 a;
	struct job		 j;
	int			 keep;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (qlen == 0)
			pthread_cond_wait(&ready, &lock);
		j = queue[qhead];
		qhead = (qhead + 1) % QUEUE_MAX;
		qlen--;
		pthread_mutex_unlock(&lock);
		if (clock_ms() - j.arrived >= NAMES_WAIT_MS) {
			close(j.fd);		/* its asker gave up */
			continue;
		}
		names_lookup(&j.q, &a);
		keep = !j.q.nocache && ttl > 0 && a.status != NAME_FAILED;
		pthread_mutex_lock(&lock);
		if (keep)
			namecache_put(&j.q, &a, clock_ms() + ttl * 1000LL);
		pthread_mutex_unlock(&lock);
		if (keep)		/* first: the parent knows it before the
					   asker goes on */
			report(&j.q, &a);
		answer(j.fd, &a);
	}
	return NULL;
}

/* A query: from the cache at once, else to a thread, else "failed". */
static void
query(const struct names_query *q, int fd)
{
	static const struct names_answer failed = { .status = NAME_FAILED };
	struct names_answer	 a;
	struct sockaddr_storage	 ss;
	char			 ip[INET6_ADDRSTRLEN];
	int64_t			 now = clock_ms();
	int			 hit = 0;

	pthread_mutex_lock(&lock);
	if (!q->nocache && ttl > 0)
		hit = namecache_get(q, now, &a);
	if (!hit && qlen < QUEUE_MAX) {
		queue[(qhead + qlen) % QUEUE_MAX] =
		    (struct job){ .q = *q, .fd = fd, .arrived = now };
		qlen++;
		pthread_cond_signal(&ready);
		fd = -1;
	}
	pthread_mutex_unlock(&lock);
	if (hit && log_getverbose() > 0) {
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = q->family;
		memcpy(q->family == AF_INET ?
		    (void *)&((struct sockaddr_in *)&ss)->sin_addr :
		    (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr, q->addr,
		    q->family == AF_INET ? 4 : 16);
		log_debug("name of %s from the cache",
		    addr_ntop(&ss, ip, sizeof(ip)));
	}
	if (fd != -1)
		answer(fd, hit ? &a : &failed);
}

/*
 * Receive one message: a query and its socket, or the parent's "forget".
 * 0 at the end (every holder of the children's end is gone), else 1.
 */
static int
receive(int s)
{
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct names_query	 q;
	struct iovec		 iov = { .iov_base = &q, .iov_len = sizeof(q) };
	struct msghdr		 mh;
	struct cmsghdr		*c;
	ssize_t			 n;
	int			 fd = -1;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	if ((n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC)) == 0)
		return 0;
	if (n == -1)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if ((c = CMSG_FIRSTHDR(&mh)) != NULL && c->cmsg_level == SOL_SOCKET &&
	    c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n == sizeof(q) && q.op == NAMES_OP_FORGET) {
		pthread_mutex_lock(&lock);
		namecache_clear();
		ttl = q.ttl;
		pthread_mutex_unlock(&lock);
	} else if (n == sizeof(q) && q.op == NAMES_OP_QUERY && fd != -1 &&
	    (q.family == AF_INET || q.family == AF_INET6)) {
		query(&q, fd);
		fd = -1;
	}
	if (fd != -1)
		close(fd);
	return 1;
}

/* The worker: its filter, its threads, then answer until the end. */
static void __attribute__((noreturn))
worker_main(int s)
{
	struct rlimit	 zero = { 0, 0 };
	pthread_t	 t;
	int		 i;

	setproctitle("resolver worker");
	(void)namecache_init();		/* before the filter: it maps memory */
	if (resolver_sandbox() == -1 ||
	    (!log_to_file() && setrlimit(RLIMIT_FSIZE, &zero) == -1))
		_exit(1);
	for (i = 0; i < WORKERS; i++)
		if ((errno = pthread_create(&t, NULL, worker_thread, NULL)) != 0) {
			log_warn("resolver: pthread_create");
			_exit(1);
		}
	while (receive(s))
		;
	_exit(0);
}

/*
 * The supervisor: fork the worker, and again when it dies of anything but
 * the end of its socket.  Its own descriptors are the resolver's end and
 * the log; it reads nothing from anybody.
 */
static void __attribute__((noreturn))
supervisor_main(int s)
{
	struct timespec	 pause = { RESTART_MS / 1000, 0 };
	int64_t		 started;
	pid_t		 pid, self = getpid();
	int		 status;

	setproctitle("resolver");
	log_started();		/* forked before the parent said so */
	for (;;) {
		started = clock_ms();
		if ((pid = fork()) == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != self)
				_exit(1);
			worker_main(s);
		}
		if (pid == -1)
			log_warn("resolver: fork");
		else {
			while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
				;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				_exit(0);
			if (WIFSIGNALED(status))
				log_warnx("resolver worker %ld killed by signal "
				    "SIG%s, restarting it", (long)pid,
				    sigabbrev_np(WTERMSIG(status)));
			else
				log_warnx("resolver worker %ld exited with "
				    "status %d, restarting it", (long)pid,
				    WEXITSTATUS(status));
		}
		if (clock_ms() - started < RESTART_MS)
			nanosleep(&pause, NULL);
	}
}

/* Close both ends of a pair (-1: closed). */
static void
close_pair(int *p)
{
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	p[0] = p[1] = -1;
}

/* Close every descriptor but stdio, a, b and c (-1: none); on a kernel
 * without close_range(2) the resolver keeps what it inherited. */
static void
close_but(int a, int b, int c)
{
	int	 keep[3] = { a, b, c };

	(void)fds_close_except(keep, 3);
}

/*
 * In the parent, after the privilege drop and before its filter: fork the
 * resolver.  -1 (logged) on error.
 */
int
resolver_start(const struct conf *c)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rsock) ==
	    -1 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0, lsock) == -1) {
		log_warn("resolver: socketpair");
		close_pair(rsock);
		return -1;
	}
	ttl = c->resolve_cache;
	if ((rpid = fork()) == -1) {
		log_warn("resolver: fork");
		close_pair(rsock);
		close_pair(lsock);
		return -1;
	}
	if (rpid == 0) {
		signal(SIGHUP, SIG_IGN);	/* the parent says "forget" */
		signal(SIGINT, SIG_IGN);
		signal(SIGUSR1, SIG_IGN);
		close_but(rsock[0], lsock[0], log_fd());
		supervisor_main(rsock[0]);
	}
	close(rsock[0]);
	close(lsock[0]);
	rsock[0] = lsock[0] = -1;
	if (namecache_init() == -1)	/* after the fork: not the resolver's */
		close_pair(lsock);
	return 0;
}

/* The end a child asks on (-1: no resolver). */
int
resolver_fd(void)
{
	return rsock[1];
}

pid_t
resolver_pid(void)
{
	return rpid;
}

/* SIGHUP: the resolver forgets every name and keeps new ones ttl seconds;
 * so does the parent. */
void
resolver_forget(int secs)
{
	struct names_query	 q = { .op = NAMES_OP_FORGET, .ttl = secs };

	namecache_clear();
	if (rsock[1] != -1)
		(void)send(rsock[1], &q, sizeof(q), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The parent's end of the resolver's reports (-1: none), for its loop. */
int
resolver_reports_fd(void)
{
	return lsock[1];
}

/*
 * The resolver's reports are ready: remember each name for the children to
 * come, at most REPORTS_MAX in one call so that the loop goes on.  What is
 * not what the resolver sends is dropped.
 */
void
resolver_reports(int64_t now)
{
	struct names_learned	 l;
	ssize_t			 n;
	int			 i;

	for (i = 0; i < REPORTS_MAX; i++) {
		if ((n = recv(lsock[1], &l, sizeof(l), MSG_DONTWAIT)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (n != (ssize_t)sizeof(l) || (l.q.family != AF_INET &&
		    l.q.family != AF_INET6) || l.ttl_ms <= 0 ||
		    !names_answer_valid(&l.a))
			continue;
		namecache_put(&l.q, &l.a, now + l.ttl_ms);
	}
}

/*
 * pid was reaped with code and status as waitid(2) gives them: if it is
 * the resolver, log its end and stop handing it to children; 1 if it was.
 */
int
resolver_reaped(pid_t pid, int code, int status)
{
	if (rpid == -1 || pid != rpid)
		return 0;
	if (code == CLD_EXITED)
		log_warnx("resolver %ld exited with status %d: clients are "
		    "logged by address", (long)pid, status);
	else
		log_warnx("resolver %ld killed by signal SIG%s: clients are "
		    "logged by address", (long)pid, sigabbrev_np(status));
	rpid = -1;
	sandbox_child_asks(-1);	/* before the number can be another's */
	close(rsock[1]);
	close(lsock[1]);
	rsock[1] = lsock[1] = -1;
	namecache_clear();
	return 1;
}

/* SIGCHLD: reap the resolver if it is what ended. */
void
resolver_check(void)
{
	siginfo_t	 si;

	if (rpid == -1)
		return;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, rpid, &si, WEXITED | WNOHANG) == 0 &&
	    si.si_pid == rpid)
		(void)resolver_reaped(rpid, si.si_code, si.si_status);
}
