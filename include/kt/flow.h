/* flow.h: one LLM request's journey through a worker (DESIGN.md "One
 * request in a worker"): decode, policies, target choice, upstream call
 * with retries and fallback, translation, reply, audit. */
#ifndef KT_FLOW_H
#define KT_FLOW_H

#include "kt/format.h"

struct kt_srv;
struct evhtp_request;

/* kt_flow_start: take over req (an LLM endpoint in client format fmt). */
void kt_flow_start(struct kt_srv *s, struct evhtp_request *req, enum kt_format fmt,
                   const char *request_id);
/* kt_flow_srv_free: free what flows keep in s (finished flows kept for
 * reuse, the flush event), at server teardown. */
void kt_flow_srv_free(struct kt_srv *s);

#endif
