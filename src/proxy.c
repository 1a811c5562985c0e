/*
 * proxy.c: parse a PROXY protocol header, version 1 (text) or 2 (binary), as
 * HAProxy's send-proxy and send-proxy-v2 write it.  Pure functions: no I/O,
 * no globals, no logging, so the fuzzer can call them directly.
 *
 * proxy_parse() is called on what has arrived so far (peeked, not read): it
 * says "more", "invalid" or "complete, N bytes", and judges a prefix of a
 * valid header as "more", never as invalid, so that the reader can wait.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>

#include "srvexample.h"

#define V1_PREFIX	"PROXY "
#define V1_MAX		107	/* the longest v1 line, "\r\n" included */
#define V2_SIG		"\r\n\r\n\0\r\nQUIT\n"
#define V2_SIG_LEN	12
#define V2_FIXED	16	/* signature, version/command, family, length */
#define V2_ADDR4	12	/* two IPv4 addresses and two ports */
#define V2_ADDR6	36	/* two IPv6 addresses and two ports */

static const char *const error_names[PROXY_E_MAX] = {
	"proxy-ok", "proxy-bad-signature", "proxy-bad-version",
	"proxy-bad-command", "proxy-bad-family", "proxy-bad-address",
	"proxy-bad-tlv", "proxy-too-long", "proxy-truncated", "proxy-timeout",
	"proxy-eof", "proxy-error", "proxy-untrusted"
};

/* The log name of an error ("reason=" in the refusal record). */
const char *
proxy_error_name(int e)
{
	return e >= 0 && e < PROXY_E_MAX ? error_names[e] : "proxy-error";
}

/* Does d[0..n) agree with the first n bytes of want (n may be short)? */
static int
prefix_ok(const uint8_t *d, size_t n, const char *want, size_t wantlen)
{
	return memcmp(d, want, n < wantlen ? n : wantlen) == 0;
}

/* A decimal port "0".."65535" without sign or leading zero; -1 if not. */
static int
v1_port(const char *s)
{
	long	 v = 0;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0') || strlen(s) > 5)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= 65535 ? (int)v : -1;
}

/* Fill a socket address of family af from address text and port; -1 if bad. */
static int
v1_sockaddr(int af, const char *a, const char *p, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)ss;
	int			 port;

	memset(ss, 0, sizeof(*ss));
	if ((port = v1_port(p)) == -1)
		return -1;
	ss->ss_family = af;
	if (af == AF_INET) {
		s4->sin_port = htons(port);
		return inet_pton(AF_INET, a, &s4->sin_addr) == 1 ? 0 : -1;
	}
	s6->sin6_port = htons(port);
	return inet_pton(AF_INET6, a, &s6->sin6_addr) == 1 ? 0 : -1;
}

/*
 * The fields of a complete v1 line (without "\r\n"): "PROXY UNKNOWN..." or
 * "PROXY TCP4|TCP6 SRC DST SPORT DPORT", exactly one space between fields.
 */
static int
v1_fields(char *line, struct proxy_hdr *h)
{
	char	*f[6], *p = line;
	int	 n, af;

	for (n = 0; n < 6; n++) {
		f[n] = p;
		if ((p = strchr(p, ' ')) == NULL)
			break;
		*p++ = '\0';
	}
	if (n >= 1 && strcmp(f[1], "UNKNOWN") == 0) {
		h->local = 1;		/* the rest of the line is ignored */
		return PROXY_OK;
	}
	if (n < 1 || (strcmp(f[1], "TCP4") != 0 && strcmp(f[1], "TCP6") != 0))
		return PROXY_E_FAMILY;
	if (n != 5)
		return PROXY_E_ADDRESS;
	af = f[1][3] == '4' ? AF_INET : AF_INET6;
	if (v1_sockaddr(af, f[2], f[4], &h->src) == -1 ||
	    v1_sockaddr(af, f[3], f[5], &h->dst) == -1)
		return PROXY_E_ADDRESS;
	return PROXY_OK;
}

/* Version 1: a text line of at most 107 bytes ending in "\r\n". */
static ssize_t
v1_parse(const uint8_t *d, size_t n, struct proxy_hdr *h, int *err)
{
	char		 line[V1_MAX];
	const uint8_t	*nl;
	size_t		 len;

	if ((nl = memchr(d, '\n', n < V1_MAX ? n : V1_MAX)) == NULL) {
		if (n < V1_MAX)
			return 0;
		*err = PROXY_E_TOO_LONG;
		return -1;
	}
	len = nl - d + 1;
	if (len < 2 || d[len - 2] != '\r' || memchr(d, '\0', len) != NULL ||
	    memchr(d, '\r', len - 2) != NULL) {
		*err = PROXY_E_ADDRESS;
		return -1;
	}
	memcpy(line, d, len - 2);
	line[len - 2] = '\0';
	h->version = 1;
	if ((*err = v1_fields(line, h)) != PROXY_OK)
		return -1;
	return len;
}

/* Check the TLVs of a v2 header: each type, length and value fits. */
static int
v2_tlvs_ok(const uint8_t *t, size_t n)
{
	size_t	 len;

	while (n > 0) {
		if (n < 3)
			return 0;
		len = 3 + ((size_t)t[1] << 8 | t[2]);
		if (len > n)
			return 0;
		t += len;
		n -= len;
	}
	return 1;
}

/* The addresses of a complete v2 PROXY header of family fam. */
static int
v2_addresses(uint8_t fam, const uint8_t *a, size_t len, struct proxy_hdr *h)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&h->src;
	struct sockaddr_in	*d4 = (struct sockaddr_in *)&h->dst;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&h->src;
	struct sockaddr_in6	*d6 = (struct sockaddr_in6 *)&h->dst;
	size_t			 need;

	switch (fam) {
	case 0x00:		/* AF_UNSPEC: the connection's own addresses */
		h->local = 1;
		return v2_tlvs_ok(a, len) ? PROXY_OK : PROXY_E_TLV;
	case 0x11:		/* TCP over IPv4 */
		need = V2_ADDR4;
		break;
	case 0x21:		/* TCP over IPv6 */
		need = V2_ADDR6;
		break;
	default:		/* UDP and AF_UNIX: not for a TCP service */
		return PROXY_E_FAMILY;
	}
	if (len < need)
		return PROXY_E_ADDRESS;
	if (!v2_tlvs_ok(a + need, len - need))
		return PROXY_E_TLV;
	if (fam == 0x11) {
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(&d4->sin_addr, a + 4, 4);
		memcpy(&s4->sin_port, a + 8, 2);
		memcpy(&d4->sin_port, a + 10, 2);
	} else {
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		memcpy(&d6->sin6_addr, a + 16, 16);
		memcpy(&s6->sin6_port, a + 32, 2);
		memcpy(&d6->sin6_port, a + 34, 2);
	}
	return PROXY_OK;
}

/* Version 2: 16 fixed bytes, then length bytes of addresses and TLVs. */
static ssize_t
v2_parse(const uint8_t *d, size_t n, struct proxy_hdr *h, int *err)
{
	size_t	 total;

	if (n < V2_FIXED)
		return 0;
	if ((d[12] >> 4) != 2) {
		*err = PROXY_E_VERSION;
		return -1;
	}
	if ((d[12] & 0xf) > 1) {
		*err = PROXY_E_COMMAND;
		return -1;
	}
	total = V2_FIXED + ((size_t)d[14] << 8 | d[15]);
	if (total > PROXY_MAX_LEN) {
		*err = PROXY_E_TOO_LONG;
		return -1;
	}
	if (n < total)
		return 0;
	h->version = 2;
	if ((d[12] & 0xf) == 0) {	/* LOCAL: a health check; the rest is ignored */
		h->local = 1;
		return total;
	}
	if ((*err = v2_addresses(d[13], d + V2_FIXED, total - V2_FIXED, h)) !=
	    PROXY_OK)
		return -1;
	return total;
}

/*
 * Parse the header at the start of d[0..n).  Returns its length (> 0) when
 * complete and valid, 0 when d is a valid beginning that needs more bytes
 * (never with n >= PROXY_MAX_LEN), or -1 with *err set.  On success h holds
 * the version, and either local (use the connection's own addresses: v1
 * UNKNOWN, v2 LOCAL or AF_UNSPEC) or the client's (src) and server's (dst)
 * addresses.  Bytes after the header are never looked at.
 */
ssize_t
proxy_parse(const uint8_t *d, size_t n, struct proxy_hdr *h, int *err)
{
	memset(h, 0, sizeof(*h));
	*err = PROXY_OK;
	if (n == 0)
		return 0;
	if (prefix_ok(d, n, V1_PREFIX, sizeof(V1_PREFIX) - 1))
		return n < sizeof(V1_PREFIX) - 1 ? 0 : v1_parse(d, n, h, err);
	if (prefix_ok(d, n, V2_SIG, V2_SIG_LEN))
		return v2_parse(d, n, h, err);
	*err = PROXY_E_SIGNATURE;
	return -1;
}
