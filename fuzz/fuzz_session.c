/*
 * fuzz_session.c: libFuzzer harness for the line reader (session.c).
 *
 * Input: byte 0 picks max-line (1..64, low 6 bits), whether session_run()'s
 * answer is sent in short pieces (bit 6) and whether one of its reads fails
 * with ECONNRESET (bit 7); bytes 1 and 2 are a chunking pattern; the rest is
 * what the client sends.  Each input is checked three ways:
 *
 * 1. session_scan() fed the client bytes in the pattern's pieces, into a
 *    buffer of max-line + 2 bytes behind nothing else, exactly as
 *    session_run() reads them;
 * 2. the same in one piece: both must agree with a one-shot reference
 *    written from SPEC.md, so the result cannot depend on the chunking;
 * 3. session_run() itself over a socketpair, its recv() cut into the same
 *    pieces and its send() of the answer into short ones (the harness is
 *    linked with -Wl,--wrap=recv,--wrap=send), checking the reply byte for
 *    byte, the outcome, the byte counts and that it closed the fd.
 *
 * A violated invariant prints which and calls abort(): libFuzzer reports a
 * crash and saves the input.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

#define MAX_LINE_MAX	64		/* max-line is 1..MAX_LINE_MAX */
#define DATA_MAX	32768		/* fits a socketpair's buffer at once */
#define ERR_TOO_LONG	"Error: line too long\n"
#define WRAP_LEN_MAX	(MAX_LINE_MAX + 2)	/* reads into the line buffer */

/* An invariant: on failure say which, then abort() for libFuzzer. */
#define check(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
ssize_t	__real_recv(int, void *, size_t, int);
ssize_t	__wrap_recv(int, void *, size_t, int);
ssize_t	__real_send(int, const void *, size_t, int);
ssize_t	__wrap_send(int, const void *, size_t, int);

/* What the client's bytes must produce, per SPEC.md. */
enum ref_kind {
	REF_EOF,	/* nothing sent: no answer */
	REF_LINE,	/* a line with its terminator, len bytes */
	REF_PARTIAL,	/* bytes without "\n", then EOF: echoed as they are */
	REF_TOO_LONG,	/* more than max-line bytes before the terminator */
	REF_RESET	/* (harness only) a read failed: no answer */
};
struct ref {
	enum ref_kind	 kind;
	size_t		 len;
};

/*
 * A chunking pattern: four nibbles used in turn for each recv().  0 reads
 * as much as there is room for, 1..14 at most that many bytes, 15 fails the
 * call once with EINTR or EAGAIN (never twice in a row, so reads progress).
 */
struct chunker {
	uint8_t		 nib[4];
	unsigned	 i;
	int		 failed;
};

/* What a recv() may return under the pattern: -1 fail, 0 no limit, n. */
static int
chunker_next(struct chunker *ch)
{
	int	 n = ch->nib[ch->i++ % 4];

	if (n == 15 && !ch->failed) {
		ch->failed = 1;
		return -1;
	}
	ch->failed = 0;
	return n == 15 ? 0 : n;
}

static void
chunker_init(struct chunker *ch, uint8_t a, uint8_t b)
{
	memset(ch, 0, sizeof(*ch));
	ch->nib[0] = a >> 4;
	ch->nib[1] = a & 0xf;
	ch->nib[2] = b >> 4;
	ch->nib[3] = b & 0xf;
}

/*
 * The recv() and send() session.c calls, while wrap_fd is being served:
 * reads cut by wrap_ch, read number wrap_reset failing with ECONNRESET,
 * and with wrap_short_sends the answer sent in pieces cut by wrap_send_ch.
 */
static int		 wrap_fd = -1;
static struct chunker	 wrap_ch, wrap_send_ch;
static unsigned long	 wrap_calls, wrap_reset;
static int		 wrap_short_sends;

ssize_t
__wrap_recv(int fd, void *buf, size_t len, int flags)
{
	int	 c;

	/* Only reads into the line buffer; session_linger() drains 16 KiB. */
	if (fd != wrap_fd || len > WRAP_LEN_MAX)
		return __real_recv(fd, buf, len, flags);
	check(len > 0);		/* a full buffer must never be read into */
	if (++wrap_calls == wrap_reset) {
		errno = ECONNRESET;
		return -1;
	}
	if ((c = chunker_next(&wrap_ch)) == -1) {
		errno = wrap_ch.i % 2 ? EINTR : EAGAIN;
		return -1;
	}
	if (c > 0 && (size_t)c < len)
		len = c;
	return __real_recv(fd, buf, len, flags);
}

ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
	int	 c;

	/* Only the answer; an "Error: " line is sent once, best effort. */
	if (fd != wrap_fd || !wrap_short_sends || len < SE_REPLY_PREFIX_LEN ||
	    memcmp(buf, SE_REPLY_PREFIX, SE_REPLY_PREFIX_LEN) != 0)
		return __real_send(fd, buf, len, flags);
	if ((c = chunker_next(&wrap_send_ch)) == -1) {
		errno = wrap_send_ch.i % 2 ? EINTR : EAGAIN;
		return -1;
	}
	if (c > 0 && (size_t)c < len)
		len = c;
	return __real_send(fd, buf, len, flags);
}

/* The one-shot reference: the first line of d[0..n) under max-line m. */
static struct ref
reference(const uint8_t *d, size_t n, size_t m)
{
	const uint8_t	*nl = memchr(d, '\n', n);
	struct ref	 r;
	size_t		 content;

	if (nl != NULL) {
		r.len = nl - d + 1;
		content = r.len - 1;
		if (content > 0 && d[content - 1] == '\r')
			content--;
		r.kind = content <= m ? REF_LINE : REF_TOO_LONG;
	} else if (n == 0) {
		r.kind = REF_EOF;
		r.len = 0;
	} else {
		r.kind = n <= m ? REF_PARTIAL : REF_TOO_LONG;
		r.len = n;
	}
	return r;
}


/*
 * Read d[0..n) the way session_run() does, into a buffer of exactly
 * max-line + 2 bytes (so ASan sees any overrun), pieces cut by ch.
 * Read number reset (from 1; 0 for none) fails as a reset connection.
 * Returns the reference kind the reader reached; *have is what it buffered.
 */
static struct ref
model_read(const uint8_t *d, size_t n, size_t m, struct chunker ch,
    unsigned long reset, size_t *havep, unsigned long *calls)
{
	size_t		 cap = m + 2, have = 0, off = 0, len = 0, want;
	char		*line;
	enum scan_result s = SCAN_MORE;
	struct ref	 r = { REF_EOF, 0 };
	int		 c;

	if ((line = malloc(cap)) == NULL)
		abort();
	*calls = 0;
	while (s == SCAN_MORE) {
		check(have < cap);	/* SCAN_MORE with no room left */
		if (++*calls == reset) {
			r.kind = REF_RESET;
			break;
		}
		if ((c = chunker_next(&ch)) == -1)
			continue;
		want = cap - have;
		if (c > 0 && (size_t)c < want)
			want = c;
		if (want > n - off)
			want = n - off;
		if (want == 0) {	/* EOF */
			r.kind = have == 0 ? REF_EOF : have > m ? REF_TOO_LONG :
			    REF_PARTIAL;
			r.len = have;
			break;
		}
		memcpy(line + have, d + off, want);
		off += want;
		s = session_scan(line, have + want, have, m, &len);
		have += want;
	}
	if (s == SCAN_LINE) {
		/* len is just past the first "\n", the content within max-line */
		check(len > 0 && len <= have && line[len - 1] == '\n');
		check(memchr(line, '\n', len - 1) == NULL);
		check(len - 1 - (len >= 2 && line[len - 2] == '\r') <= m);
		r.kind = REF_LINE;
		r.len = len;
	} else if (s == SCAN_TOO_LONG) {
		r.kind = REF_TOO_LONG;
		r.len = have;
	}
	free(line);
	*havep = have;
	return r;
}

/* Do the chunked reader and the reference agree? */
static void
check_model(const uint8_t *d, size_t n, size_t m, const struct ref *ref,
    const struct ref *got)
{
	if (got->kind == REF_RESET)
		return;
	check(got->kind == ref->kind);
	check(got->kind == REF_EOF || got->kind == REF_TOO_LONG ||
	    got->len == ref->len);
}

static void
write_all(int fd, const uint8_t *d, size_t n)
{
	ssize_t	 w;

	while (n > 0) {
		w = write(fd, d, n);
		check(w > 0);
		d += w;
		n -= w;
	}
}

/*
 * Read the reply until EOF; more than max bytes is a failure.  With reset,
 * the server closed without draining, which a socketpair reports as a reset.
 */
static size_t
read_reply(int fd, char *buf, size_t max, int reset)
{
	size_t	 have = 0;
	ssize_t	 r;

	for (;;) {
		r = read(fd, buf + have, max + 1 - have);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == ECONNRESET && reset)
			return have;
		check(r != -1);
		if (r == 0)
			return have;
		have += r;
		check(have <= max);
	}
}

/* Does reply equal the "You said:" answer for d[0..len)? */
static int
is_echo(const char *reply, size_t rlen, const uint8_t *d, size_t len)
{
	return rlen == SE_REPLY_PREFIX_LEN + len &&
	    memcmp(reply, SE_REPLY_PREFIX, SE_REPLY_PREFIX_LEN) == 0 &&
	    memcmp(reply + SE_REPLY_PREFIX_LEN, d, len) == 0;
}

/* Serve d[0..n) with session_run() over a socketpair; check what it does. */
static void
check_session_run(const uint8_t *d, size_t n, size_t m,
    const struct chunker *ch, const struct ref *ref, const struct ref *got,
    int short_sends, unsigned long reset, size_t model_have,
    unsigned long model_calls)
{
	char			 reply[SE_REPLY_PREFIX_LEN + MAX_LINE_MAX + 2 + 1];
	struct session_result	 res;
	char			*buf;
	size_t			 rlen, bufsize = session_bufsize(m);
	int			 sv[2], ok;

	check(bufsize == SE_REPLY_PREFIX_LEN + m + 2);
	if ((buf = malloc(bufsize)) == NULL)
		abort();
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	write_all(sv[1], d, n);
	check(shutdown(sv[1], SHUT_WR) == 0);
	wrap_fd = sv[0];
	wrap_ch = *ch;
	wrap_send_ch = *ch;
	wrap_calls = 0;
	wrap_reset = reset;
	wrap_short_sends = short_sends;
	/* Everything is there already: the deadline is only a safety net. */
	session_run(sv[0], buf, m, clock_ms() + 2000, &res);
	wrap_fd = -1;
	/* session_run() must close the client */
	check(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
	/* The longest answer: the prefix and a line of max-line, or an error. */
	rlen = SE_REPLY_PREFIX_LEN + m + 2;
	if (rlen < strlen(ERR_TOO_LONG))
		rlen = strlen(ERR_TOO_LONG);
	rlen = read_reply(sv[1], reply, rlen, got->kind == REF_RESET);
	close(sv[1]);
	free(buf);

	/* Same reads as the model: same bytes buffered, never over the cap. */
	check(res.bytes_in <= m + 2);
	check(res.bytes_in == model_have && wrap_calls == model_calls);
	check(res.bytes_out == rlen);
	if (got->kind == REF_RESET) {
		check(rlen == 0 && res.outcome == OUTCOME_ERROR);
		return;
	}
	switch (ref->kind) {
	case REF_EOF:
		ok = rlen == 0 && res.outcome == OUTCOME_EOF;
		break;
	case REF_LINE:
	case REF_PARTIAL:
		ok = is_echo(reply, rlen, d, ref->len) &&
		    res.outcome == OUTCOME_OK && res.line_len == ref->len;
		break;
	case REF_TOO_LONG:
		ok = rlen == strlen(ERR_TOO_LONG) &&
		    memcmp(reply, ERR_TOO_LONG, rlen) == 0 &&
		    res.outcome == OUTCOME_TOO_LONG;
		break;
	default:
		ok = 0;
	}
	check(ok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chunker	 ch, whole;
	struct ref	 ref, got;
	size_t		 m, n, have, have1;
	unsigned long	 calls, calls1, reset;
	const uint8_t	*d;
	int		 short_sends;

	if (size < 3)
		return 0;
	m = data[0] % MAX_LINE_MAX + 1;
	short_sends = (data[0] & 0x40) != 0;
	reset = data[0] & 0x80 ? 1 + (data[1] & 3) : 0;
	chunker_init(&ch, data[1], data[2]);
	chunker_init(&whole, 0, 0);
	d = data + 3;
	n = size - 3 > DATA_MAX ? DATA_MAX : size - 3;

	ref = reference(d, n, m);
	got = model_read(d, n, m, whole, 0, &have1, &calls1);
	check_model(d, n, m, &ref, &got);
	got = model_read(d, n, m, ch, reset, &have, &calls);
	check_model(d, n, m, &ref, &got);
	check_session_run(d, n, m, &ch, &ref, &got, short_sends, reset, have,
	    calls);
	return 0;
}
