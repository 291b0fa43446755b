/* mock.h: the built-in `provider: mock` target. It answers like a real
 * upstream (same callbacks as upstream.h, driven by the event loop, never
 * synchronously) in the target's wire format, streaming or not, so the
 * quickstart config works with no API key and no network. Tests of the
 * gateway itself use tests/mock/, a real HTTP server, instead. */
#ifndef KT_MOCK_H
#define KT_MOCK_H

#include <event2/event.h>

#include "kt/format.h"
#include "kt/ir.h"
#include "kt/upstream.h"

struct kt_mockcall;

struct kt_mockcall *kt_mock_start(struct event_base *base, enum kt_format fmt,
                                  const struct kt_request *req, const char *model,
                                  const struct kt_upcall_cbs *cbs, void *ud);
void kt_mock_cancel(struct kt_mockcall *m);
void kt_mock_resume(struct kt_mockcall *m);

#endif
