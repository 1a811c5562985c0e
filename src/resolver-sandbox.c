/*
 * resolver-sandbox.c: the resolver worker's seccomp filter.
 *
 * The children's filter is a list of what is allowed; this one is a list
 * of what is not, because what NSS modules do is not ours to list: files
 * read, sockets to name servers, nscd, systemd-resolved or avahi, netlink,
 * libraries loaded late (with their constructors' prctl() calls), threads.
 * What the worker never needs is taken away: running a program, touching
 * another process (signals to others, F_SETOWN, ptrace, pidfds, fork),
 * writing, creating or removing files, listening, and the kernel's
 * administrative calls.  A module that tries is refused with EPERM (it
 * copes, as with any failure); exec and ptrace kill the worker.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#ifdef HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "srvexample.h"

#if defined(HAVE_SECCOMP) && !defined(SANITIZERS)
#define RESOLVER_SECCOMP	1
#endif

#ifdef RESOLVER_SECCOMP
/* Refused with EPERM whatever the arguments. */
static const int refused[] = {
	SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(tkill),
	SCMP_SYS(pidfd_open), SCMP_SYS(pidfd_send_signal), SCMP_SYS(pidfd_getfd),
	SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4),
	SCMP_SYS(creat), SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(rename),
	SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(mkdir),
	SCMP_SYS(mkdirat), SCMP_SYS(rmdir), SCMP_SYS(link), SCMP_SYS(linkat),
	SCMP_SYS(symlink), SCMP_SYS(symlinkat), SCMP_SYS(mknod),
	SCMP_SYS(mknodat), SCMP_SYS(chmod), SCMP_SYS(fchmod),
	SCMP_SYS(fchmodat), SCMP_SYS(chown), SCMP_SYS(fchown),
	SCMP_SYS(fchownat), SCMP_SYS(lchown), SCMP_SYS(truncate),
	SCMP_SYS(ftruncate), SCMP_SYS(utimensat), SCMP_SYS(utimes),
	SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root),
	SCMP_SYS(chroot), SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(keyctl), SCMP_SYS(add_key),
	SCMP_SYS(request_key), SCMP_SYS(init_module), SCMP_SYS(finit_module),
	SCMP_SYS(delete_module), SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load),
	SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(acct),
	SCMP_SYS(quotactl), SCMP_SYS(setuid), SCMP_SYS(setgid),
	SCMP_SYS(setreuid), SCMP_SYS(setregid), SCMP_SYS(setresuid),
	SCMP_SYS(setresgid), SCMP_SYS(setgroups), SCMP_SYS(setfsuid),
	SCMP_SYS(setfsgid), SCMP_SYS(capset), SCMP_SYS(personality),
	SCMP_SYS(userfaultfd), SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter),
	SCMP_SYS(io_uring_register), SCMP_SYS(memfd_create),
	SCMP_SYS(name_to_handle_at), SCMP_SYS(open_by_handle_at),
	SCMP_SYS(fanotify_init), SCMP_SYS(process_madvise),
};

/* Fatal: a worker that tries these has been taken over. */
static const int fatal_calls[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(ptrace),
	SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(kcmp),
};

/* Open flags that write or create, one rule each (any of them refuses). */
static const int writing[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND };

/* fcntl commands that make the kernel signal somebody. */
static const int owner_cmds[] = { F_SETOWN, F_SETOWN_EX, F_SETSIG, F_SETLEASE };

#define DENY(ctx, call, ...) (seccomp_rule_add((ctx), SCMP_ACT_ERRNO(EPERM), \
	SCMP_SYS(call), __VA_ARGS__) != 0)

/* The calls refused only with some arguments. */
static int
add_checked(scmp_filter_ctx ctx, pid_t self)
{
	size_t	 i;

	for (i = 0; i < sizeof(writing) / sizeof(writing[0]); i++)
		if (DENY(ctx, openat, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, writing[i],
		    writing[i])) ||
		    DENY(ctx, open, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, writing[i],
		    writing[i])))
			return -1;
	for (i = 0; i < sizeof(owner_cmds) / sizeof(owner_cmds[0]); i++)
		if (DENY(ctx, fcntl, 1, SCMP_A1(SCMP_CMP_EQ, owner_cmds[i])))
			return -1;
	/* Signals to itself only (abort(3) raises SIGABRT), threads only. */
	if (DENY(ctx, kill, 1, SCMP_A0(SCMP_CMP_NE, self)) ||
	    DENY(ctx, tgkill, 1, SCMP_A0(SCMP_CMP_NE, self)) ||
	    DENY(ctx, rt_sigqueueinfo, 1, SCMP_A0(SCMP_CMP_NE, self)) ||
	    DENY(ctx, rt_tgsigqueueinfo, 1, SCMP_A0(SCMP_CMP_NE, self)) ||
	    DENY(ctx, clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)) ||
	    DENY(ctx, openat2, 0))
		return -1;
	/* glibc falls back to clone(2), whose flags the filter can see. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
	    0) != 0)
		return -1;
	return 0;
}

/* Build the filter; NULL on error. */
static scmp_filter_ctx
build_filter(void)
{
	scmp_filter_ctx	 ctx;
	size_t		 i;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return NULL;
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) != 0)
		goto fail;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), refused[i],
		    0) != 0)
			goto fail;
	for (i = 0; i < sizeof(fatal_calls) / sizeof(fatal_calls[0]); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, fatal_calls[i],
		    0) != 0)
			goto fail;
	if (add_checked(ctx, getpid()) == -1)
		goto fail;
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}
#endif /* RESOLVER_SECCOMP */

/*
 * Install the worker's filter, before its threads (they inherit it).
 * -1 (logged) on error; nothing under valgrind, as for the parent.
 */
int
resolver_sandbox(void)
{
#ifdef RESOLVER_SECCOMP
	scmp_filter_ctx	 ctx;
	int		 rv;

	if (sandbox_under_valgrind())
		return 0;
	if ((ctx = build_filter()) == NULL) {
		log_warnx("resolver: cannot build the seccomp filter");
		return -1;
	}
	if ((rv = seccomp_load(ctx)) != 0) {
		errno = -rv;
		log_warn("resolver: cannot load the seccomp filter");
	}
	seccomp_release(ctx);
	return rv == 0 ? 0 : -1;
#else
	return 0;
#endif
}
