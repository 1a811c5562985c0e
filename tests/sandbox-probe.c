/*
 * sandbox-probe: try one system call under srvexample's own sandbox
 * (src/sandbox.c, linked in) and say what happened, for tests/sandbox.bats.
 *
 *	sandbox-probe CASE
 *
 * A "parent" process sets no_new_privs, drops to nobody when run as root
 * (RLIMIT_NPROC does not bind root) and installs the filter as the daemon
 * does.  For a case named parent-*, the parent itself tries the call; for the
 * others it forks a child that enters the child sandbox (its resource limits)
 * and tries it.  One line on stdout: "CASE: ok", "CASE: failed: ERRNO" or
 * "CASE: killed by SIGNAL".  Exit 77 when the build has no seccomp sandbox.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

/* What a child of the daemon does: I/O on the descriptors it holds. */
static int
try_serve(void)
{
	struct pollfd	 p = { .fd = STDOUT_FILENO, .events = POLLOUT };
	char		*m;

	if (poll(&p, 1, 0) == -1 || write(STDOUT_FILENO, "", 0) == -1)
		return -1;
	if ((m = malloc(1 << 20)) == NULL)	/* mmap, PROT_READ|PROT_WRITE */
		return -1;
	free(m);
	return 0;
}

static int
try_mmap_wx(void)
{
	return mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0;
}

static int
try_mprotect_x(void)
{
	void	*p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);

	return p == MAP_FAILED ? -1 : mprotect(p, 4096, PROT_READ | PROT_EXEC);
}

static int
try_fork(void)
{
	pid_t	 pid = fork();

	if (pid == 0)
		_exit(0);
	return pid == -1 ? -1 : 0;
}

static int
try_pidfd_parent(void)
{
	int	 fd = syscall(SYS_pidfd_open, getppid(), 0);

	return fd == -1 ? -1 : (int)syscall(SYS_pidfd_send_signal, fd, 0,
	    NULL, 0);
}

static int
try_execve(void)
{
	char	 name[] = "true";
	char	*argv[] = { name, NULL }, *envp[] = { NULL };

	return execve("/bin/true", argv, envp);
}

static int
try_prlimit_parent(void)
{
	struct rlimit	 one = { 1, 1 };

	return prlimit(getppid(), RLIMIT_NOFILE, &one, NULL);
}

/* Signal a child as the parent does: through a pidfd, kill(2) without. */
static int
probe_kill(pid_t pid, int sig)
{
	int	 fd, rv;

	if (!sandbox_active())
		return kill(pid, sig);
	if ((fd = syscall(SYS_pidfd_open, pid, 0)) == -1)
		return -1;
	rv = syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
	close(fd);
	return rv;
}

static int
try_signal_child(void)
{
	int	 status;
	pid_t	 pid = fork();

	/*
	 * The child waits in poll(2), which the filter allows; pause(2) is not
	 * allowed and would kill it with SIGSYS whenever it got there before
	 * the SIGTERM did.
	 */
	if (pid == 0) {
		for (;;)
			(void)poll(NULL, 0, -1);
	}
	if (pid == -1 || probe_kill(pid, SIGTERM) == -1 ||
	    waitpid(pid, &status, 0) == -1)
		return -1;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
		return 0;
	errno = ECHILD;		/* it died some other way */
	return -1;
}

static const struct probe {
	const char	*name;
	int		(*fn)(void);
} probes[] = {
	{ "serve",		try_serve },
	{ "mmap-wx",		try_mmap_wx },
	{ "mprotect-x",		try_mprotect_x },
	{ "fork",		try_fork },
	{ "kill-parent",	NULL },		/* below: needs getppid() */
	{ "pidfd-parent",	try_pidfd_parent },
	{ "execve",		try_execve },
	{ "prlimit-parent",	try_prlimit_parent },
	{ "parent-kill",	NULL },
	{ "parent-signal-child", try_signal_child },
	{ "parent-execve",	try_execve },
	{ NULL,			NULL }
};

/* Cases that are one system call with fixed arguments. */
static int
try_simple(const char *name)
{
	if (strcmp(name, "kill-parent") == 0)
		return kill(getppid(), 0);
	if (strcmp(name, "parent-kill") == 0)
		return kill(getpid(), 0);
	if (strcmp(name, "open-read") == 0)
		return open("/etc/hosts", O_RDONLY);
	if (strcmp(name, "open-write") == 0)
		return open("/dev/null", O_WRONLY);
	if (strcmp(name, "socket-inet") == 0)
		return socket(AF_INET, SOCK_STREAM, 0);
	if (strcmp(name, "socket-packet") == 0)
		return socket(AF_PACKET, SOCK_RAW, 0);
	if (strcmp(name, "ptrace") == 0)
		return ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	if (strcmp(name, "unshare-user") == 0)
		return unshare(CLONE_NEWUSER);
	if (strcmp(name, "setuid") == 0)
		return setuid(getuid());
	if (strcmp(name, "prctl") == 0)
		return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	errno = EINVAL;
	return -2;
}

static int
run_case(const char *name)
{
	const struct probe	*p;

	for (p = probes; p->name != NULL; p++)
		if (strcmp(p->name, name) == 0 && p->fn != NULL)
			return p->fn();
	return try_simple(name);
}

/* Turn a wait status into the report line. */
static void
report(const char *name, int status)
{
	if (WIFSIGNALED(status))
		printf("%s: killed by SIG%s\n", name,
		    sigabbrev_np(WTERMSIG(status)));
	else if (WEXITSTATUS(status) == 0)
		printf("%s: ok\n", name);
	else
		printf("%s: failed: %s\n", name,
		    strerrorname_np(WEXITSTATUS(status)));
	fflush(stdout);
}

/* Try the case in this process and exit with 0 or its errno. */
static void
attempt(const char *name)
{
	int	 rv = run_case(name);

	if (rv == -2)
		_exit(100);
	_exit(rv < 0 ? errno : 0);
}

/* The daemon's parent: drop privileges, install the filter, then try. */
static void
parent(const char *name)
{
	struct passwd	*pw;
	int		 status;
	pid_t		 pid;

	if (geteuid() == 0 && ((pw = getpwnam("nobody")) == NULL ||
	    setgroups(0, NULL) == -1 || setresgid(pw->pw_gid, pw->pw_gid,
	    pw->pw_gid) == -1 || setresuid(pw->pw_uid, pw->pw_uid,
	    pw->pw_uid) == -1))
		_exit(91);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    sandbox_parent(-1, -1, 0) == -1)
		_exit(92);
	if (!sandbox_active())
		_exit(77);
	if (strncmp(name, "parent-", 7) == 0)
		attempt(name);
	if ((pid = fork()) == 0) {
		if (sandbox_enter() == -1)
			_exit(93);
		attempt(name);
	}
	if (pid == -1 || waitpid(pid, &status, 0) == -1)
		_exit(94);
	report(name, status);
	_exit(0);
}

int
main(int argc, char *argv[])
{
	int	 status;
	pid_t	 pid;

	if (argc != 2) {
		fprintf(stderr, "usage: sandbox-probe case\n");
		return 2;
	}
	if ((pid = fork()) == 0)
		parent(argv[1]);
	if (pid == -1 || waitpid(pid, &status, 0) == -1) {
		perror("sandbox-probe");
		return 1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		printf("%s: no seccomp sandbox in this build\n", argv[1]);
		return 77;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 100) {
		fprintf(stderr, "sandbox-probe: unknown case %s\n", argv[1]);
		return 2;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) > 90) {
		fprintf(stderr, "sandbox-probe: setup failed (%d)\n",
		    WEXITSTATUS(status));
		return 1;
	}
	if (strncmp(argv[1], "parent-", 7) == 0)
		report(argv[1], status);
	return 0;
}
