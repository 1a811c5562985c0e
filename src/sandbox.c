/*
 * sandbox.c: the seccomp filter and the children's resource limits.
 *
 * Attaching a seccomp program is expensive for the kernel (it allocates,
 * checks and JIT-compiles it, precomputes its action cache, and frees it all
 * again when the process exits): done in every child it cost about 60 us per
 * connection here, some 15% of the throughput.  So the parent installs one
 * filter, once, just before it serves, and every child inherits it for free.
 * The filter allows the union of what the parent loop and a child need, with
 * arguments checked where that narrows it (no executable writable memory, no
 * file opened for writing, no new namespaces, resource limits of the caller
 * only); anything else kills the process.
 *
 * What a child must not do beyond serving its client is then taken away by
 * the resource limits it sets before it reads a byte, as OpenSSH's sandbox
 * does: RLIMIT_NPROC 0 (no fork), RLIMIT_NOFILE 1 (no new descriptor of any
 * kind: no file, no socket, no pidfd, so it cannot signal anybody; poll(2)
 * still takes its one descriptor), and RLIMIT_FSIZE 0 unless the log is a
 * file.  The parent signals its children through pidfds, so kill(2) is not
 * in the filter at all.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#ifdef HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "srvexample.h"

#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
#define SANDBOX_SECCOMP	1
#endif

static int	 sandbox_off;		/* under valgrind */
static int	 sandbox_on;		/* the filter is installed */

/* Valgrind runs its own system calls in the process: no sandbox there. */
int
sandbox_under_valgrind(void)
{
	const char	*p = getenv("LD_PRELOAD");

	return p != NULL && strstr(p, "vgpreload") != NULL;
}

#ifdef SANDBOX_SECCOMP
/* Allowed whatever the arguments: I/O on descriptors already open, memory,
 * time, signals, exit, and reaping. */
static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(pread64), SCMP_SYS(write),
	SCMP_SYS(writev), SCMP_SYS(lseek), SCMP_SYS(close),
	SCMP_SYS(close_range), SCMP_SYS(fcntl), SCMP_SYS(fstat),
	SCMP_SYS(newfstatat), SCMP_SYS(statx),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(epoll_create1),
	SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait),
	SCMP_SYS(accept4), SCMP_SYS(connect),
	SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(sendto),
	SCMP_SYS(sendmsg), SCMP_SYS(sendmmsg), SCMP_SYS(shutdown),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt), SCMP_SYS(eventfd2), SCMP_SYS(signalfd4),
	SCMP_SYS(pipe2),
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(getrandom),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(alarm),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
	SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(getpid), SCMP_SYS(getppid), SCMP_SYS(gettid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(uname),
	SCMP_SYS(wait4), SCMP_SYS(waitid),
	SCMP_SYS(pidfd_open), SCMP_SYS(pidfd_send_signal),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/* Socket families: the log and sd_notify (AF_UNIX), the resolver (the rest). */
static const int families[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };

/* Namespaces and threads: fork(2) needs none of them. */
#define CLONE_FORBIDDEN	(CLONE_VM | CLONE_THREAD | CLONE_NEWNS | \
	CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | \
	CLONE_NEWNET | CLONE_NEWCGROUP)

/* Open flags that write or create. */
#define OPEN_WRITING	(O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)
/* The open flags compared for the metrics file: what decides what is opened
 * (O_LARGEFILE, which some C libraries add, is left out). */
#define OPEN_CHECKED	(OPEN_WRITING | O_EXCL | O_NOFOLLOW | O_DIRECTORY | \
	O_TMPFILE | O_PATH | O_CLOEXEC)

#define RULE(ctx, call, ...) \
	(seccomp_rule_add((ctx), SCMP_ACT_ALLOW, SCMP_SYS(call), __VA_ARGS__) != 0)

/*
 * The metrics file (metrics.c): its temporary file opened for writing and
 * renamed, both through the directory's descriptor only, with exactly the
 * flags metrics.c uses.  The paths are not seen by a filter; metrics.c says
 * why this gives a child nothing.
 */
static int
add_metrics(scmp_filter_ctx ctx, int dirfd, int flags)
{
	if (dirfd == -1)
		return 0;
	if (RULE(ctx, openat, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)dirfd),
	    SCMP_A2(SCMP_CMP_MASKED_EQ, OPEN_CHECKED, (scmp_datum_t)flags)) ||
	    RULE(ctx, renameat, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)dirfd),
	    SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)dirfd)) ||
	    RULE(ctx, renameat2, 3, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)dirfd),
	    SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)dirfd),
	    SCMP_A4(SCMP_CMP_EQ, 0)))
		return -1;
	return 0;
}

/* The calls allowed only with some arguments. */
static int
add_checked(scmp_filter_ctx ctx, int unlink_dirfd)
{
	size_t	 i;

	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		if (RULE(ctx, socket, 1, SCMP_A0(SCMP_CMP_EQ, families[i])))
			return -1;
	/* Memory may be writable or executable, never both; never made
	 * executable later (what MemoryDenyWriteExecute= enforces). */
	if (RULE(ctx, mmap, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) ||
	    RULE(ctx, mmap, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE, 0)) ||
	    RULE(ctx, mprotect, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) ||
	    RULE(ctx, openat, 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, OPEN_WRITING, 0)) ||
	    RULE(ctx, clone, 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_FORBIDDEN, 0)) ||
	    RULE(ctx, socketpair, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)) ||
	    RULE(ctx, ioctl, 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD)) ||
	    RULE(ctx, ioctl, 1, SCMP_A1(SCMP_CMP_EQ, TCGETS)) ||
	    RULE(ctx, prlimit64, 1, SCMP_A0(SCMP_CMP_EQ, 0)))
		return -1;
	/* glibc falls back to clone(2) when clone3(2) is missing. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
	    0) != 0)
		return -1;
	/* The pidfile, removed at exit through its directory's descriptor. */
	if (unlink_dirfd != -1 &&
	    RULE(ctx, unlinkat, 1, SCMP_A0(SCMP_CMP_EQ, unlink_dirfd)))
		return -1;
	return 0;
}

/* Build the filter; NULL on error. */
static scmp_filter_ctx
build_filter(int unlink_dirfd, int metrics_dirfd, int metrics_flags)
{
	scmp_filter_ctx	 ctx;
	size_t		 i;
	int		 fd;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return NULL;
	/* no_new_privs is already set (privdrop_apply); the tree keeps the
	 * filter's run short for the calls the action cache cannot answer. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) != 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) != 0)
		goto fail;
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0) != 0)
			goto fail;
	/* Kernels before pidfds (5.3): signal children with kill(2). */
	if ((fd = syscall(SYS_pidfd_open, getpid(), 0)) != -1)
		close(fd);
	else if (errno == ENOSYS &&
	    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 0) != 0)
		goto fail;
	if (add_checked(ctx, unlink_dirfd) == -1 ||
	    add_metrics(ctx, metrics_dirfd, metrics_flags) == -1)
		goto fail;
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}
#endif /* SANDBOX_SECCOMP */

/*
 * Install the filter in the parent, once, after the privilege drop and just
 * before serving; unlink_dirfd is the pidfile's directory, metrics_dirfd the
 * metrics file's, opened with metrics_flags (-1: none).  Returns -1 on error
 * (logged).
 */
int
sandbox_parent(int unlink_dirfd, int metrics_dirfd, int metrics_flags)
{
#ifdef SANDBOX_SECCOMP
	scmp_filter_ctx	 ctx;
	int		 rv;
#endif

	if (sandbox_under_valgrind()) {
		log_info("sandbox off: running under valgrind");
		sandbox_off = 1;
		return 0;
	}
#ifdef SANDBOX_SECCOMP
	if ((ctx = build_filter(unlink_dirfd, metrics_dirfd, metrics_flags)) ==
	    NULL) {
		log_warnx("seccomp: cannot build the filter");
		return -1;
	}
	if ((rv = seccomp_load(ctx)) != 0) {
		errno = -rv;
		log_warn("seccomp: cannot load the filter");
	} else
		sandbox_on = 1;
	seccomp_release(ctx);
	return rv == 0 ? 0 : -1;
#else
	(void)unlink_dirfd;
	(void)metrics_dirfd;
	(void)metrics_flags;
	return 0;
#endif
}

/* Is the seccomp filter in use? */
int
sandbox_active(void)
{
	return sandbox_on;
}

/*
 * Enter the sandbox in a child, before reading from the client: no new
 * process, no new descriptor, no file growth (unless the log is a file on
 * stderr).  Limits lowered to zero cannot be raised again without privilege.
 */
int
sandbox_enter(void)
{
	struct rlimit	 zero = { 0, 0 }, one = { 1, 1 };

	if (sandbox_off)
		return 0;
	if (setrlimit(RLIMIT_NPROC, &zero) == -1 ||
	    (!log_to_file() && setrlimit(RLIMIT_FSIZE, &zero) == -1) ||
	    setrlimit(RLIMIT_NOFILE, &one) == -1) {
		log_warn("sandbox: setrlimit");
		return -1;
	}
	return 0;
}
