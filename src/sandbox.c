/*
 * sandbox.c: the child's sandbox: resource limits as OpenSSH's sandbox sets
 * them, then a seccomp filter allowing only what serving one client needs.
 *
 * The filter is built and compiled to BPF once, in the parent
 * (sandbox_prepare); each child only attaches the ready program with one
 * prctl(), so the fork path does not pay for libseccomp's code generation.
 * The program is short and tested as a binary tree, which keeps the kernel's
 * per-attach work (JIT and action cache) small.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_SECCOMP
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#endif

#include "srvexample.h"

static int			 sandbox_off;	/* under valgrind */

/* Valgrind runs its own system calls in the process: no sandbox there. */
static int
under_valgrind(void)
{
	const char	*p = getenv("LD_PRELOAD");

	return p != NULL && strstr(p, "vgpreload") != NULL;
}

#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
static struct sock_fprog	 child_prog;

/* What a child may do once sandboxed. */
static const int child_syscalls[] = {
	SCMP_SYS(read), SCMP_SYS(recvfrom), SCMP_SYS(write), SCMP_SYS(sendto),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(shutdown), SCMP_SYS(close),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/* Build the child filter with libseccomp; NULL on error. */
static scmp_filter_ctx
build_filter(void)
{
	scmp_filter_ctx	 ctx;
	size_t		 i;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return NULL;
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) != 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) != 0)
		goto fail;
	for (i = 0; i < sizeof(child_syscalls) / sizeof(child_syscalls[0]); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, child_syscalls[i], 0) != 0)
			goto fail;
	/* malloc may need fresh memory; never executable memory. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0)
		goto fail;
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

/* Compile ctx to a BPF program in child_prog (through a pipe: libseccomp 2.5). */
static int
export_filter(scmp_filter_ctx ctx)
{
	char		 buf[32768];
	int		 p[2];
	ssize_t		 n;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if (seccomp_export_bpf(ctx, p[1]) != 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[1]);
	n = read(p[0], buf, sizeof(buf));
	close(p[0]);
	if (n <= 0 || n == (ssize_t)sizeof(buf) || n % sizeof(struct sock_filter))
		return -1;
	if ((child_prog.filter = malloc(n)) == NULL)
		return -1;
	memcpy(child_prog.filter, buf, n);
	child_prog.len = n / sizeof(struct sock_filter);
	return 0;
}

#endif /* HAVE_SECCOMP && !SANITIZERS */

/* Prepare the child sandbox once, in the parent; -1 on error (logged). */
int
sandbox_prepare(void)
{
#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
	scmp_filter_ctx	 ctx;
	int		 rv;
#endif

	if (under_valgrind()) {
		log_info("sandbox off: running under valgrind");
		sandbox_off = 1;
		return 0;
	}
#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
	if ((ctx = build_filter()) == NULL) {
		log_warnx("seccomp: cannot build the child filter");
		return -1;
	}
	rv = export_filter(ctx);
	seccomp_release(ctx);
	if (rv == -1)
		log_warnx("seccomp: cannot compile the child filter");
	return rv;
#else
	return 0;
#endif
}

/* Is the seccomp sandbox in use? */
int
sandbox_active(void)
{
#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
	return child_prog.filter != NULL;
#else
	return 0;
#endif
}

/*
 * Enter the sandbox in a child: no new processes, no file growth (unless the
 * log is a file on stderr), no new descriptors beyond the few open, then the
 * seccomp program (no_new_privs was set by the parent after the drop).
 */
int
sandbox_enter(int clientfd)
{
	struct rlimit	 zero = { 0, 0 };
	struct rlimit	 files;

	if (sandbox_off)
		return 0;
	files.rlim_cur = files.rlim_max = clientfd + 1;
	if (setrlimit(RLIMIT_NPROC, &zero) == -1 ||
	    (!log_to_file() && setrlimit(RLIMIT_FSIZE, &zero) == -1) ||
	    setrlimit(RLIMIT_NOFILE, &files) == -1) {
		log_warn("sandbox: setrlimit");
		return -1;
	}
#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
	if (child_prog.filter != NULL &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &child_prog) == -1) {
		log_warn("sandbox: seccomp");
		return -1;
	}
#endif
	return 0;
}
