/*
 * lineserver: what the benchmark's reference servers share (refserver,
 * iterserver and every step of ladder), so that they answer alike.
 */
#ifndef LINESERVER_H
#define LINESERVER_H

#include <stddef.h>

#define LS_PREFIX	"You said:"
#define LS_MAXLINE	4096

int	ls_listen(const char *);
size_t	ls_answer(int);

#endif /* LINESERVER_H */
