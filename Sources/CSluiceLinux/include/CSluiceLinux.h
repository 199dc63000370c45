// The Linux headers Glibc's Swift module does not import (epoll, eventfd, signalfd), and a wrapper for GNU
// accept4. No feature macros here: defining _GNU_SOURCE in a header that Swift imports changes the layout of
// types such as fd_set relative to Glibc's own module, and the two modules then conflict. The wrapper's .c file
// defines it instead.
#ifndef CSLUICE_LINUX_H
#define CSLUICE_LINUX_H

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

/// accept4(2): accept with SOCK_NONBLOCK | SOCK_CLOEXEC in one call (a GNU extension Swift cannot see).
int csluice_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

#endif
