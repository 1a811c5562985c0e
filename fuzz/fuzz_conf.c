/*
 * fuzz_conf.c: libFuzzer harness for the configuration parser (conf.c) and
 * the address parser (addr.c).
 *
 * The input is used three ways:
 *
 * 1. as a configuration file for conf_read_stream(); when it is accepted,
 *    every value must be within its range, no physical line may have been
 *    longer than the parser's limit, what conf_print() (-nv) prints must
 *    read back to the same configuration, and conf_acl_allows() must agree
 *    with a bit-by-bit first-match reference for hosts in, next to and far
 *    from the rules;
 * 2. its lines containing "=" as -o keyword=value overrides for conf_load()
 *    (which calls conf_set() for each); when a line "--" is present, the
 *    text before it is the configuration file conf_load() reads first and
 *    only the lines after it are overrides.  On success the same ranges
 *    hold and listen, allow, deny and exempt overrides replace the file's
 *    lists; on failure the configuration must be left cleared;
 * 3. its first lines as addresses for addr_parse() with and without a
 *    prefix length, checked against inet_pton(), printed and parsed back,
 *    masked and matched.
 *
 * Logging is initialised with no sink at all, so error messages are still
 * formatted (vsnprintf runs under the sanitizers) but go nowhere, and
 * libFuzzer's own output on stderr is left alone.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "srvexample.h"

#define CONF_LINE_MAX	1024		/* as in conf.c: longest line + "\n" + NUL */
#define MAX_OVERRIDES	64
#define MAX_ADDR_LINES	16
#define MAX_LINES	256

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	 conf_fd = -1;		/* a memfd holding the file for conf_load() */
static char	 conf_path[64];		/* and its name in /proc */

static const char *const facility_names[] = {
	"auth", "authpriv", "daemon", "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7", "user",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Neither stderr nor syslog: LOG_SINK_DEFAULT is resolved by main(). */
	log_init(LOG_SINK_DEFAULT, LOG_DAEMON, 0);
	if ((conf_fd = memfd_create("fuzz.conf", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", conf_fd);
	if (access(conf_path, R_OK) == -1) {
		perror(conf_path);
		abort();
	}
	return 0;
}

/* An invariant: on failure say which, then abort() for libFuzzer. */
#define check(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #cond);					\
		abort();						\
	}								\
} while (0)

/* A user or group name as set_string() accepts it. */
static int
valid_name(const char *s)
{
	return s != NULL && strlen(s) < 32 && strchr(s, ':') == NULL;
}

/* An optional absolute path. */
static int
valid_path(const char *s)
{
	return s == NULL || s[0] == '/';
}

/* A network as addr_parse() leaves it. */
static int
valid_net(const struct addrmask *am)
{
	return (am->family == AF_INET && am->prefixlen >= 0 &&
	    am->prefixlen <= 32) || (am->family == AF_INET6 &&
	    am->prefixlen >= 0 && am->prefixlen <= 128);
}

/* Every value of an accepted configuration is one the keyword allows. */
static void
check_ranges(const struct conf *c)
{
	struct addrmask	 am;
	const char	*why;
	size_t		 i;
	int		 j, fac = 0;

	check(c->nlisten >= 0 && c->nlisten <= CONF_MAX_LISTEN);
	for (j = 0; j < c->nlisten; j++)
		check(strcmp(c->listen[j], "*") == 0 ||
		    addr_parse(c->listen[j], &am, 0, &why) == 0);
	check(c->port >= 1 && c->port <= 65535);
	check(valid_name(c->user));
	check(c->group == NULL || valid_name(c->group));
	check(valid_path(c->chroot) && valid_path(c->pidfile));
	check(c->max_children >= 1 && c->max_children <= 100000);
	check(c->max_per_source >= 0 && c->max_per_source <= 100000);
	check(c->prefix4 >= 1 && c->prefix4 <= 32);
	check(c->prefix6 >= 1 && c->prefix6 <= 128);
	check(c->timeout >= 1 && c->timeout <= 3600);
	check(c->max_line >= 1 && c->max_line <= 1048576);
	check(c->resolve == 0 || c->resolve == 1);
	check(c->nacl >= 0 && c->nacl <= CONF_MAX_ACL);
	for (j = 0; j < c->nacl; j++)
		check((c->acl[j].allow == 0 || c->acl[j].allow == 1) &&
		    valid_net(&c->acl[j].net));
	check(c->backlog >= 1 && c->backlog <= 65535);
	check(c->grace >= 0 && c->grace <= 3600);
	check(c->crash_penalty >= 0 && c->crash_penalty <= 86400);
	check(c->log == LOG_SINK_DEFAULT || c->log == LOG_SINK_SYSLOG ||
	    c->log == LOG_SINK_STDERR);
	for (i = 0; i < sizeof(facility_names) / sizeof(facility_names[0]); i++)
		fac |= conf_facility(facility_names[i]) == c->log_facility;
	check(fac);
	check(c->reuse_port == 0 || c->reuse_port == 1);
	check(c->rate_per_source >= 0 && c->rate_per_source <= 1000000);
	check(c->nexempt >= 0 && c->nexempt <= CONF_MAX_ACL);
	for (j = 0; j < c->nexempt; j++)
		check(valid_net(&c->exempt[j]));
	check(c->timeout_penalty >= 0 && c->timeout_penalty <= 86400);
	check(c->penalty_max >= 1 && c->penalty_max <= 86400);
	check(c->defer_accept >= 0 && c->defer_accept <= 3600);
}

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The log sink -nv prints: main() resolves "not set" before -n. */
static enum log_sink
printed_sink(enum log_sink s)
{
	return s == LOG_SINK_STDERR ? LOG_SINK_STDERR : LOG_SINK_SYSLOG;
}

/* Do a and b configure the same thing?  No listen line is "listen *". */
static int
same_conf(const struct conf *a, const struct conf *b)
{
	int	 j;

	if (a->nlisten == 0 || b->nlisten == 0) {
		if (a->nlisten + b->nlisten > 1 ||
		    (a->nlisten == 1 && strcmp(a->listen[0], "*") != 0) ||
		    (b->nlisten == 1 && strcmp(b->listen[0], "*") != 0))
			return 0;
	} else {
		if (a->nlisten != b->nlisten)
			return 0;
		for (j = 0; j < a->nlisten; j++)
			if (strcmp(a->listen[j], b->listen[j]) != 0)
				return 0;
	}
	if (a->nacl != b->nacl || a->nexempt != b->nexempt)
		return 0;
	for (j = 0; j < a->nexempt; j++)
		if (a->exempt[j].family != b->exempt[j].family ||
		    a->exempt[j].prefixlen != b->exempt[j].prefixlen ||
		    memcmp(a->exempt[j].addr, b->exempt[j].addr, 16) != 0)
			return 0;
	for (j = 0; j < a->nacl; j++)
		if (a->acl[j].allow != b->acl[j].allow ||
		    a->acl[j].net.family != b->acl[j].net.family ||
		    a->acl[j].net.prefixlen != b->acl[j].net.prefixlen ||
		    memcmp(a->acl[j].net.addr, b->acl[j].net.addr, 16) != 0)
			return 0;
	return a->port == b->port && same_str(a->user, b->user) &&
	    same_str(a->group, b->group) && same_str(a->chroot, b->chroot) &&
	    same_str(a->pidfile, b->pidfile) &&
	    a->max_children == b->max_children &&
	    a->max_per_source == b->max_per_source &&
	    a->prefix4 == b->prefix4 && a->prefix6 == b->prefix6 &&
	    a->timeout == b->timeout && a->max_line == b->max_line &&
	    a->resolve == b->resolve && a->backlog == b->backlog &&
	    a->grace == b->grace && a->crash_penalty == b->crash_penalty &&
	    printed_sink(a->log) == printed_sink(b->log) &&
	    a->log_facility == b->log_facility &&
	    a->reuse_port == b->reuse_port &&
	    a->rate_per_source == b->rate_per_source &&
	    a->timeout_penalty == b->timeout_penalty &&
	    a->penalty_max == b->penalty_max &&
	    a->defer_accept == b->defer_accept;
}

/* Parse text[0..len) as a configuration file into c. */
static int
read_text(char *text, size_t len, const char *name, struct conf *c)
{
	FILE	*f;
	int	 rv;

	conf_init(c);
	if (len == 0)		/* fmemopen() of nothing is not portable */
		return 0;
	if ((f = fmemopen(text, len, "r")) == NULL)
		abort();
	rv = conf_read_stream(f, name, c);
	fclose(f);
	return rv;
}

/* What conf_print() writes, as a malloc'd buffer. */
static char *
print_conf(const struct conf *c, size_t *len)
{
	FILE	*f, *saved = stdout;
	char	*p = NULL;

	if ((f = open_memstream(&p, len)) == NULL)
		abort();
	stdout = f;	/* glibc: stdout is an ordinary, assignable variable */
	conf_print(c);
	stdout = saved;
	if (fclose(f) != 0)
		abort();
	return p;
}

/*
 * Is there a physical line of CONF_LINE_MAX - 1 bytes or more (not counting
 * its "\n")?  conf.c must refuse the file then.  A NUL byte must not
 * hide the length (fuzz/regress/conf/nul-hides-long-line).
 */
static int
has_long_line(const char *d, size_t n)
{
	const char	*nl;
	size_t		 len;

	while (n > 0) {
		nl = memchr(d, '\n', n);
		len = nl != NULL ? (size_t)(nl - d) : n;
		if (len >= CONF_LINE_MAX - 1)
			return 1;
		if (nl == NULL)
			break;
		n -= len + 1;
		d += len + 1;
	}
	return 0;
}

/* Set the bits of am beyond its prefix length to 1. */
static void
fill_host_bits(struct addrmask *am)
{
	int	 i, bits = am->family == AF_INET ? 32 : 128;

	for (i = am->prefixlen; i < bits; i++)
		am->addr[i / 8] |= 0x80 >> (i % 8);
}

/* Bit i (from the most significant) of an address. */
static int
addr_bit(const struct addrmask *am, int i)
{
	return (am->addr[i / 8] >> (7 - i % 8)) & 1;
}

/* Is host in net?  Written bit by bit, independently of addr_match(). */
static int
ref_in_net(const struct addrmask *net, const struct addrmask *host)
{
	int	 i;

	if (net->family != host->family)
		return 0;
	for (i = 0; i < net->prefixlen; i++)
		if (addr_bit(net, i) != addr_bit(host, i))
			return 0;
	return 1;
}

/* First match wins; with allow rules, no match is a denial. */
static int
ref_allows(const struct conf *c, const struct addrmask *host)
{
	int	 i, any_allow = 0;

	for (i = 0; i < c->nacl; i++) {
		if (ref_in_net(&c->acl[i].net, host))
			return c->acl[i].allow;
		any_allow |= c->acl[i].allow;
	}
	return !any_allow;
}

/*
 * Check the access rules on the first and last host of the first rules, the
 * same with the last bit of the prefix flipped, and the lowest and highest
 * address of each family.
 */
static void
check_acl(const struct conf *c)
{
	struct addrmask	 host;
	int		 i, j, bits;

	for (i = 0; i < 4; i++) {
		memset(&host, i < 2 ? 0 : 0xff, sizeof(host));
		host.family = i % 2 ? AF_INET6 : AF_INET;
		host.prefixlen = i % 2 ? 128 : 32;
		check(conf_acl_allows(c, &host, NULL) == ref_allows(c, &host));
	}

	for (i = 0; i < c->nacl && i < 8; i++) {
		for (j = 0; j < 2; j++) {
			host = c->acl[i].net;
			bits = host.family == AF_INET ? 32 : 128;
			if (j == 1)
				fill_host_bits(&host);
			host.prefixlen = bits;
			check(addr_match(&c->acl[i].net, &host));
			check(conf_acl_allows(c, &host, NULL) == ref_allows(c, &host));
			if (c->acl[i].net.prefixlen == 0)
				continue;
			host.addr[(c->acl[i].net.prefixlen - 1) / 8] ^=
			    0x80 >> ((c->acl[i].net.prefixlen - 1) % 8);
			check(!addr_match(&c->acl[i].net, &host));
			check(conf_acl_allows(c, &host, NULL) == ref_allows(c, &host));
		}
	}
	for (i = 0; i < c->nacl; i++)
		for (j = 0; j < c->nacl && j < 8; j++) {
			host = c->acl[j].net;
			host.prefixlen = host.family == AF_INET ? 32 : 128;
			check(addr_match(&c->acl[i].net, &host) ==
			    ref_in_net(&c->acl[i].net, &host));
		}
}

/* 1: the input as a configuration file. */
static void
fuzz_file(char *text, size_t len)
{
	struct conf	 c, c2;
	char		*out;
	size_t		 outlen;

	if (read_text(text, len, "fuzz.conf", &c) == 0) {
		check(!has_long_line(text, len));
		check_ranges(&c);
		check_acl(&c);
		out = print_conf(&c, &outlen);
		check(read_text(out, outlen, "printed.conf", &c2) == 0);
		check(same_conf(&c, &c2));
		conf_clear(&c2);
		free(out);
	}
	conf_clear(&c);
}

/* How many overrides set keyword (with "allow" also counting "deny")? */
static int
count_overrides(char **ov, int n, const char *keyword)
{
	size_t	 len;
	int	 i, count = 0;

	for (i = 0; i < n; i++) {
		len = strcspn(ov[i], "=");
		if ((strlen(keyword) == len && strncmp(ov[i], keyword, len) == 0) ||
		    (strcmp(keyword, "allow") == 0 && len == 4 &&
		    strncmp(ov[i], "deny", 4) == 0))
			count++;
	}
	return count;
}

/*
 * 2: the lines with "=" as -o overrides, through conf_load(): after a line
 * "--" if there is one, with the text before it as the file.
 */
static void
fuzz_overrides(const char *text, char *copy, char **lines, int nlines)
{
	static const struct conf	 zero;
	struct conf_source		 src;
	struct conf			 c;
	char				*ov[MAX_OVERRIDES];
	size_t				 filelen = 0;
	int				 i, n = 0, first = 0, nlisten, nacl, nexempt;

	for (i = 0; i < nlines; i++)
		if (strcmp(lines[i], "--") == 0) {
			filelen = lines[i] - copy;
			first = i + 1;
			break;
		}
	for (i = first; i < nlines && n < MAX_OVERRIDES; i++)
		if (strchr(lines[i], '=') != NULL)
			ov[n++] = lines[i];
	if (n == 0)
		return;
	memset(&src, 0, sizeof(src));
	src.dirfd = -1;
	src.overrides = ov;
	src.noverrides = n;
	if (first == 0)
		src.path = "/nonexistent/srvexample-fuzz.conf";	/* ENOENT: fine */
	else {
		src.path = conf_path;
		src.explicit_path = 1;
		if (ftruncate(conf_fd, 0) == -1 ||
		    pwrite(conf_fd, text, filelen, 0) != (ssize_t)filelen)
			abort();
	}
	if (conf_load(&src, &c) == 0) {
		check_ranges(&c);
		/* The command line replaces the file's lists. */
		nlisten = count_overrides(ov, n, "listen");
		nacl = count_overrides(ov, n, "allow");
		nexempt = count_overrides(ov, n, "exempt");
		check(nlisten == 0 || c.nlisten == nlisten);
		check(nacl == 0 || c.nacl == nacl);
		check(nexempt == 0 || c.nexempt == nexempt);
		conf_clear(&c);
	} else
		check(memcmp(&c, &zero, sizeof(c)) == 0);
}

/* 3: one string as an address, with and without a prefix length. */
static void
fuzz_addr(const char *s)
{
	struct addrmask	 am, am2, host;
	struct in6_addr	 a6;
	const char	*why, *slash = strchr(s, '/');
	char		 out[INET6_ADDRSTRLEN + 8];
	int		 valid, k, bits;

	/* Without a prefix: exactly what inet_pton() takes, in 53 bytes. */
	valid = slash == NULL && strlen(s) < INET6_ADDRSTRLEN + 8 &&
	    (inet_pton(AF_INET, s, &a6) == 1 || inet_pton(AF_INET6, s, &a6) == 1);
	check((addr_parse(s, &am, 0, &why) == 0) == valid);

	if (addr_parse(s, &am, 1, &why) == -1)
		return;
	check(valid_net(&am));
	bits = am.family == AF_INET ? 32 : 128;
	check(slash != NULL || am.prefixlen == bits);
	/* Printed and parsed again: the same network. */
	addr_mask_ntop(&am, out, sizeof(out));
	check(addr_parse(out, &am2, 1, &why) == 0);
	check(am2.family == am.family && am2.prefixlen == am.prefixlen &&
	    memcmp(am2.addr, am.addr, sizeof(am.addr)) == 0);
	/* Its hosts match it, and only those differing beyond the prefix. */
	check(addr_match(&am, &am));
	host = am;
	host.prefixlen = bits;
	fill_host_bits(&host);
	check(addr_match(&am, &host));
	if (am.prefixlen > 0) {
		host.addr[(am.prefixlen - 1) / 8] ^=
		    0x80 >> ((am.prefixlen - 1) % 8);
		check(!addr_match(&am, &host));
	}
	host.family = am.family == AF_INET ? AF_INET6 : AF_INET;
	check(!addr_match(&am, &host));
	/* Masking to any shorter prefix keeps the network's hosts. */
	for (k = 0; k <= am.prefixlen; k += 1 + k / 8) {
		am2 = am;
		addr_mask(&am2, k);
		check(am2.prefixlen == k && addr_match(&am2, &am));
		host = am2;
		fill_host_bits(&host);
		host.prefixlen = bits;
		check(addr_match(&am2, &host));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*text, *copy, *lines[MAX_LINES];
	char	*p, *nl;
	int	 i, nlines = 0;

	/* A private copy: fmemopen() wants a writable buffer. */
	if ((text = malloc(size + 1)) == NULL || (copy = malloc(size + 1)) == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_file(text, size);

	/* Lines as C strings: each ends at its "\n" (or at an inner NUL). */
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (p = copy; nlines < MAX_LINES; p = nl + 1) {
		lines[nlines++] = p;
		if ((nl = memchr(p, '\n', size - (p - copy))) == NULL)
			break;
		*nl = '\0';
	}
	fuzz_overrides(text, copy, lines, nlines);
	for (i = 0; i < nlines && i < MAX_ADDR_LINES; i++)
		fuzz_addr(lines[i]);
	free(copy);
	free(text);
	return 0;
}
