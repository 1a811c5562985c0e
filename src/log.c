/*
 * log.c: logging to stderr (-d) or to syslog, OpenBSD style.
 *
 * The syslog client is our own: one datagram socket to /dev/log, opened
 * before chroot and the sandbox, non-blocking so that a stuck or missing
 * syslog daemon never blocks serving, and written with writev(2), which
 * names no address: a child's filter allows no sendmsg(2).  stderr is made
 * non-blocking (unless it is a terminal) for the same reason, and write errors
 * are ignored.
 * When stderr is the journal (systemd names it in JOURNAL_STREAM), each line
 * starts with its priority as "<N>" (sd-daemon(3)), so that journalctl -p
 * tells errors from the rest; syslog gets the priority in its header.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "srvexample.h"

#define LOG_LINE_MAX	1024

static int	 log_to_stderr = 1;
static int	 log_stderr_prefix = 1;	/* "srvexample: " on every line */
static int	 log_starting = 1;	/* errors get the prefix until ready */
static int	 log_to_syslog;
static int	 log_syslog_fd = -1;
static int	 log_facility = LOG_DAEMON;
static int	 log_verbose;
static int	 log_stderr_is_file;	/* children must be able to write it */
static int	 log_stderr_journal = -1;	/* stderr is the journal; -1: not known yet */

/* Connect the syslog socket; a missing syslog is not an error. */
static void
syslog_connect(void)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };

	if (log_syslog_fd == -1 &&
	    (log_syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1)
		return;
	strlcpy(sun.sun_path, _PATH_LOG, sizeof(sun.sun_path));
	(void)connect(log_syslog_fd, (struct sockaddr *)&sun, sizeof(sun));
}

/*
 * Set up logging: to stderr, to syslog, or during a detaching startup to both
 * (both = 1) so that startup errors reach the terminal too.
 */
void
log_init(enum log_sink sink, int facility, int both)
{
	struct stat	 st;

	log_facility = facility;
	log_to_stderr = sink == LOG_SINK_STDERR || both;
	log_to_syslog = sink == LOG_SINK_SYSLOG;
	log_stderr_prefix = both;
	if (log_to_syslog) {
		tzset();
		syslog_connect();
	}
	log_stderr_is_file = log_to_stderr && fstat(STDERR_FILENO, &st) == 0 &&
	    S_ISREG(st.st_mode);
	if (log_to_stderr && !isatty(STDERR_FILENO))
		(void)fcntl(STDERR_FILENO, F_SETFL,
		    fcntl(STDERR_FILENO, F_GETFL) | O_NONBLOCK);
}

/* Startup is over: errors are log lines like the others from now on. */
void
log_started(void)
{
	log_starting = 0;
}

/* After daemon(3): stdio is /dev/null, keep syslog only. */
void
log_detached(void)
{
	if (log_to_syslog)
		log_to_stderr = 0;
}

/* Does the log go to a regular file (so RLIMIT_FSIZE must stay)? */
int
log_to_file(void)
{
	return log_stderr_is_file;
}

/* The syslog descriptor (children keep it open), or -1. */
int
log_fd(void)
{
	return log_to_syslog ? log_syslog_fd : -1;
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

int
log_getverbose(void)
{
	return log_verbose;
}

/*
 * Is stderr the journal?  systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the
 * stream it connected to stderr; a descriptor that has been redirected since
 * no longer matches, and gets no prefixes.
 */
static int
stderr_is_journal(void)
{
	const char		*v = getenv("JOURNAL_STREAM");
	struct stat		 st;
	unsigned long long	 dev, ino;
	char			 end;

	if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/*
 * Send one formatted message to the sinks: the message is formatted once and
 * each sink's header goes in front of it through an iovec, so a line costs
 * one vsnprintf() and one system call per sink (children log twice each).
 */
static void
log_emit(int pri, char *msg, size_t len)
{
	static char	 prefix[] = SE_NAME ": ", nl[] = "\n";
	struct iovec	 iov[4];
	char		 head[96], stamp[32], level[3] = { '<', '6', '>' };
	struct tm	 tm;
	time_t		 now;
	ssize_t		 w;
	int		 n;

	if (log_to_stderr) {
		if (log_stderr_journal == -1)
			log_stderr_journal = stderr_is_journal();
		level[1] = '0' + (pri & LOG_PRIMASK);
		iov[0].iov_base = level;
		iov[0].iov_len = log_stderr_journal ? sizeof(level) : 0;
		iov[1].iov_base = prefix;
		iov[1].iov_len = log_stderr_prefix ||
		    (log_starting && pri <= LOG_ERR) ? sizeof(prefix) - 1 : 0;
		iov[2].iov_base = msg;
		iov[2].iov_len = len;
		iov[3].iov_base = nl;
		iov[3].iov_len = 1;
		/* A broken stderr must not stop clients being served. */
		w = writev(STDERR_FILENO, iov, 4);
		(void)w;
	}
	if (!log_to_syslog || log_syslog_fd == -1)
		return;
	now = time(NULL);
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
		stamp[0] = '\0';
	/* getpid() each time: a pid cached in memory would cost every child
	   a copied page when it stored its own. */
	n = snprintf(head, sizeof(head), "<%d>%s %s[%ld]: ",
	    log_facility | pri, stamp, SE_NAME, (long)getpid());
	iov[0].iov_base = head;
	iov[0].iov_len = n < (int)sizeof(head) ? (size_t)n : sizeof(head) - 1;
	iov[1].iov_base = msg;
	iov[1].iov_len = len;
	w = writev(log_syslog_fd, iov, 2);
	(void)w;
}

/* Format and emit; with errno_too append ": strerror(saved errno)". */
static void __attribute__((format(printf, 3, 0)))
log_vmsg(int pri, int errno_too, const char *fmt, va_list ap)
{
	char	 msg[LOG_LINE_MAX];
	int	 saved = errno, n;
	size_t	 len;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	len = n < 0 ? 0 : n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
	if (errno_too) {
		n = snprintf(msg + len, sizeof(msg) - len, ": %s",
		    strerror(saved));
		len += n < 0 ? 0 : n < (int)(sizeof(msg) - len) ? (size_t)n :
		    sizeof(msg) - len - 1;
	}
	log_emit(pri, msg, len);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERR, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERR, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose == 0)
		return;
	va_start(ap, fmt);
	log_vmsg(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * Make untrusted bytes printable for a log line: "\xHH" for control, non-ASCII,
 * quote and backslash bytes; at most 64 input bytes, "..." when cut.  Written
 * here rather than with strnvisx(3), which allocates: children call this
 * inside the sandbox.
 */
void
log_escape(char *dst, size_t dstlen, const void *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = src;
	size_t			 i, o = 0, cut = len > 64 ? 64 : len;

	if (dstlen == 0)
		return;
	for (i = 0; i < cut && o + 8 < dstlen; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"') {
			dst[o++] = p[i];
			continue;
		}
		dst[o++] = '\\';
		dst[o++] = 'x';
		dst[o++] = hex[p[i] >> 4];
		dst[o++] = hex[p[i] & 0xf];
	}
	if (i < len && o + 4 <= dstlen) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}
