/*
 * addr.c: numeric addresses and networks: strict parsing, matching, masking
 * and printing.  Used for listen addresses, access rules and source limits.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srvexample.h"

/*
 * Clients are matched as IPv4 when they come as IPv4-mapped IPv6 addresses
 * (addr_normalize), so a mapped network becomes the IPv4 one it names: else
 * "deny ::ffff:127.0.0.0/104" would never match anybody.  One shorter than
 * /96 names more than IPv4 and is refused.
 */
static int
unmap_network(struct addrmask *am, const char **why)
{
	if (am->prefixlen < 96) {
		*why = "an IPv4-mapped network needs a prefix length of 96 or "
		    "more, not";
		return -1;
	}
	am->family = AF_INET;
	memmove(am->addr, am->addr + 12, 4);
	memset(am->addr + 4, 0, sizeof(am->addr) - 4);
	addr_mask(am, am->prefixlen - 96);
	return 0;
}

/*
 * Parse "ADDR" or, when prefix_ok, "ADDR/LEN" strictly (inet_pton only, so
 * "1.2.3" is refused); networks that are IPv4-mapped become IPv4.  On error
 * set *why and return -1.
 */
int
addr_parse(const char *s, struct addrmask *am, int prefix_ok, const char **why)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	const char	*errstr;
	int		 maxlen, mapped = 0;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf)) {
		*why = "invalid address";
		return -1;
	}
	memset(am, 0, sizeof(*am));
	if ((slash = strchr(buf, '/')) != NULL) {
		if (!prefix_ok) {
			*why = "a prefix length is not allowed in";
			return -1;
		}
		*slash++ = '\0';
	}
	if (inet_pton(AF_INET, buf, am->addr) == 1) {
		am->family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, buf, am->addr) == 1) {
		am->family = AF_INET6;
		maxlen = 128;
		mapped = IN6_IS_ADDR_V4MAPPED((struct in6_addr *)am->addr);
	} else {
		*why = "invalid address";
		return -1;
	}
	am->prefixlen = maxlen;
	if (slash != NULL) {
		am->prefixlen = strtonum(slash, 0, maxlen, &errstr);
		if (errstr != NULL) {
			*why = "invalid prefix length in";
			return -1;
		}
		addr_mask(am, am->prefixlen);
	}
	return prefix_ok && mapped ? unmap_network(am, why) : 0;
}

/* Clear the bits of am beyond prefixlen and record the prefix length. */
void
addr_mask(struct addrmask *am, int prefixlen)
{
	int	 i, bytes = am->family == AF_INET ? 4 : 16;

	am->prefixlen = prefixlen;
	for (i = 0; i < bytes; i++) {
		if (prefixlen >= 8)
			prefixlen -= 8;
		else {
			am->addr[i] &= (uint8_t)(0xff00 >> prefixlen);
			prefixlen = 0;
		}
	}
}

/* Does the host address host lie in the network net? */
int
addr_match(const struct addrmask *net, const struct addrmask *host)
{
	int	 full = net->prefixlen / 8, rest = net->prefixlen % 8;
	uint8_t	 m;

	if (net->family != host->family)
		return 0;
	if (memcmp(net->addr, host->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	m = (uint8_t)(0xff00 >> rest);
	return (net->addr[full] & m) == (host->addr[full] & m);
}

/*
 * Turn an IPv4-mapped IPv6 peer (from a dual-stack socket that systemd may pass
 * in) into plain IPv4, so logs, limits and rules see one form.
 */
void
addr_normalize(struct sockaddr_storage *ss)
{
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in	 s4;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	memcpy(ss, &s4, sizeof(s4));
}

/* The host address of a socket address, as a /32 or /128 network. */
void
addr_from_sockaddr(const struct sockaddr_storage *ss, struct addrmask *am)
{
	memset(am, 0, sizeof(*am));
	am->family = ss->ss_family;
	if (ss->ss_family == AF_INET) {
		memcpy(am->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		am->prefixlen = 32;
	} else {
		memcpy(am->addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		am->prefixlen = 128;
	}
}

/*
 * Dotted quad, as inet_ntop(3) writes it.  Ours because glibc's goes through
 * sprintf(), whose stack frame reaches a page further down: the parent calls
 * this for every client, and each page it writes after a fork is copied.
 */
static const char *
ntop4(const struct in_addr *in, char *buf, size_t len)
{
	const unsigned char	*b = (const unsigned char *)&in->s_addr;
	char			 s[INET_ADDRSTRLEN], *p = s;
	int			 i;

	for (i = 0; i < 4; i++) {
		if (b[i] >= 100)
			*p++ = '0' + b[i] / 100;
		if (b[i] >= 10)
			*p++ = '0' + b[i] / 10 % 10;
		*p++ = '0' + b[i] % 10;
		*p++ = i < 3 ? '.' : '\0';
	}
	strlcpy(buf, s, len);
	return buf;
}

/* The numeric host address of a socket address. */
const char *
addr_ntop(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET)
		return ntop4(&((const struct sockaddr_in *)ss)->sin_addr, buf,
		    len);
	if (ss->ss_family != AF_INET6 || inet_ntop(AF_INET6,
	    &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, len) == NULL)
		strlcpy(buf, "unknown", len);
	return buf;
}

/* The port of a socket address, in host order. */
int
addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

/* A network as "ADDR/LEN". */
const char *
addr_mask_ntop(const struct addrmask *am, char *buf, size_t len)
{
	char	 a[INET6_ADDRSTRLEN];

	if (inet_ntop(am->family, am->addr, a, sizeof(a)) == NULL)
		strlcpy(a, "unknown", sizeof(a));
	snprintf(buf, len, "%s/%d", a, am->prefixlen);
	return buf;
}
