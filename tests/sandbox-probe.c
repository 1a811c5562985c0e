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
 * and tries it, as one taken over by its client would: the cases ending in
 * -fd0 close fd 0 first, which RLIMIT_NOFILE 1 lets a new descriptor take.
 * One line on stdout: "CASE: ok", "CASE: failed: ERRNO" or "CASE: killed by
 * SIGNAL".  Exit 77 when the build has no seccomp sandbox.
 *
 * PROBE_PIDDIR names the pidfile's directory the filter is built for (none
 * when unset); PROBE_VICTIM a file outside it, for parent-unlink-outside.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>

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

static pid_t	 parent_pid;	/* the sandboxed parent, for its children */
static int	 piddir_fd = -1;	/* what the filter was built for */
static int	 resolver_sock = -1;	/* the resolver's socket (sendmsg-*) */

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
	int	 fd = syscall(SYS_pidfd_open, parent_pid, 0);

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

	return prlimit(parent_pid, RLIMIT_NOFILE, &one, NULL);
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

/* The attacks that need fd 0 free first (RLIMIT_NOFILE 1). */
static int
try_fd0(const char *name)
{
	struct sockaddr_in	 sin = { .sin_family = AF_INET };
	int			 fd;

	close(STDIN_FILENO);
	if (strcmp(name, "pidfd-parent-fd0") == 0)
		return try_pidfd_parent();
	if (strcmp(name, "open-read-fd0") == 0)
		return open("/proc/self/net/tcp", O_RDONLY);
	if (strcmp(name, "openat-read-fd0") == 0)
		return openat(AT_FDCWD, "/etc/hosts", O_RDONLY);
	if (strcmp(name, "socket-inet-fd0") == 0)
		return socket(AF_INET, SOCK_STREAM, 0);
	if (strcmp(name, "socket-unix-fd0") == 0)
		return socket(AF_UNIX, SOCK_DGRAM, 0);
	/* connect(2) a descriptor the child holds somewhere else. */
	if (strcmp(name, "connect-fd0") == 0) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 &&
		    errno != EPERM)
			return -1;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(9);
		return connect(fd == -1 ? STDOUT_FILENO : fd,
		    (struct sockaddr *)&sin, sizeof(sin));
	}
	errno = EINVAL;
	return -2;
}

/* Datagrams to an address of the caller's choosing: any socket on the host. */
static int
try_send_addressed(const char *name)
{
	static char		 x[] = "x";
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct iovec		 iov = { .iov_base = x, .iov_len = 1 };
	struct msghdr		 mh = { .msg_name = &sun,
	    .msg_namelen = sizeof(sun), .msg_iov = &iov, .msg_iovlen = 1 };

	strlcpy(sun.sun_path, "/dev/log", sizeof(sun.sun_path));
	if (strcmp(name, "sendto-addr") == 0)
		return sendto(STDOUT_FILENO, "x", 1, 0,
		    (struct sockaddr *)&sun, sizeof(sun));
	/* On the resolver's socket, the address is ignored. */
	if (strcmp(name, "sendmsg-resolver") == 0)
		return sendmsg(resolver_sock, &mh, 0);
	return sendmsg(STDOUT_FILENO, &mh, 0);	/* sendmsg, sendmsg-beside */
}

/* fcntl(2) that would make the kernel signal another process. */
static int
try_fcntl(const char *name)
{
	if (strcmp(name, "fcntl-getfl") == 0)
		return fcntl(STDOUT_FILENO, F_GETFL) == -1 ? -1 :
		    fcntl(STDOUT_FILENO, F_SETFL, O_NONBLOCK);
	if (strcmp(name, "fcntl-setown") == 0)
		return fcntl(STDOUT_FILENO, F_SETOWN, parent_pid);
	if (strcmp(name, "fcntl-setsig") == 0)
		return fcntl(STDOUT_FILENO, F_SETSIG, SIGKILL);
	if (strcmp(name, "fcntl-async") == 0)
		return fcntl(STDOUT_FILENO, F_SETFL, O_ASYNC);
	return fcntl(STDOUT_FILENO, F_DUPFD, 0);	/* fcntl-dupfd */
}

/* The parent may unlink its pidfile and nothing else. */
static int
try_parent_unlink(const char *name)
{
	const char	*v = getenv("PROBE_VICTIM");

	if (strcmp(name, "parent-unlink-pidfile") == 0)
		return unlinkat(piddir_fd, "x.pid", 0);
	/* The directory's own descriptor, with a path that ignores it. */
	return v == NULL ? -1 : unlinkat(piddir_fd, v, 0);
}

static const struct probe {
	const char	*name;
	int		(*fn)(void);
} probes[] = {
	{ "serve",		try_serve },
	{ "mmap-wx",		try_mmap_wx },
	{ "mprotect-x",		try_mprotect_x },
	{ "fork",		try_fork },
	{ "kill-parent",	NULL },		/* below: needs parent_pid */
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
		return kill(parent_pid, 0);
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
	if (strcmp(name, "alarm") == 0)
		return (int)alarm(0);
	if (strcmp(name, "unlink") == 0)
		return unlink("/nonexistent");
	if (strcmp(name, "dup") == 0)
		return dup(STDOUT_FILENO);
	if (strncmp(name, "fcntl-", 6) == 0 || strcmp(name, "parent-fcntl-setown") == 0)
		return try_fcntl(name + (name[0] == 'p' ? 7 : 0));
	if (strncmp(name, "send", 4) == 0)
		return try_send_addressed(name);
	if (strncmp(name, "parent-unlink-", 14) == 0)
		return try_parent_unlink(name);
	if (strlen(name) > 4 && strcmp(name + strlen(name) - 4, "-fd0") == 0)
		return try_fd0(name);
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
	const char	*dir = getenv("PROBE_PIDDIR");
	int		 status, rs[2];
	pid_t		 pid;

	if (geteuid() == 0 && ((pw = getpwnam("nobody")) == NULL ||
	    setgroups(0, NULL) == -1 || setresgid(pw->pw_gid, pw->pw_gid,
	    pw->pw_gid) == -1 || setresuid(pw->pw_uid, pw->pw_uid,
	    pw->pw_uid) == -1))
		_exit(91);
	if (dir != NULL && (piddir_fd = open(dir, O_PATH | O_DIRECTORY)) == -1)
		_exit(95);
	/* The resolver's socket, where children may send their question. */
	if (strncmp(name, "sendmsg-", 8) == 0) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, rs) == -1)
			_exit(96);
		resolver_sock = rs[1];
		sandbox_child_asks(resolver_sock);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    sandbox_parent(piddir_fd, -1, 0) == -1)
		_exit(92);
	if (!sandbox_active())
		_exit(77);
	parent_pid = getpid();
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
