/* listen.h: opening listening sockets in the master (inherited by workers). */
#ifndef KT_LISTEN_H
#define KT_LISTEN_H

#include "kt/err.h"

/* kt_listen_open: bind and listen on host:port (IPv4, IPv6 or a name),
 * non-blocking, SO_REUSEADDR, backlog 511. Returns the fd or a KT_E code. */
int kt_listen_open(const char *host, int port, struct kt_err *err);
/* kt_listen_port: the port a bound socket got (for port 0). */
int kt_listen_port(int fd);

#endif
