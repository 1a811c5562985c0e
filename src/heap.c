/*
 * heap.c: an indexed binary min-heap.  Each element is an id with a key
 * (a time); the heap tells its owner where each id sits, so that an element
 * can be removed from anywhere.  Used for the children's deadlines and for
 * the per-source entries that may be reused: push, remove and top cost
 * O(log n) or less, whatever the number of elements.
 */
#include <stdint.h>
#include <stdlib.h>

#include "srvexample.h"
#include "parent.h"

/* Put node at pos and tell the owner. */
static void
place(struct heap *h, size_t pos, struct heap_node node)
{
	h->v[pos] = node;
	h->moved(h->ctx, node.id, pos + 1);
}

/* Move the node at pos up while its parent has a later key. */
static void
sift_up(struct heap *h, size_t pos)
{
	struct heap_node node = h->v[pos];
	size_t		 up;

	while (pos > 0 && h->v[up = (pos - 1) / 2].key > node.key) {
		place(h, pos, h->v[up]);
		pos = up;
	}
	place(h, pos, node);
}

/* Move the node at pos down while a child has an earlier key. */
static void
sift_down(struct heap *h, size_t pos)
{
	struct heap_node node = h->v[pos];
	size_t		 c;

	while ((c = 2 * pos + 1) < h->n) {
		if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key)
			c++;
		if (h->v[c].key >= node.key)
			break;
		place(h, pos, h->v[c]);
		pos = c;
	}
	place(h, pos, node);
}

/* Add id with key; -1 when memory is short. */
int
heap_push(struct heap *h, uint32_t id, int64_t key)
{
	struct heap_node *v;
	size_t		 cap;

	if (h->n == h->cap) {
		cap = h->cap == 0 ? 64 : h->cap * 2;
		if ((v = table_resize(h->v, h->cap, cap, sizeof(*v))) == NULL)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n] = (struct heap_node){ key, id };
	sift_up(h, h->n++);
	return 0;
}

/* Remove the node at pos (as told to the owner, minus one). */
void
heap_remove(struct heap *h, size_t pos)
{
	uint32_t	 id = h->v[pos].id;

	if (--h->n != pos) {
		h->v[pos] = h->v[h->n];
		if (pos > 0 && h->v[(pos - 1) / 2].key > h->v[pos].key)
			sift_up(h, pos);
		else
			sift_down(h, pos);
	}
	h->moved(h->ctx, id, 0);
}

/* The node with the earliest key, or NULL. */
const struct heap_node *
heap_top(const struct heap *h)
{
	return h->n > 0 ? &h->v[0] : NULL;
}

void
heap_free(struct heap *h)
{
	table_free(h->v, h->cap, sizeof(*h->v));
	h->v = NULL;
	h->n = h->cap = 0;
}
