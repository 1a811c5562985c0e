/*
 * srvexample: a fork-per-connection daemon that answers each client's first
 * line with "You said:" and that line.  main() is the startup sequence:
 * flags, configuration, -n, listen, log, privilege drop, detach, serve.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <err.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

#define MAX_LISTENERS	(CONF_MAX_LISTEN * 2)

extern char **environ;

struct options {
	int		 foreground;	/* -d */
	int		 inetd;		/* -i */
	int		 check;		/* -n */
	int		 verbose;	/* -v */
	const char	*dry_run;	/* -C addr=: the address */
	struct conf_source src;
};

/* Print the usage line to f and exit with status. */
static void __attribute__((noreturn))
usage(FILE *f, int status)
{
	fprintf(f, "usage: %s [-dhinVv] [-C addr=address] [-f file] [-l address] "
	    "[-o keyword=value] [-p port] [-u user]\n", SE_NAME);
	exit(status);
}

/* Keep a -o override (or a -l, -p, -u shorthand) for conf_load. */
static void
add_override(struct options *o, const char *keyword, const char *value)
{
	char	*s;

	if (keyword != NULL) {
		if (asprintf(&s, "%s=%s", keyword, value) == -1)
			err(1, "asprintf");
	} else if ((s = strdup(value)) == NULL)
		err(1, "strdup");
	o->src.overrides = reallocarray(o->src.overrides, o->src.noverrides + 1,
	    sizeof(char *));
	if (o->src.overrides == NULL)
		err(1, "reallocarray");
	o->src.overrides[o->src.noverrides++] = s;
}

/* Free what add_override() kept. */
static void
free_overrides(struct conf_source *src)
{
	while (src->noverrides > 0)
		free(src->overrides[--src->noverrides]);
	free(src->overrides);
	src->overrides = NULL;
}

/* Parse the command line into o. */
static void
parse_flags(int argc, char *argv[], struct options *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int	 ch;

	memset(o, 0, sizeof(*o));
	opterr = 0;		/* our own messages, named srvexample */
	o->src.path = SYSCONFDIR "/" SE_NAME ".conf";
	o->src.dirfd = -1;
	while ((ch = getopt_long(argc, argv, ":C:df:hil:no:p:u:Vv", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'C':
			if (strncmp(optarg, "addr=", 5) != 0) {
				fprintf(stderr, "%s: -C takes addr=ADDRESS\n",
				    SE_NAME);
				usage(stderr, 1);
			}
			o->dry_run = optarg + 5;
			break;
		case 'd': o->foreground = 1; break;
		case 'f': o->src.path = optarg; o->src.explicit_path = 1; break;
		case 'h': usage(stdout, 0);
		case 'i': o->inetd = 1; break;
		case 'l': add_override(o, "listen", optarg); break;
		case 'n': o->check = 1; break;
		case 'o': add_override(o, NULL, optarg); break;
		case 'p': add_override(o, "port", optarg); break;
		case 'u': add_override(o, "user", optarg); break;
		case 'V': printf("%s %s\n", SE_NAME, PACKAGE_VERSION); exit(0);
		case 'v': o->verbose++; break;
		case ':':
			fprintf(stderr, "%s: option -%c needs a value\n", SE_NAME,
			    optopt);
			usage(stderr, 1);
		default:
			if (optopt != 0)
				fprintf(stderr, "%s: unknown option -%c\n", SE_NAME,
				    optopt);
			else
				fprintf(stderr, "%s: unknown option %s\n", SE_NAME,
				    argv[optind - 1]);
			usage(stderr, 1);
		}
	}
	if (optind != argc)
		usage(stderr, 1);
	if (o->dry_run != NULL && !o->check) {
		fprintf(stderr, "%s: -C needs -n\n", SE_NAME);
		usage(stderr, 1);
	}
}

/*
 * Open the configuration file's directory now, so that SIGHUP can read the
 * file again after chroot; children close it.
 */
static void
open_conf_dir(struct conf_source *src)
{
	static char	 dir[PATH_MAX], base[PATH_MAX];

	strlcpy(dir, src->path, sizeof(dir));
	strlcpy(base, src->path, sizeof(base));
	src->base = basename(base);
	src->dirfd = open(dirname(dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Make sure fds 0, 1 and 2 are open, so no socket can become stderr. */
static void
sanitize_stdio(void)
{
	int	 fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

/*
 * Start from the default disposition of every signal srvexample relies on,
 * unblocked: what a launcher ignored survives exec(2), and with SIGCHLD
 * ignored the kernel would reap children behind the parent's back (their
 * counts would never drop), SIGTERM ignored would never stop a child.
 */
static void
reset_signals(void)
{
	const int	 sigs[] = { SIGCHLD, SIGALRM, SIGTERM, SIGINT, SIGHUP,
	    SIGUSR1, SIGPIPE, SE_EXIT_SIGNAL };
	sigset_t	 none;
	size_t		 i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* -n: check what a start would need, print the result. */
static int __attribute__((noreturn))
check_only(const struct options *o, const struct conf *c)
{
	struct privdrop	 pd;

	if (o->dry_run != NULL)
		exit(policy_dry_run(c, o->dry_run));
	if (privdrop_lookup(c, &pd) == -1 ||
	    (c->chroot != NULL && privdrop_check_chroot(c->chroot) == -1) ||
	    control_check_limits(c, MAX_LISTENERS) == -1)
		exit(1);
	if (o->verbose)
		conf_print(c);
	fprintf(stderr, "configuration OK\n");
	exit(0);
}

/*
 * Bound each name server's answer (one second, one try each: the resolver
 * process asks for a PTR and then for the name's addresses), and load the
 * resolver's configuration here, before any chroot, with one lookup of
 * the loopback address, so that the resolver process inherits it.  Clients
 * are never looked up in the parent nor in a child (resolver.c).
 */
static void
resolver_setup(void)
{
	struct sockaddr_in	 lo = { .sin_family = AF_INET };
	const char		*old = getenv("RES_OPTIONS");
	char			 opts[256], host[NI_MAXHOST];

	snprintf(opts, sizeof(opts), "timeout:1 attempts:1%s%s",
	    old ? " " : "", old ? old : "");
	setenv("RES_OPTIONS", opts, 1);
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)getnameinfo((struct sockaddr *)&lo, sizeof(lo), host, sizeof(host),
	    NULL, 0, NI_NAMEREQD);
}

/*
 * Raise the soft limits the parent's work grows with as far as the hard
 * limits allow: descriptors (a report socket per child behind a balancer)
 * and queued signals (one per child that has exited and is not yet reaped).
 */
static void
raise_limits(void)
{
	static const int res[] = { RLIMIT_NOFILE, RLIMIT_SIGPENDING };
	struct rlimit	 rl;
	size_t		 i;

	for (i = 0; i < sizeof(res) / sizeof(res[0]); i++)
		if (getrlimit(res[i], &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(res[i], &rl);
		}
}

/* Name the parent after its listeners: "listening on 127.0.0.1:3456 ...". */
static void
title_parent(const int *lfd, int n)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 title[256], a[INET6_ADDRSTRLEN];
	int			 i;
	size_t			 off;

	off = strlcpy(title, "listening on", sizeof(title));
	for (i = 0; i < n && off < sizeof(title); i++) {
		len = sizeof(ss);
		if (getsockname(lfd[i], (struct sockaddr *)&ss, &len) == -1)
			continue;
		addr_ntop(&ss, a, sizeof(a));
		off += snprintf(title + off, sizeof(title) - off,
		    ss.ss_family == AF_INET6 ? " [%s]:%d" : " %s:%d", a,
		    addr_port(&ss));
	}
	setproctitle("%s", title);
}

/* Open the listeners: from systemd when socket-activated, else as configured. */
static int
open_listeners(const struct conf *c, int *lfd)
{
	int	 n;

	if ((n = listen_inherited(lfd, MAX_LISTENERS)) != 0) {
		if (n > 0 && (c->nlisten > 0 || c->port != 3456))
			log_info("socket activation: listen and port are ignored");
		return n;
	}
	return listen_open(c, lfd, MAX_LISTENERS);
}

int
main(int argc, char *argv[])
{
	struct options		 o;
	struct conf		 conf;
	struct privdrop		 pd;
	struct pidfile		*pf = NULL;
	struct server_ctx	 ctx;
	int			 lfd[MAX_LISTENERS], nlfd;

	reset_signals();
	setproctitle_init(argc, argv, environ);
	closefrom(3 + listen_inherited_count());
	sanitize_stdio();
	signal(SIGPIPE, SIG_IGN);
	parse_flags(argc, argv, &o);
	if (o.inetd)			/* stdio is the client: never log there */
		log_init(LOG_SINK_SYSLOG, LOG_DAEMON, 0);
	log_setverbose(o.verbose);
	open_conf_dir(&o.src);
	raise_limits();
	if (conf_load(&o.src, &conf) == -1)
		exit(1);
	if (conf.log == LOG_SINK_DEFAULT)	/* -i: stderr is the client */
		conf.log = o.foreground && !o.inetd ? LOG_SINK_STDERR :
		    LOG_SINK_SYSLOG;
	if (o.check)
		check_only(&o, &conf);
	if (privdrop_lookup(&conf, &pd) == -1 ||
	    (conf.chroot != NULL && privdrop_check_chroot(conf.chroot) == -1))
		exit(1);
	log_init(conf.log, conf.log_facility, !o.foreground && !o.inetd &&
	    conf.log == LOG_SINK_SYSLOG);
	if (conf.resolve)
		resolver_setup();
	if (o.inetd)
		exit(inetd_serve(&conf, &pd) == -1 ? 1 : 0);
	if ((nlfd = open_listeners(&conf, lfd)) <= 0) {
		if (nlfd == 0)
			log_warnx("no address to listen on");
		exit(1);
	}
	if (conf.defer_accept > 0)	/* 0 leaves systemd's DeferAcceptSec= */
		listen_defer(lfd, nlfd, conf.defer_accept);
	if (control_check_limits(&conf, nlfd) == -1 || agent_open(&conf) == -1)
		exit(1);
	notify_init();
	if (!o.foreground && conf.pidfile != NULL &&
	    (pf = daemon_pidfile_open(conf.pidfile, &pd)) == NULL)
		exit(1);
	if (metrics_open(&conf) == -1)
		exit(1);
	if (privdrop_apply(&pd, conf.chroot) == -1)
		exit(1);
	if (!o.foreground)
		daemon_detach(pf);
	title_parent(lfd, nlfd);
	if (conf.resolve && resolver_start(&conf) == -1)
		exit(1);
	sandbox_child_asks(resolver_fd());
	if (sandbox_parent(daemon_pidfile_dirfd(pf), metrics_dirfd(),
	    metrics_open_flags()) == -1)
		exit(1);
#ifdef HAVE_MALLOC_TRIM
	/* What setup freed (user lookup, filter compilation) leaves the parent:
	   fork copies the page tables of every resident page, per client. */
	malloc_trim(0);
#endif
	log_info("ready: %s %s, pid %ld%s", SE_NAME, PACKAGE_VERSION,
	    (long)getpid(), sandbox_active() ? ", sandboxed" : "");
	log_started();
	notify_send("READY=1\nSTATUS=serving\nMAINPID=%ld", (long)getpid());
	ctx = (struct server_ctx){ &conf, &o.src, lfd, nlfd, o.foreground };
	if (server_run(&ctx) == -1)
		exit(1);
	daemon_pidfile_remove(pf);
	conf_clear(&conf);
	free_overrides(&o.src);
	return 0;
}
