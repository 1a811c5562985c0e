/*
 * metrics.c: the counters as a Prometheus text file (exposition format
 * 0.0.4) for node_exporter's textfile collector, written by the parent every
 * metrics-interval seconds and on SIGUSR1.
 *
 * Each write goes to a temporary file in the same directory, which rename(2)
 * then puts in place, so a scrape never reads half a file.  The directory
 * is opened once at startup, before the privilege drop and any chroot, and
 * both steps go through that descriptor (openat, renameat), so the parent
 * needs no path outside it once sandboxed.
 *
 * The parent's seccomp filter (sandbox.c) allows this as narrowly as
 * seccomp can say it: openat with that descriptor's number and exactly the
 * flags used here, renameat with that number on both sides.  A filter sees
 * only a path's address, never the path, and an absolute path ignores the
 * descriptor, so it cannot confine the names to the directory.  That leaves
 * a child nothing: it closes every inherited descriptor, this one included,
 * and holds RLIMIT_NOFILE 1, so any openat fails (EMFILE) before a path is
 * looked at; what remains is renameat as its user, who after the drop owns
 * this directory, the pidfile's and nothing else of the system, as unlinkat
 * on the pidfile's directory already allows.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

#define METRICS_BUF	4096

static int	 metrics_dir = -1;
static char	 metrics_base[NAME_MAX + 1];
static char	 metrics_tmp[NAME_MAX + 1];
static char	 metrics_what[PATH_MAX + 16];	/* for the log */
static time_t	 metrics_started;
static struct ratelimit metrics_rl;

/* The flags of the temporary file's openat(2), which the filter checks. */
int
metrics_open_flags(void)
{
	return O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC;
}

/*
 * Open the directory of c's metrics-file, before the privilege drop;
 * nothing to do without one.  -1 (logged) when it cannot be opened.
 */
int
metrics_open(const struct conf *c)
{
	char	 dir[PATH_MAX], base[PATH_MAX];

	metrics_started = time(NULL);
	if (c->metrics_file == NULL)
		return 0;
	if (strlcpy(dir, c->metrics_file, sizeof(dir)) >= sizeof(dir) ||
	    strlcpy(base, c->metrics_file, sizeof(base)) >= sizeof(base) ||
	    strlcpy(metrics_base, basename(base), sizeof(metrics_base)) >=
	    sizeof(metrics_base) ||
	    snprintf(metrics_tmp, sizeof(metrics_tmp), ".%s.tmp", metrics_base) >=
	    (int)sizeof(metrics_tmp) || strcmp(metrics_base, "/") == 0) {
		log_warnx("metrics-file %s: not a file name", c->metrics_file);
		return -1;
	}
	snprintf(metrics_what, sizeof(metrics_what), "metrics-file %s",
	    c->metrics_file);
	if ((metrics_dir = open(dirname(dir), O_PATH | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		log_warn("metrics-file %s: directory %s", c->metrics_file, dir);
		return -1;
	}
	return 0;
}

/* The directory's descriptor, for the filter; -1 without metrics-file. */
int
metrics_dirfd(void)
{
	return metrics_dir;
}

/* Append to the buffer, keeping count; *len past size means truncated. */
static void __attribute__((format(printf, 4, 5)))
put(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf + (*len < size ? *len : size),
	    *len < size ? size - *len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += n;
}

/* A metric's HELP and TYPE lines. */
static void
head(char *buf, size_t size, size_t *len, const char *name, const char *type,
    const char *help)
{
	put(buf, size, len, "# HELP srvexample_%s %s\n# TYPE srvexample_%s %s\n",
	    name, help, name, type);
}

/* Format every series, zeros included; the length, or -1 if too long. */
static ssize_t
format(const struct server *s, char *buf, size_t size)
{
	static const struct {
		enum outcome	 o;
		const char	*name;
	} outcomes[] = {
		{ OUTCOME_OK, "ok" }, { OUTCOME_EOF, "eof" },
		{ OUTCOME_TIMEOUT, "timeout" }, { OUTCOME_TOO_LONG, "too-long" },
		{ OUTCOME_ERROR, "error" }, { OUTCOME_DENIED, "denied" },
	};
	size_t	 len = 0, i;
	int	 r;

	head(buf, size, &len, "clients_total", "counter",
	    "Clients that ended, by outcome.");
	for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		put(buf, size, &len, "srvexample_clients_total{outcome=\"%s\"} "
		    "%lu\n", outcomes[i].name, s->st.outcome[outcomes[i].o]);
	head(buf, size, &len, "refused_total", "counter",
	    "Clients refused with an error line, by reason.");
	for (r = REFUSAL_NONE + 1; r < REFUSAL_MAX; r++)
		put(buf, size, &len, "srvexample_refused_total{reason=\"%s\"} "
		    "%lu\n", policy_refusal_name(r), s->st.refused[r]);
	head(buf, size, &len, "crashes_total", "counter",
	    "Children killed by a signal the parent did not send.");
	put(buf, size, &len, "srvexample_crashes_total %lu\n", s->st.crashed);
	head(buf, size, &len, "children", "gauge", "Children alive now.");
	put(buf, size, &len, "srvexample_children %u\n", s->kids.n);
	head(buf, size, &len, "max_children", "gauge",
	    "The max-children setting.");
	put(buf, size, &len, "srvexample_max_children %d\n",
	    s->conf->max_children);
	head(buf, size, &len, "queued", "gauge",
	    "Clients waiting in the listen queues now.");
	put(buf, size, &len, "srvexample_queued %lu\n",
	    listen_queued(s->ctx->lfd, s->ctx->nlfd));
	head(buf, size, &len, "start_time_seconds", "gauge",
	    "Start time of the daemon since the Unix epoch in seconds.");
	put(buf, size, &len, "srvexample_start_time_seconds %lld\n",
	    (long long)metrics_started);
	return len < size ? (ssize_t)len : -1;
}

/* Write all of buf to fd; -1 on error. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * Write the metrics file now: the temporary file, then the rename.  A
 * failure is logged (rate-limited) and changes nothing else: serving goes
 * on, and the next write tries again.
 */
void
metrics_write(const struct server *s, int64_t now)
{
	char	 buf[METRICS_BUF];
	ssize_t	 len;
	int	 fd, e;

	if (metrics_dir == -1)
		return;
	if ((len = format(s, buf, sizeof(buf))) == -1) {
		errno = EOVERFLOW;
		goto fail;
	}
	if ((fd = openat(metrics_dir, metrics_tmp, metrics_open_flags(),
	    0644)) == -1)
		goto fail;
	if (write_all(fd, buf, len) == -1) {
		e = errno;
		close(fd);
		errno = e;
		goto fail;
	}
	if (close(fd) == -1 ||
	    renameat(metrics_dir, metrics_tmp, metrics_dir, metrics_base) == -1)
		goto fail;
	return;
fail:
	log_repeated(&metrics_rl, now, metrics_what);
}
