/*
 * sandbox.c: the seccomp filters, the Landlock rule for the pidfile, and the
 * children's resource limits.
 *
 * Two filters.  The parent installs one, once, just before it serves: the
 * union of what its loop and a child need, with arguments checked where that
 * narrows it (no executable writable memory, no file opened for writing, no
 * new namespaces, resource limits of the caller only, fcntl(2) without
 * F_SETOWN, F_SETSIG or O_ASYNC); anything else kills the process.  Every
 * child inherits it, and stacks a second one before it reads its client's
 * line: a child may then talk to its client and log, and nothing else.
 *
 * The child's filter is a raw BPF program built once in the parent, so a
 * child pays one seccomp(2) call and no libseccomp work.  The kernel still
 * checks, JIT-compiles and caches each attached program, and frees it when the
 * child exits; it is kept short for that, and the calls a child makes most
 * come first.  A call that both filters allow whatever its arguments is
 * answered from the kernel's action cache without running either program.
 * Opening a file, a socket or a pidfd fails with EPERM, so that libc fails
 * cleanly; the rest a child does not need kills it.
 *
 * The resource limits set before the filter stay as a second wall:
 * RLIMIT_NPROC 0 (no fork), RLIMIT_NOFILE 1 (no new descriptor), and
 * RLIMIT_FSIZE 0 unless the log is a file.  The parent signals its children
 * through pidfds, so kill(2) is in neither filter.
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
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <stddef.h>
#endif

#include "srvexample.h"

#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
#define SANDBOX_SECCOMP	1
#endif

static int	 sandbox_off;		/* under valgrind */
static int	 sandbox_on;		/* the filter is installed */
static int	 sandbox_unlink;	/* unlinkat(2) confined by Landlock */
static int	 child_asks = -1;	/* the resolver's socket for children */

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
	SCMP_SYS(close_range), SCMP_SYS(fstat),
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

/*
 * fcntl(2) without what would make the kernel signal a process: F_SETOWN,
 * F_SETOWN_EX, F_SETSIG and O_ASYNC (the signal goes to any process of the
 * uid when data arrives), nor leases and directory notices.
 */
static int
add_fcntl(scmp_filter_ctx ctx)
{
	return RULE(ctx, fcntl, 1, SCMP_A1(SCMP_CMP_EQ, F_GETFD)) ||
	    RULE(ctx, fcntl, 1, SCMP_A1(SCMP_CMP_EQ, F_SETFD)) ||
	    RULE(ctx, fcntl, 1, SCMP_A1(SCMP_CMP_EQ, F_GETFL)) ||
	    RULE(ctx, fcntl, 2, SCMP_A1(SCMP_CMP_EQ, F_SETFL),
	    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ASYNC, 0)) ? -1 : 0;
}

/* The calls allowed only with some arguments. */
static int
add_checked(scmp_filter_ctx ctx)
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
	/* Each child stacks its own filter (sandbox_enter). */
	if (RULE(ctx, seccomp, 1, SCMP_A0(SCMP_CMP_EQ,
	    SECCOMP_SET_MODE_FILTER)) || add_fcntl(ctx) == -1)
		return -1;
	/* The pidfile, removed at exit: Landlock allows no other unlink, so
	 * that neither the directory descriptor nor an absolute path matters. */
	if (sandbox_unlink &&
	    RULE(ctx, unlinkat, 1, SCMP_A2(SCMP_CMP_EQ, 0)))
		return -1;
	return 0;
}

/* Build the filter; NULL on error. */
static scmp_filter_ctx
build_filter(int metrics_dirfd, int metrics_flags)
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
	if (add_checked(ctx) == -1 ||
	    add_metrics(ctx, metrics_dirfd, metrics_flags) == -1)
		goto fail;
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

/*
 * The child's own filter.  First the calls a child makes on every
 * connection, then the rest it may make, whatever the arguments (the
 * parent's filter, still in force, checks those of mmap and mprotect).
 */
static const int child_allowed[] = {
	__NR_recvfrom, __NR_poll, __NR_writev, __NR_close, __NR_getpid,
	__NR_shutdown, __NR_exit_group, __NR_rt_sigreturn, __NR_restart_syscall,
	__NR_clock_gettime, __NR_read, __NR_write, __NR_ppoll, __NR_exit,
	__NR_gettimeofday, __NR_time, __NR_brk, __NR_mmap, __NR_munmap,
	__NR_mremap, __NR_madvise, __NR_mprotect,
};

/* What fails with EPERM rather than killing: new descriptors. */
static const int child_refused[] = {
	__NR_socket, __NR_connect, __NR_openat, __NR_open, __NR_openat2,
	__NR_creat, __NR_socketpair, __NR_pidfd_open, __NR_pidfd_getfd,
	__NR_accept4, __NR_accept,
};

enum label { L_NEXT, L_SENDTO, L_FCNTL, L_KILL, L_EPERM, L_ALLOW, L_MAX };

#define CHILD_MAX	64

static struct sock_filter child_code[CHILD_MAX];
static uint8_t		 child_jt[CHILD_MAX], child_jf[CHILD_MAX];
static struct sock_fprog child_prog;	/* len 0: no child filter */
static unsigned short	 label_at[L_MAX];

/* Append one instruction; jt and jf are labels, resolved by child_link(). */
static void
emit(uint16_t code, uint32_t k, enum label jt, enum label jf)
{
	unsigned short	 n = child_prog.len++;

	child_code[n] = (struct sock_filter)BPF_STMT(code, k);
	child_jt[n] = jt;
	child_jf[n] = jf;
}

static void
place(enum label l)
{
	label_at[l] = child_prog.len;
}

/* Turn labels into the forward offsets BPF jumps take. */
static void
child_link(void)
{
	unsigned short	 i;

	for (i = 0; i < child_prog.len; i++) {
		if (child_jt[i] != L_NEXT)
			child_code[i].jt = label_at[child_jt[i]] - i - 1;
		if (child_jf[i] != L_NEXT)
			child_code[i].jf = label_at[child_jf[i]] - i - 1;
	}
	child_prog.filter = child_code;
}

#define ARG_LO(n)	(offsetof(struct seccomp_data, args[n]))
#define LD(off)		emit(BPF_LD | BPF_W | BPF_ABS, (off), L_NEXT, L_NEXT)
#define JEQ(k, t, f)	emit(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))

/*
 * Build the child's program in the parent, at start and when the resolver
 * is gone.  Arguments are 32-bit ints for every call checked here (the
 * kernel ignores the upper half), so the lower half is what is compared.
 * send(2) is sendto(2) without an address: one given would reach any
 * datagram socket on the machine.  sendmsg(2) is allowed on the resolver's
 * socket only, which is connected: a SOCK_SEQPACKET socket ignores any
 * address, so it reaches the resolver and nothing else.
 */
static void
child_build(void)
{
	size_t	 i;

	child_prog.len = 0;
	LD(offsetof(struct seccomp_data, arch));
	JEQ(AUDIT_ARCH_X86_64, L_NEXT, L_KILL);
	LD(offsetof(struct seccomp_data, nr));
	emit(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, L_KILL, L_NEXT);
	for (i = 0; i < sizeof(child_allowed) / sizeof(child_allowed[0]); i++)
		JEQ(child_allowed[i], L_ALLOW, L_NEXT);
	for (i = 0; i < sizeof(child_refused) / sizeof(child_refused[0]); i++)
		JEQ(child_refused[i], L_EPERM, L_NEXT);
	if (child_asks != -1) {
		JEQ(__NR_sendmsg, L_NEXT, L_SENDTO);
		LD(ARG_LO(0));
		JEQ((uint32_t)child_asks, L_ALLOW, L_KILL);
	}
	place(L_SENDTO);
	JEQ(__NR_sendto, L_NEXT, L_FCNTL);
	LD(ARG_LO(5));
	JEQ(0, L_ALLOW, L_KILL);
	place(L_FCNTL);
	JEQ(__NR_fcntl, L_NEXT, L_KILL);
	LD(ARG_LO(1));
	JEQ(F_GETFD, L_ALLOW, L_NEXT);
	JEQ(F_SETFD, L_ALLOW, L_NEXT);
	JEQ(F_GETFL, L_ALLOW, L_NEXT);
	JEQ(F_SETFL, L_NEXT, L_KILL);
	LD(ARG_LO(2));
	emit(BPF_JMP | BPF_JSET | BPF_K, O_ASYNC, L_KILL, L_ALLOW);
	place(L_KILL);
	emit(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, L_NEXT, L_NEXT);
	place(L_EPERM);
	emit(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, L_NEXT, L_NEXT);
	place(L_ALLOW);
	emit(BPF_RET | BPF_K, SECCOMP_RET_ALLOW, L_NEXT, L_NEXT);
	child_link();
}

/*
 * Confine unlink(2) to the pidfile's directory with Landlock (Linux 5.13),
 * so that the filter may allow unlinkat(2) whatever its arguments; without
 * Landlock the parent unlinks nothing (daemon.c empties the pidfile).
 */
static void
landlock_unlink(int dirfd)
{
	struct landlock_ruleset_attr	 attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_REMOVE_FILE |
		    LANDLOCK_ACCESS_FS_REMOVE_DIR
	};
	struct landlock_path_beneath_attr pb = {
		.allowed_access = LANDLOCK_ACCESS_FS_REMOVE_FILE,
		.parent_fd = dirfd
	};
	int	 fd;

	if ((fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr),
	    0)) == -1)
		return;
	if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &pb,
	    0) == 0 && syscall(SYS_landlock_restrict_self, fd, 0) == 0)
		sandbox_unlink = 1;
	close(fd);
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
	if (unlink_dirfd != -1)
		landlock_unlink(unlink_dirfd);
	child_build();
	if ((ctx = build_filter(metrics_dirfd, metrics_flags)) == NULL) {
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

/*
 * The resolver's socket, on which a child may send its question (with
 * sendmsg(2), for the answer's socket) after its filter is on; -1 when
 * there is none, or no more: the next children's filter allows it nowhere.
 */
void
sandbox_child_asks(int fd)
{
	child_asks = fd;
#ifdef SANDBOX_SECCOMP
	if (child_prog.len > 0)
		child_build();
#endif
}

/* Is the seccomp filter in use? */
int
sandbox_active(void)
{
	return sandbox_on;
}

/* May the parent unlink its pidfile (Landlock confines unlinkat)? */
int
sandbox_may_unlink(void)
{
	return !sandbox_on || sandbox_unlink;
}

/*
 * Enter the sandbox in a child, before reading from the client: no new
 * process, no new descriptor, no file growth (unless the log is a file on
 * stderr), then the child's own filter (which has no prlimit64, so the limits
 * come first).  Limits lowered to zero cannot be raised again without
 * privilege; a filter cannot be removed.
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
#ifdef SANDBOX_SECCOMP
	if (child_prog.len > 0 && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	    0, &child_prog) == -1) {
		log_warn("sandbox: seccomp");
		return -1;
	}
#endif
	return 0;
}
