/*
 * namecache.c: the parent's memory of the names its children looked up
 * (resolve-cache).  A reverse lookup is the dearest thing a child does: it
 * runs glibc's NSS code and reads /etc/hosts or asks a server, all in a
 * fresh address space, so a client that comes back pays it every time.
 * The parent never looks a name up (a slow server must not stall it), but
 * it can remember what a child found and hand it to the next children
 * serving the same address.
 *
 * The children's reports come over one datagram socketpair made at start:
 * a child given the socket sends one datagram, the name, right after its
 * lookup and before it reads a byte from its client, then closes it.  The
 * kernel stamps each datagram with the sender's pid (SO_PASSCRED), and the
 * parent files the name under the address of the child it forked with that
 * pid, once.  So a client cannot choose what is remembered, only the answer
 * to the reverse lookup can, as without the cache; and a child can speak
 * only of its own client's address.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <string.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

#define NAMECACHE_SIZE	64	/* addresses remembered */
#define READ_BATCH	32	/* reports read per wakeup */

struct name_entry {
	char	 ip[INET6_ADDRSTRLEN];
	char	 name[NAME_LOG_MAX];	/* "": the address has no name */
	int64_t	 expires;		/* 0: a free entry */
};

/* Static and zero: resident only as far as entries are used. */
static struct name_entry names[NAMECACHE_SIZE];
static int	 namesock[2] = { -1, -1 };	/* parent reads 0, children
						   write 1 */

/* Make the socketpair for the children's reports; -1 (logged) on error. */
int
namecache_open(void)
{
	int	 on = 1;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    namesock) == -1 || setsockopt(namesock[0], SOL_SOCKET, SO_PASSCRED,
	    &on, sizeof(on)) == -1) {
		log_warn("name cache socket");
		namecache_close();
		return -1;
	}
	return 0;
}

void
namecache_close(void)
{
	if (namesock[0] != -1)
		close(namesock[0]);
	if (namesock[1] != -1)
		close(namesock[1]);
	namesock[0] = namesock[1] = -1;
}

/* The descriptor the parent polls for reports (-1 when there is none). */
int
namecache_fd(void)
{
	return namesock[0];
}

/* The descriptor a child reports on (-1 when there is none). */
int
namecache_child_fd(void)
{
	return namesock[1];
}

/* The remembered name of ip ("" for none), or NULL when unknown or stale. */
const char *
namecache_get(const char *ip, int64_t now)
{
	size_t	 i;

	for (i = 0; i < NAMECACHE_SIZE; i++)
		if (names[i].expires > now && strcmp(names[i].ip, ip) == 0)
			return names[i].name;
	return NULL;
}

/* Remember name for ip until expires, in its own entry or the stalest one. */
static void
namecache_put(const char *ip, const char *name, int64_t expires)
{
	struct name_entry	*e = &names[0];
	size_t			 i;

	for (i = 0; i < NAMECACHE_SIZE; i++) {
		if (names[i].expires != 0 && strcmp(names[i].ip, ip) == 0) {
			e = &names[i];
			break;
		}
		if (names[i].expires < e->expires)
			e = &names[i];
	}
	strlcpy(e->ip, ip, sizeof(e->ip));
	strlcpy(e->name, name, sizeof(e->name));
	e->expires = expires;
}

/*
 * Forget every name (SIGHUP: the resolver's files may have changed), and
 * the reports still due from children that looked up before.
 */
void
namecache_clear(struct children *kids)
{
	size_t	 i;

	for (i = 0; i < NAMECACHE_SIZE; i++)
		if (names[i].expires != 0)	/* unused pages stay untouched */
			names[i].expires = 0;
	for (i = 0; i < kids->cap; i++)
		kids->v[i].naming = 0;
}

/* Is the report a name as a child logs it: printable ASCII, no quote? */
static int
report_valid(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"')
			return 0;
	return 1;
}

/*
 * Read the children's reports and remember each name for ttl seconds under
 * the address of the child that sent it.  A report from a pid that is not a
 * child waiting to report is dropped; so is a malformed one.
 */
void
namecache_read(struct children *kids, int ttl, int64_t now)
{
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct ucred	 cred;
	struct cmsghdr	*c;
	struct child	*kid;
	struct iovec	 iov;
	struct msghdr	 mh;
	char		 name[NAME_LOG_MAX];
	ssize_t		 n;
	int		 i;

	for (i = 0; i < READ_BATCH; i++) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = name;
		iov.iov_len = sizeof(name) - 1;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		if ((n = recvmsg(namesock[0], &mh, MSG_DONTWAIT)) == -1)
			return;
		if ((c = CMSG_FIRSTHDR(&mh)) == NULL ||
		    c->cmsg_level != SOL_SOCKET ||
		    c->cmsg_type != SCM_CREDENTIALS ||
		    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
			continue;
		memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		if ((kid = children_find_pid(kids, cred.pid)) == NULL ||
		    !kid->naming || !report_valid(name, (size_t)n))
			continue;
		kid->naming = 0;
		name[n] = '\0';
		if (ttl > 0)
			namecache_put(kid->ip, name, now + ttl * 1000LL);
	}
}

/*
 * In a child: tell the parent the name found for its client ("" for none;
 * NULL: nothing to remember), then close the socket, before a byte from the
 * client is read, so that nothing the client sends can speak on it.
 */
void
namecache_tell(int fd, const char *name)
{
	if (name != NULL)
		(void)send(fd, name, strlen(name), MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}
