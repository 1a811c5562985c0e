/*
 * session.c: serve one client on one descriptor: read the first line within
 * the deadline and at most max-line bytes, answer "You said:" and that line
 * as received, or one "Error: " line; then close lingering.  No globals and no
 * logging, so that tests and the fuzzer can drive it over a socketpair.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"


#define ERR_TOO_LONG	"Error: line too long\n"
#define ERR_TIMEOUT	"Error: timeout\n"

/*
 * Look for the end of the first line in line[0..have); bytes before from were
 * scanned already.  A line's length excludes its "\n" or "\r\n" terminator.
 * On SCAN_LINE *linelen is the length including the terminator.
 */
enum scan_result
session_scan(const char *line, size_t have, size_t from, size_t max_line,
    size_t *linelen)
{
	const char	*nl;
	size_t		 len, content;

	if ((nl = memchr(line + from, '\n', have - from)) != NULL) {
		len = nl - line + 1;
		content = len - 1;
		if (content > 0 && line[content - 1] == '\r')
			content--;
		if (content > max_line)
			return SCAN_TOO_LONG;
		*linelen = len;
		return SCAN_LINE;
	}
	/* Only a "\r" may follow max-line bytes, waiting for its "\n". */
	if (have > max_line + 1 ||
	    (have == max_line + 1 && line[max_line] != '\r'))
		return SCAN_TOO_LONG;
	return SCAN_MORE;
}

/* The buffer session_run needs: the reply prefix, max-line bytes and "\r\n". */
size_t
session_bufsize(size_t max_line)
{
	return SE_REPLY_PREFIX_LEN + max_line + 2;
}

/* Milliseconds left until deadline, at least 0. */
static int
ms_left(int64_t deadline)
{
	int64_t	 left = deadline - clock_ms();

	return left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

/* Wait until fd is ready for events or the deadline passes: 1, 0 (timeout), -1. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd = { .fd = fd, .events = events };
	int		 n, ms;

	for (;;) {
		ms = ms_left(deadline);
		n = poll(&pfd, 1, ms);
		if (n > 0)
			return 1;
		if (n == 0 && ms_left(deadline) == 0)
			return 0;
		if (n == -1 && errno != EINTR)
			return -1;
	}
}

/* Write all of buf before the deadline; 0, or -1 (error or time is up). */
static int
send_all(int fd, const char *buf, size_t len, int64_t deadline,
    struct session_result *res)
{
	ssize_t	 n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= n;
			res->bytes_out += n;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (wait_fd(fd, POLLOUT, deadline) != 1) {
			res->outcome = OUTCOME_TIMEOUT;
			return -1;
		}
	}
	return 0;
}

/* Answer with an error line; best effort, the client may be gone. */
static void
send_error(int fd, const char *msg, struct session_result *res)
{
	ssize_t	 n;

	n = send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		res->bytes_out += n;
}

/*
 * Serve one client.  buf has session_bufsize(max_line) bytes; the line is
 * read right behind the reply prefix so that the answer is one send().
 */
void
session_run(int fd, char *buf, size_t max_line, int64_t deadline,
    struct session_result *res)
{
	char		*line = buf + SE_REPLY_PREFIX_LEN;
	size_t		 have = 0, cap = max_line + 2, len = 0;
	enum scan_result s = SCAN_MORE;
	ssize_t		 n;
	int		 w;

	memset(res, 0, sizeof(*res));
	memcpy(buf, SE_REPLY_PREFIX, SE_REPLY_PREFIX_LEN);
	while (s == SCAN_MORE) {
		if ((w = wait_fd(fd, POLLIN, deadline)) != 1) {
			res->outcome = w == 0 ? OUTCOME_TIMEOUT : OUTCOME_ERROR;
			if (w == 0)
				send_error(fd, ERR_TIMEOUT, res);
			goto done;
		}
		n = recv(fd, line + have, cap - have, MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n == -1) {
			res->outcome = OUTCOME_ERROR;
			goto out;	/* reset: nothing to linger for */
		}
		if (n == 0) {
			if (have == 0) {
				res->outcome = OUTCOME_EOF;
				goto done;
			}
			if (have > max_line) {	/* max-line bytes and a lone "\r" */
				s = SCAN_TOO_LONG;
				break;
			}
			len = have;	/* a last line without terminator */
			break;
		}
		res->bytes_in += n;
		s = session_scan(line, have + n, have, max_line, &len);
		have += n;
	}
	res->line_len = s == SCAN_TOO_LONG ? have : len;
	if (s == SCAN_TOO_LONG) {
		res->outcome = OUTCOME_TOO_LONG;
		send_error(fd, ERR_TOO_LONG, res);
	} else if (send_all(fd, buf, SE_REPLY_PREFIX_LEN + len, deadline,
	    res) == 0)
		res->outcome = OUTCOME_OK;
	else if (res->outcome != OUTCOME_TIMEOUT)
		res->outcome = OUTCOME_ERROR;
done:
	session_linger(fd);
	return;
out:
	close(fd);
}

/*
 * Close without destroying the answer in flight: half-close, then discard
 * what the client still sends until it closes, for a bounded time and amount.
 * A plain close() with unread input makes the kernel send a reset.
 */
void
session_linger(int fd)
{
	char	 scratch[4096];	/* small: a deep stack costs page faults */
	int64_t	 deadline = clock_ms() + LINGER_MS;
	size_t	 total = 0;
	ssize_t	 n;

	if (shutdown(fd, SHUT_WR) == -1)
		goto out;
	while (total < LINGER_BYTES && wait_fd(fd, POLLIN, deadline) == 1) {
		n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			total += n;
	}
out:
	close(fd);
}
