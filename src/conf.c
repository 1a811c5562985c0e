/*
 * conf.c: the configuration: built-in defaults, the file, then -o overrides,
 * all through one keyword table.  Errors are reported as FILE:LINE: message.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "srvexample.h"

#define CONF_LINE_MAX	1024

struct keyword {
	const char	*name;
	int		(*set)(struct conf *, const struct keyword *, const char *,
			    const char **);
	size_t		 offset;	/* of the int or char * in struct conf */
	long long	 min, max;
	int		 repeatable;	/* the command line replaces the file's list */
};

static int	set_number(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_string(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_yesno(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_listen(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_acl(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_proxy_from(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_prefix(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_log(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_facility(struct conf *, const struct keyword *, const char *,
		    const char **);
static int	set_log_clients(struct conf *, const struct keyword *,
		    const char *, const char **);

#define OFF(f)	offsetof(struct conf, f)
static const struct keyword keywords[] = {
	{ "listen",		set_listen,	0, 0, 0, 1 },
	{ "port",		set_number,	OFF(port), 1, 65535, 0 },
	{ "user",		set_string,	OFF(user), 0, 0, 0 },
	{ "group",		set_string,	OFF(group), 0, 0, 0 },
	{ "chroot",		set_string,	OFF(chroot), 0, 0, 0 },
	{ "pidfile",		set_string,	OFF(pidfile), 0, 0, 0 },
	{ "max-children",	set_number,	OFF(max_children), 1, 100000, 0 },
	{ "max-per-source",	set_number,	OFF(max_per_source), 0, 100000, 0 },
	{ "source-prefix",	set_prefix,	0, 0, 0, 0 },
	{ "timeout",		set_number,	OFF(timeout), 1, 3600, 0 },
	{ "max-line",		set_number,	OFF(max_line), 1, 1048576, 0 },
	{ "resolve",		set_yesno,	OFF(resolve), 0, 0, 0 },
	{ "resolve-cache",	set_number,	OFF(resolve_cache), 0, 86400, 0 },
	{ "allow",		set_acl,	1, 0, 0, 1 },
	{ "deny",		set_acl,	0, 0, 0, 1 },
	{ "backlog",		set_number,	OFF(backlog), 1, 65535, 0 },
	{ "grace",		set_number,	OFF(grace), 0, 3600, 0 },
	{ "crash-penalty",	set_number,	OFF(crash_penalty), 0, 86400, 0 },
	{ "log",		set_log,	0, 0, 0, 0 },
	{ "log-facility",	set_facility,	0, 0, 0, 0 },
	{ "log-clients",	set_log_clients, 0, 0, 0, 0 },
	{ "reuse-port",		set_yesno,	OFF(reuse_port), 0, 0, 0 },
	{ "proxy-protocol",	set_yesno,	OFF(proxy_protocol), 0, 0, 0 },
	{ "proxy-from",		set_proxy_from,	0, 0, 0, 1 },
};
#undef OFF

static const struct {
	const char	*name;
	int		 value;
} facilities[] = {
	{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV }, { "daemon", LOG_DAEMON },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 }, { "user", LOG_USER },
};

/* Fill c with the built-in defaults. */
void
conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->port = 3456;
	c->user = strdup(SE_NAME);
	c->pidfile = strdup(RUNSTATEDIR "/" SE_NAME "/" SE_NAME ".pid");
	c->penalty_max = 600;
	c->max_children = 256;
	c->max_per_source = 16;
	c->prefix4 = 32;
	c->prefix6 = 64;
	c->timeout = 30;
	c->max_line = 4096;
	c->resolve = 1;
	c->resolve_cache = 60;
	c->backlog = SOMAXCONN;
	c->grace = 10;
	c->crash_penalty = 60;
	c->log = LOG_SINK_DEFAULT;
	c->log_facility = LOG_DAEMON;
	if (c->user == NULL || c->pidfile == NULL)
		fatal("strdup");
}

/* Free what c owns; c may then be initialised again. */
void
conf_clear(struct conf *c)
{
	int	 i;

	for (i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	free(c->user);
	free(c->group);
	free(c->chroot);
	free(c->pidfile);
	memset(c, 0, sizeof(*c));
}

/* Set an integer keyword within its range. */
static int
set_number(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	int		*p = (int *)((char *)c + k->offset);
	long long	 n;

	if (!isdigit((unsigned char)v[0])) {	/* strtonum takes " +1" */
		*why = "invalid";
		return -1;
	}
	n = strtonum(v, k->min, k->max, why);
	if (*why != NULL)
		return -1;
	*p = (int)n;
	return 0;
}

/* Set a string keyword; "none" clears optional ones. */
static int
set_string(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	char	**p = (char **)((char *)c + k->offset);
	char	 *s = NULL;

	if (strcmp(k->name, "user") == 0 || strcmp(k->name, "group") == 0) {
		if (strlen(v) >= 32 || strchr(v, ':') != NULL) {
			*why = "invalid name";
			return -1;
		}
	} else if (strcmp(v, "none") == 0)
		goto done;
	else if (v[0] != '/') {
		*why = "not an absolute path or none:";
		return -1;
	}
	if ((s = strdup(v)) == NULL)
		fatal("strdup");
done:
	free(*p);
	*p = s;
	return 0;
}

/* Set a yes|no keyword. */
static int
set_yesno(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	int	*p = (int *)((char *)c + k->offset);

	if (strcmp(v, "yes") == 0)
		*p = 1;
	else if (strcmp(v, "no") == 0)
		*p = 0;
	else {
		*why = "expected yes or no, not";
		return -1;
	}
	return 0;
}

/* Add a listen address; "*" means all addresses (the default). */
static int
set_listen(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	struct addrmask	 am;
	char		*s;

	if (strcmp(v, "*") != 0 && addr_parse(v, &am, 0, why) == -1)
		return -1;
	if (c->nlisten == CONF_MAX_LISTEN) {
		*why = "too many listen addresses at";
		return -1;
	}
	if ((s = strdup(v)) == NULL)
		fatal("strdup");
	c->listen[c->nlisten++] = s;
	return 0;
}

/* Add an allow (offset 1) or deny (offset 0) rule. */
static int
set_acl(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	struct acl_rule	*r;

	if (c->nacl == CONF_MAX_ACL) {
		*why = "too many allow and deny rules at";
		return -1;
	}
	r = &c->acl[c->nacl];
	if (addr_parse(v, &r->net, 1, why) == -1)
		return -1;
	r->allow = (int)k->offset;
	c->nacl++;
	return 0;
}

/* Add a balancer allowed to send a PROXY header. */
static int
set_proxy_from(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	if (c->nproxy_from == CONF_MAX_PROXY_FROM) {
		*why = "too many proxy-from addresses at";
		return -1;
	}
	if (addr_parse(v, &c->proxy_from[c->nproxy_from], 1, why) == -1)
		return -1;
	c->nproxy_from++;
	return 0;
}

/* Set source-prefix V4:V6. */
static int
set_prefix(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	char	 buf[16], *colon;
	int	 p4, p6 = 0;

	if (strlcpy(buf, v, sizeof(buf)) >= sizeof(buf) ||
	    (colon = strchr(buf, ':')) == NULL) {
		*why = "expected V4:V6 prefix lengths (e.g. 32:64), not";
		return -1;
	}
	*colon = '\0';
	p4 = strtonum(buf, 1, 32, why);
	if (*why == NULL)
		p6 = strtonum(colon + 1, 1, 128, why);
	if (*why != NULL) {
		*why = "expected prefix lengths 1-32:1-128, not";
		return -1;
	}
	c->prefix4 = p4;
	c->prefix6 = p6;
	return 0;
}

/* Set log syslog|stderr. */
static int
set_log(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	if (strcmp(v, "syslog") == 0)
		c->log = LOG_SINK_SYSLOG;
	else if (strcmp(v, "stderr") == 0)
		c->log = LOG_SINK_STDERR;
	else {
		*why = "expected syslog or stderr, not";
		return -1;
	}
	return 0;
}

/* The syslog facility called name, or -1. */
int
conf_facility(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(facilities[i].name, name) == 0)
			return facilities[i].value;
	return -1;
}

/* Set log-facility. */
static int
set_facility(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	int	 f;

	if ((f = conf_facility(v)) == -1) {
		*why = "unknown syslog facility";
		return -1;
	}
	c->log_facility = f;
	return 0;
}

/* Set log-clients all|problems. */
static int
set_log_clients(struct conf *c, const struct keyword *k, const char *v,
    const char **why)
{
	if (strcmp(v, "all") == 0)
		c->log_clients = LOG_CLIENTS_ALL;
	else if (strcmp(v, "problems") == 0)
		c->log_clients = LOG_CLIENTS_PROBLEMS;
	else {
		*why = "expected all or problems, not";
		return -1;
	}
	return 0;
}

/* The table entry for keyword name, or NULL. */
static const struct keyword *
keyword_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcmp(keywords[i].name, name) == 0)
			return &keywords[i];
	return NULL;
}

/*
 * Set keyword to value; where names the origin ("FILE:LINE" or "-o ...") for
 * the error message, printed here.  Returns 0 or -1.
 */
int
conf_set(struct conf *c, const char *where, const char *keyword,
    const char *value)
{
	const struct keyword	*k;
	const char		*why = NULL;
	char			 esc[80];

	if ((k = keyword_find(keyword)) == NULL) {
		log_escape(esc, sizeof(esc), keyword, strlen(keyword));
		log_warnx("%s: unknown keyword \"%s\"", where, esc);
		return -1;
	}
	if (value == NULL || *value == '\0') {
		log_warnx("%s: %s: missing value", where, k->name);
		return -1;
	}
	if (k->set(c, k, value, &why) == -1) {
		log_escape(esc, sizeof(esc), value, strlen(value));
		if (k->set == set_number)	/* strtonum: "too small" etc. */
			log_warnx("%s: %s: \"%s\" is %s", where, k->name, esc, why);
		else
			log_warnx("%s: %s \"%s\"", where, why, esc);
		return -1;
	}
	return 0;
}

/* Split one line into keyword and value; 0 for blank or comment lines. */
static int
split_line(char *line, char **keyword, char **value)
{
	char	*p, *end;

	if ((p = strchr(line, '#')) != NULL)
		*p = '\0';
	for (p = line; isspace((unsigned char)*p); p++)
		;
	if (*p == '\0')
		return 0;
	*keyword = p;
	while (*p != '\0' && !isspace((unsigned char)*p))
		p++;
	if (*p != '\0')
		*p++ = '\0';
	while (isspace((unsigned char)*p))
		p++;
	*value = p;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return 1;
}

/*
 * Read the file f into c; report every error; -1 if there was any.  Lines are
 * read with getline() so that a NUL byte cannot hide the rest of a line.
 */
int
conf_read_stream(FILE *f, const char *path, struct conf *c)
{
	char	*line = NULL, where[PATH_MAX + 32], *kw, *val;
	size_t	 cap = 0;
	ssize_t	 len;
	int	 lineno = 0, rv = 0;

	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len >= CONF_LINE_MAX - 1) {
			log_warnx("%s: line too long", where);
			rv = -1;
		} else if (memchr(line, '\0', len) != NULL) {
			log_warnx("%s: NUL byte in line", where);
			rv = -1;
		} else if (split_line(line, &kw, &val) &&
		    conf_set(c, where, kw, val) == -1)
			rv = -1;
	}
	if (ferror(f)) {
		log_warn("%s", path);
		rv = -1;
	}
	free(line);
	return rv;
}

/* Open the configuration file; NULL with errno ENOENT is fine for the default. */
static FILE *
conf_open(const struct conf_source *src)
{
	int	 fd;
	FILE	*f;

	if (src->dirfd != -1)
		fd = openat(src->dirfd, src->base, O_RDONLY | O_CLOEXEC);
	else
		fd = open(src->path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return NULL;
	if ((f = fdopen(fd, "r")) == NULL)
		close(fd);
	return f;
}

/* Clear the lists the command line replaces, the first time it sets them. */
static void
override_list(struct conf *c, const char *keyword, int *cleared)
{
	int	 i;

	if (strcmp(keyword, "listen") == 0 && !(*cleared & 1)) {
		for (i = 0; i < c->nlisten; i++)
			free(c->listen[i]);
		c->nlisten = 0;
		*cleared |= 1;
	} else if ((strcmp(keyword, "allow") == 0 ||
	    strcmp(keyword, "deny") == 0) && !(*cleared & 2)) {
		c->nacl = 0;
		*cleared |= 2;
	} else if (strcmp(keyword, "proxy-from") == 0 && !(*cleared & 4)) {
		c->nproxy_from = 0;
		*cleared |= 4;
	}
}

/* Apply the -o overrides in order. */
static int
conf_apply_overrides(const struct conf_source *src, struct conf *c)
{
	char	 buf[CONF_LINE_MAX], where[CONF_LINE_MAX + 8], *eq;
	int	 i, rv = 0, cleared = 0;

	for (i = 0; i < src->noverrides; i++) {
		snprintf(where, sizeof(where), "-o %s", src->overrides[i]);
		if (strlcpy(buf, src->overrides[i], sizeof(buf)) >= sizeof(buf) ||
		    (eq = strchr(buf, '=')) == NULL) {
			log_warnx("%s: expected keyword=value", where);
			rv = -1;
			continue;
		}
		*eq = '\0';
		override_list(c, buf, &cleared);
		if (conf_set(c, where, buf, eq + 1) == -1)
			rv = -1;
	}
	return rv;
}

/*
 * Load the whole configuration: defaults, then the file, then the command
 * line.  On error c is left cleared and -1 returned; every error is logged.
 */
int
conf_load(const struct conf_source *src, struct conf *c)
{
	FILE	*f;
	int	 rv = 0;

	conf_init(c);
	if ((f = conf_open(src)) != NULL) {
		rv = conf_read_stream(f, src->path, c);
		fclose(f);
	} else if (errno != ENOENT || src->explicit_path) {
		log_warn("%s", src->path);
		rv = -1;
	}
	if (conf_apply_overrides(src, c) == -1)
		rv = -1;
	if (rv == 0 && c->proxy_protocol && c->nproxy_from == 0) {
		log_warnx("%s: proxy-protocol yes needs at least one proxy-from "
		    "address", src->path);
		rv = -1;
	}
	if (rv == -1)
		conf_clear(c);
	return rv;
}

/*
 * Do the access rules allow host?  The first matching rule decides; when
 * none matches, host is allowed unless allow rules exist.  *rule (if not
 * NULL) is the index of the rule that decided, or -1.
 */
int
conf_acl_allows(const struct conf *c, const struct addrmask *host, int *rule)
{
	int	 i, any_allow = 0;

	for (i = 0; i < c->nacl; i++) {
		if (addr_match(&c->acl[i].net, host)) {
			if (rule != NULL)
				*rule = i;
			return c->acl[i].allow;
		}
		any_allow |= c->acl[i].allow;
	}
	if (rule != NULL)
		*rule = -1;
	return !any_allow;
}

/* Is host in one of the n networks of list? */
static int
in_list(const struct addrmask *list, int n, const struct addrmask *host)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (addr_match(&list[i], host))
			return 1;
	return 0;
}

/* Is host a balancer that may send a PROXY header? */
int
conf_proxy_trusted(const struct conf *c, const struct addrmask *host)
{
	return in_list(c->proxy_from, c->nproxy_from, host);
}

/* Is host exempt from per-source limits and penalties? */
int
conf_exempt(const struct conf *c, const struct addrmask *host)
{
	return in_list(c->exempt, c->nexempt, host);
}

/* Print the effective configuration, one "keyword value" per line (-nv). */
void
conf_print(const struct conf *c)
{
	char	 buf[INET6_ADDRSTRLEN + 8];
	size_t	 i;
	int	 j;

	if (c->nlisten == 0)
		printf("listen *\n");
	for (j = 0; j < c->nlisten; j++)
		printf("listen %s\n", c->listen[j]);
	printf("port %d\nuser %s\n", c->port, c->user);
	if (c->group != NULL)
		printf("group %s\n", c->group);
	printf("chroot %s\n", c->chroot != NULL ? c->chroot : "none");
	printf("pidfile %s\n", c->pidfile != NULL ? c->pidfile : "none");
	printf("max-children %d\nmax-per-source %d\n", c->max_children,
	    c->max_per_source);
	printf("source-prefix %d:%d\n", c->prefix4, c->prefix6);
	printf("timeout %d\nmax-line %d\n", c->timeout, c->max_line);
	printf("resolve %s\n", c->resolve ? "yes" : "no");
	printf("resolve-cache %d\n", c->resolve_cache);
	for (j = 0; j < c->nacl; j++)
		printf("%s %s\n", c->acl[j].allow ? "allow" : "deny",
		    addr_mask_ntop(&c->acl[j].net, buf, sizeof(buf)));
	printf("backlog %d\ngrace %d\ncrash-penalty %d\n", c->backlog, c->grace,
	    c->crash_penalty);
	printf("log %s\n", c->log == LOG_SINK_STDERR ? "stderr" : "syslog");
	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (facilities[i].value == c->log_facility)
			printf("log-facility %s\n", facilities[i].name);
	printf("log-clients %s\n",
	    c->log_clients == LOG_CLIENTS_PROBLEMS ? "problems" : "all");
	printf("reuse-port %s\n", c->reuse_port ? "yes" : "no");
	printf("proxy-protocol %s\n", c->proxy_protocol ? "yes" : "no");
	for (j = 0; j < c->nproxy_from; j++)
		printf("proxy-from %s\n", addr_mask_ntop(&c->proxy_from[j], buf,
		    sizeof(buf)));
}
