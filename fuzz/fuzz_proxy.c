/*
 * fuzz_proxy.c: libFuzzer harness for the PROXY header parser (proxy.c).
 *
 * The input is what a balancer sent.  The child peeks at what has arrived
 * and calls proxy_parse() again each time more bytes come, so the harness
 * checks, besides memory safety (ASan, UBSan), that the answer cannot
 * depend on how the bytes were cut:
 *
 * 1. the result is -1 (with an error), 0 (more, with no error and fewer
 *    than PROXY_MAX_LEN bytes) or a length within the input and the limit;
 * 2. over every prefix the answers are monotonic: "more" until the first
 *    definite answer, then that same answer (length and header, or error)
 *    for every longer prefix; so a prefix of a valid header is never
 *    refused, bytes after the header are never looked at, and every byte
 *    of a prefix answered "more" lies inside the header (the reader in
 *    handoff.c relies on that to take those bytes before waiting again);
 * 3. a complete header names a usable client: local (use the connection's
 *    own address), or an AF_INET or AF_INET6 source that, for version 2,
 *    is the bytes at its fixed place.
 *
 * A violated invariant prints which and calls abort(): libFuzzer reports a
 * crash and saves the input.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srvexample.h"

#define INPUT_MAX	(PROXY_MAX_LEN + 64)

#define check(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Invariant 1 for one call; returns the result. */
static ssize_t
parse_checked(const uint8_t *d, size_t n, struct proxy_hdr *h, int *err)
{
	ssize_t	 r;

	r = proxy_parse(d, n, h, err);
	check(r >= -1 && (r == -1 || (size_t)r <= n) && r <= PROXY_MAX_LEN);
	if (r == -1)
		check(*err > PROXY_OK && *err < PROXY_E_TRUNCATED);
	else
		check(*err == PROXY_OK);
	if (r == 0)
		check(n < PROXY_MAX_LEN);
	return r;
}

/* Invariant 3: what a complete header says. */
static void
check_header(const uint8_t *d, const struct proxy_hdr *h)
{
	const struct sockaddr_in	*s4 = (const struct sockaddr_in *)&h->src;
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)&h->src;

	check(h->version == 1 || h->version == 2);
	check(h->version != 1 || memcmp(d, "PROXY ", 6) == 0);
	if (h->local)
		return;
	check(h->src.ss_family == AF_INET || h->src.ss_family == AF_INET6);
	check(h->dst.ss_family == h->src.ss_family);
	if (h->version != 2)
		return;
	if (h->src.ss_family == AF_INET)
		check(d[13] == 0x11 && memcmp(&s4->sin_addr, d + 16, 4) == 0 &&
		    memcmp(&s4->sin_port, d + 24, 2) == 0);
	else
		check(d[13] == 0x21 && memcmp(&s6->sin6_addr, d + 16, 16) == 0 &&
		    memcmp(&s6->sin6_port, d + 48, 2) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr h, first_h;
	ssize_t		 r, first = 0;
	size_t		 n = size > INPUT_MAX ? INPUT_MAX : size, k;
	int		 err, first_err = PROXY_OK;
	uint8_t		*d;

	/* A copy of exactly n bytes, so that ASan sees any read past it. */
	if ((d = malloc(n ? n : 1)) == NULL)
		abort();
	memcpy(d, data, n);
	for (k = 0; k <= n; k++) {
		r = parse_checked(d, k, &h, &err);
		if (first == 0) {
			first = r;
			first_h = h;
			first_err = err;
			continue;
		}
		/* Invariant 2: once decided, the answer stays. */
		check(r == first);
		if (r == -1)
			check(err == first_err);
		else
			check(memcmp(&h, &first_h, sizeof(h)) == 0);
	}
	if (first > 0)
		check_header(d, &first_h);
	free(d);
	return 0;
}
