/*
 * table.c: memory for the parent's own tables (the children, the sources,
 * their heaps), kept out of every child.
 *
 * fork(2) copies each mapping of the parent into the child and links the
 * child to the anonymous pages of each (anon_vma_clone), under a lock that
 * the next fork and every exit also take.  Tables that grow with the number
 * of live children, mapped in every one of them, made each fork slower the
 * more children were alive: a single clone(2) took tens of milliseconds
 * with 10,000.  A child never reads these tables (it leaves through
 * child_main() with what its child_ctx holds), so they live in mappings of
 * their own marked MADV_DONTFORK, which fork does not copy at all.
 * mremap(2) keeps that mark when it grows or moves a mapping.
 *
 * The memory is zeroed, like calloc(3)'s, and grown memory too.
 */
#include <sys/mman.h>

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "srvexample.h"
#include "parent.h"

/* The length of the mapping for n elements of size, a whole number of
 * pages; 0 when it would overflow. */
static size_t
map_len(size_t n, size_t size)
{
	size_t	 page = (size_t)sysconf(_SC_PAGESIZE);

	if (n == 0 || size == 0 || n > (SIZE_MAX - page) / size)
		return 0;
	return (n * size + page - 1) & ~(page - 1);
}

/* Zeroed room for n elements of size, not inherited by children; NULL with
 * errno set. */
void *
table_alloc(size_t n, size_t size)
{
	size_t	 len;
	void	*p;

	if ((len = map_len(n, size)) == 0) {
		errno = ENOMEM;
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (madvise(p, len, MADV_DONTFORK) == -1) {
		(void)munmap(p, len);
		return NULL;
	}
	return p;
}

/* Grow (or shrink) the table p of oldn elements to n, keeping what fits;
 * a new one when p is NULL.  NULL with errno set, p then unchanged. */
void *
table_resize(void *p, size_t oldn, size_t n, size_t size)
{
	size_t	 oldlen, len;
	void	*q;

	if (p == NULL)
		return table_alloc(n, size);
	oldlen = map_len(oldn, size);
	if ((len = map_len(n, size)) == 0) {
		errno = ENOMEM;
		return NULL;
	}
	if (len == oldlen)
		return p;
	if ((q = mremap(p, oldlen, len, MREMAP_MAYMOVE)) == MAP_FAILED)
		return NULL;
	return q;
}

/* Release the table p of n elements of size (NULL: nothing). */
void
table_free(void *p, size_t n, size_t size)
{
	if (p != NULL)
		(void)munmap(p, map_len(n, size));
}
