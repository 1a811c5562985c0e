/*
 * names.c: a client's name for the log, as SPEC "Names" has it: the PTR
 * name of its address, used only when that name's own addresses (A/AAAA)
 * include the client's, as tcp_wrappers' PARANOID check and sshd's UseDNS
 * do; else the address.  Anybody who runs the reverse zone of an address
 * can make its PTR say anything, only the owner of the name's zone can make
 * the name point back.
 *
 * The lookup itself (names_lookup) runs in the resolver process
 * (resolver.c), never in a child: glibc's NSS loads modules lazily, and
 * in a sandboxed child a module's constructor (libcap's prctl() in
 * mymachines and myhostname) would kill it.  A child only asks
 * (names_ask): one datagram carrying the address and one end of a
 * socketpair made before its filter (names_open), on which the answer
 * comes back, or nothing within the bound.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "srvexample.h"

/* The query for the address at ss (normalised: IPv4 as AF_INET). */
void
names_query_init(struct names_query *q, const struct sockaddr_storage *ss)
{
	memset(q, 0, sizeof(*q));
	q->op = NAMES_OP_QUERY;
	q->family = ss->ss_family;
	if (ss->ss_family == AF_INET)
		memcpy(q->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else
		memcpy(q->addr, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    16);
}

/* Is ai the address of q (an IPv4-mapped IPv6 one counts as IPv4)? */
static int
same_address(const struct names_query *q, const struct addrinfo *ai)
{
	const struct sockaddr_in6 *s6;

	if (ai->ai_family == AF_INET)
		return q->family == AF_INET && memcmp(q->addr,
		    &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4) == 0;
	if (ai->ai_family != AF_INET6)
		return 0;
	s6 = (const struct sockaddr_in6 *)ai->ai_addr;
	if (q->family == AF_INET6)
		return memcmp(q->addr, &s6->sin6_addr, 16) == 0;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
	    memcmp(q->addr, s6->sin6_addr.s6_addr + 12, 4) == 0;
}

/* Do host's A/AAAA records include q's address?  NAME_CONFIRMED,
 * NAME_UNCONFIRMED, or NAME_FAILED when the lookup itself failed. */
static int
confirm(const struct names_query *q, const char *host)
{
	struct addrinfo	 hints, *res, *ai;
	int		 rc, st = NAME_UNCONFIRMED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0)
		return rc == EAI_NONAME || rc == EAI_NODATA ||
		    rc == EAI_ADDRFAMILY ? NAME_UNCONFIRMED : NAME_FAILED;
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (same_address(q, ai)) {
			st = NAME_CONFIRMED;
			break;
		}
	freeaddrinfo(res);
	return st;
}

/*
 * Look up q's address: its PTR name, then that name's addresses.  The name
 * in a is escaped for the log (it is the PTR name also when it does not
 * map back, for the -v line that says so).  Bounded by the resolver's
 * options (RES_OPTIONS, main.c); the asker's own wait is the hard bound.
 */
void
names_lookup(const struct names_query *q, struct names_answer *a)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;
	char			 host[NI_MAXHOST];
	socklen_t		 len;
	int			 rc;

	memset(a, 0, sizeof(*a));
	memset(&ss, 0, sizeof(ss));
	if (q->family == AF_INET) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, q->addr, 4);
		len = sizeof(*s4);
	} else if (q->family == AF_INET6) {
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, q->addr, 16);
		len = sizeof(*s6);
	} else
		return;
	rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host),
	    NULL, 0, NI_NAMEREQD);
	if (rc != 0) {
		a->status = rc == EAI_NONAME ? NAME_NONE : NAME_FAILED;
		return;
	}
	log_escape(a->name, sizeof(a->name), host, strlen(host));
	a->status = confirm(q, host);
}

/* Is the answer one the resolver could have sent: a known status, and a
 * name of printable characters ending within its room? */
int
names_answer_valid(const struct names_answer *a)
{
	size_t	 i;

	if (a->status > NAME_UNCONFIRMED)
		return 0;
	for (i = 0; i < sizeof(a->name) && a->name[i] != '\0'; i++)
		if (a->name[i] < 0x20 || a->name[i] > 0x7e)
			return 0;
	return i < sizeof(a->name);
}

/* Send q to the resolver on fd with the answer socket sv; -1 on error. */
static int
send_query(int fd, struct names_query *q, int sv)
{
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec	 iov = { .iov_base = q, .iov_len = sizeof(*q) };
	struct msghdr	 mh;
	struct cmsghdr	*c;

	memset(&mh, 0, sizeof(mh));
	memset(&cm, 0, sizeof(cm));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &sv, sizeof(int));
	return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(*q) ?
	    0 : -1;
}

/*
 * In a child, before its filter (which refuses new descriptors): the
 * socketpair on which the answer is to come, into sv.  -1 on error.
 */
int
names_open(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/*
 * In a child, under its filter: ask the resolver on fd for the name of ss,
 * with sv[1] for the answer (names_open), and wait for the answer on sv[0]
 * until deadline (ms, monotonic); both are closed.  nocache: the resolver
 * is not to remember it.  0 with the answer in a, or -1 (no resolver, no
 * answer in time, or a full queue: the client is then logged by its
 * address).
 */
int
names_ask(int fd, int sv[2], const struct sockaddr_storage *ss, int nocache,
    int64_t deadline, struct names_answer *a)
{
	struct names_query	 q;
	struct pollfd		 pfd;
	int64_t			 left;
	ssize_t			 n = -1;
	int			 rv;

	names_query_init(&q, ss);
	q.nocache = nocache != 0;
	rv = send_query(fd, &q, sv[1]);
	close(sv[1]);
	pfd.fd = sv[0];
	pfd.events = POLLIN;
	while (rv == 0) {
		left = deadline - clock_ms();
		if (left <= 0)
			break;
		rv = poll(&pfd, 1, (int)left);
		if (rv == 1) {
			n = recv(sv[0], a, sizeof(*a), MSG_DONTWAIT);
			break;
		}
		rv = rv == -1 && errno != EINTR ? -1 : 0;
	}
	close(sv[0]);
	return n == (ssize_t)sizeof(*a) && names_answer_valid(a) ? 0 : -1;
}
