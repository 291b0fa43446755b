/* proc.h: the master's view of its helper processes: the audit process,
 * the prober and the shared state dir. Maps the config onto each
 * subsystem's own options so those subsystems never see the config. */
#ifndef KT_PROC_H
#define KT_PROC_H

#include <stddef.h>

#include "kt/config.h"

struct kt_audit_opts;

/* kt_proc_audit_opts: the audit options of cfg. */
void kt_proc_audit_opts(const struct kt_config *cfg, struct kt_audit_opts *o);
/* kt_proc_audit_main: body of the audit process; returns its exit status. */
int kt_proc_audit_main(const struct kt_config *cfg, const int *fds, size_t nfds);
/* kt_proc_prober_main: body of the prober process. */
int kt_proc_prober_main(const struct kt_config *cfg);
/* kt_proc_state_prepare: create and validate server.state_dir (master). */
int kt_proc_state_prepare(const struct kt_config *cfg);
/* kt_proc_state_reader_check: clear LMDB reader slots of dead children. */
void kt_proc_state_reader_check(const struct kt_config *cfg);

#endif
