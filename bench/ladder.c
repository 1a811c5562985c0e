/*
 * ladder: the reference fork server plus srvexample's per-child duties,
 * added one step at a time, so that `make bench` can say what each duty
 * costs per connection.  Every step keeps the ones below it:
 *
 *	0  the reference (accept, fork, answer, _exit), linked as srvexample
 *	   is, with libbsd and libseccomp
 *	1  the child resets its signal mask, closes what it inherited and
 *	   arms a watchdog alarm
 *	2  the child reads the monotonic clock when it starts and ends
 *	3  the child sets its resource limits (no fork, no new descriptor;
 *	   the log is a file here, so srvexample would not forbid writing)
 *	4  the parent installs one seccomp filter, which children inherit,
 *	   and reaps them on SIGCHLD
 *	5  the child names its client in its process title (setproctitle)
 *	6  the child writes its two log lines (vsnprintf, one writev each)
 *
 * Step 0 answers with the reference's own code (lineserver.c).  It is a
 * measuring instrument, not a server: nothing is checked that the
 * measurement does not need.
 *
 * usage: ladder port step	(127.0.0.1; port 0: any free port)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <err.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "lineserver.h"

#define STEP_HYGIENE	1
#define STEP_CLOCK	2
#define STEP_RLIMITS	3
#define STEP_PARENT	4
#define STEP_TITLE	5
#define STEP_LOG	6

extern char	**environ;

static int	step;
static volatile sig_atomic_t got_sigchld;

static void
on_sigchld(int sig)
{
	(void)sig;
	got_sigchld = 1;
}

/* The parent's share of step 4: one inherited filter, SIGCHLD reaping. */
static void
parent_duties(void)
{
	struct sigaction	 sa;
#ifdef HAVE_SECCOMP
	scmp_filter_ctx		 ctx;

	/* Not srvexample's allow-list: any filter makes the same point. */
	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL ||
	    seccomp_rule_add(ctx, SCMP_ACT_KILL, SCMP_SYS(ptrace), 0) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_KILL, SCMP_SYS(execve), 0) != 0 ||
	    seccomp_load(ctx) != 0)
		errx(1, "seccomp: cannot install the filter");
	seccomp_release(ctx);
#endif
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) == -1)
		err(1, "sigaction");
}

/* Reap what has exited, with SIGCHLD blocked meanwhile. */
static void
reap(void)
{
	sigset_t	 chld, old;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	if (got_sigchld) {
		got_sigchld = 0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static long long
clock_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Format a log line and write it to stderr, as srvexample's logger does. */
static void __attribute__((format(printf, 1, 2)))
log_line(const char *fmt, ...)
{
	char		 msg[1024], nl[] = "\n";
	struct iovec	 iov[2];
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	iov[0].iov_base = msg;
	iov[0].iov_len = n < 0 ? 0 : n < (int)sizeof(msg) ? (size_t)n :
	    sizeof(msg) - 1;
	iov[1].iov_base = nl;
	iov[1].iov_len = 1;
	if (writev(STDERR_FILENO, iov, 2) == -1)
		return;		/* nothing to do about a broken stderr */
}

/* Step 1 and 3: what a child does before it reads from its client. */
static void
child_setup(int fd)
{
	struct rlimit	 zero = { 0, 0 }, one = { 1, 1 };
	sigset_t	 none;

	if (step >= STEP_HYGIENE) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close_range(3, (unsigned)fd - 1, 0);
		close_range((unsigned)fd + 1, ~0U, 0);
		alarm(40);
	}
	if (step >= STEP_RLIMITS) {
		setrlimit(RLIMIT_NPROC, &zero);
		setrlimit(RLIMIT_NOFILE, &one);
	}
}

/* Serve one client from ip port with the duties of this step, then exit. */
static void
serve(int fd, const char *ip, int port)
{
	long long	 start = 0, ms = 0;
	size_t		 len;

	child_setup(fd);
	if (step >= STEP_CLOCK)
		start = clock_ms();
	if (step >= STEP_TITLE)
		setproctitle("client %s port %d", ip, port);
	if (step >= STEP_LOG)
		log_line("Connection from %s [%s] %d", ip, ip, port);
	len = ls_answer(fd);
	if (step >= STEP_CLOCK)
		ms = clock_ms() - start;
	if (step >= STEP_LOG)
		log_line("end client=%s port=%d pid=%ld outcome=ok in=%zu "
		    "out=%zu duration=%lld.%03lld", ip, port, (long)getpid(),
		    len, len > 0 ? sizeof(LS_PREFIX) - 1 + len : 0, ms / 1000,
		    ms % 1000);
	_exit(0);
}

/* Accept forever, forking one child per client. */
int
main(int argc, char *argv[])
{
	struct sockaddr_in	 sin;
	socklen_t		 len;
	const char		*errstr;
	char			 ip[INET_ADDRSTRLEN];
	int			 lfd, fd;

	if (argc != 3) {
		fprintf(stderr, "usage: ladder port step\n");
		return 1;
	}
	step = (int)strtonum(argv[2], 0, STEP_LOG, &errstr);
	if (errstr != NULL)
		errx(1, "step \"%s\" is %s", argv[2], errstr);
	setproctitle_init(argc, argv, environ);
	signal(SIGPIPE, SIG_IGN);
	lfd = ls_listen(argv[1]);
	if (step >= STEP_PARENT)
		parent_duties();
	else
		signal(SIGCHLD, SIG_IGN);	/* reaped by the kernel */
	fprintf(stderr, "ready: ladder step %d, pid %ld\n", step,
	    (long)getpid());
	for (;;) {
		if (step >= STEP_PARENT)
			reap();
		len = sizeof(sin);
		if ((fd = accept(lfd, (struct sockaddr *)&sin, &len)) == -1)
			continue;
		inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
		switch (fork()) {
		case 0:
			close(lfd);
			serve(fd, ip, ntohs(sin.sin_port));
			break;
		default:
			close(fd);
			break;
		}
	}
}
