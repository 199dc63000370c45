// The Linux headers Glibc's Swift module does not import: epoll, eventfd, signalfd, and GNU accept4.
#ifndef CSLUICE_LINUX_H
#define CSLUICE_LINUX_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

/// accept4(2): accept with SOCK_NONBLOCK | SOCK_CLOEXEC in one call (a GNU extension Swift cannot see).
int csluice_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/// errno, as a function: Swift reads the thread-local through Glibc, but keeping every C call in one place helps.
static inline int csluice_errno(void) { return errno; }

#endif
