/* mock.c: the built-in mock provider (see mock.h). It writes a response
 * body, or a stream of SSE events, in the target's own wire format and
 * hands it over piece by piece from event-loop timers, exactly as the
 * HTTP client would. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kt/buf.h"
#include "kt/mock.h"
#include "kt/util.h"

struct kt_mockcall {
    struct event *timer;
    struct kt_upcall_cbs cbs;
    void *ud;
    struct kt_buf body;       /* the whole response (JSON or SSE text) */
    size_t sent;
    int stream, headers_sent, paused;
    /* SSE pieces are delivered one event at a time: offsets of event ends */
    size_t cuts[64];
    size_t ncuts, cut;
};

static const char *last_user_text(const struct kt_request *req, size_t *len)
{
    for (size_t i = req->nmsgs; i-- > 0;) {
        const struct kt_msg *m = &req->msgs[i];
        if (m->role != KT_ROLE_USER)
            continue;
        for (size_t k = 0; k < m->nparts; k++)
            if (m->parts[k].type == KT_PART_TEXT) {
                *len = m->parts[k].len;
                return m->parts[k].text;
            }
    }
    *len = 0;
    return "";
}

/* The reply's words, split so streams have several deltas. */
static void reply_words(const struct kt_request *req, struct kt_buf *out)
{
    size_t n;
    const char *t = last_user_text(req, &n);
    if (n > 200)
        n = 200;
    kt_buf_puts(out, "Hello from the ktd mock provider. You said: ");
    kt_buf_append(out, t, n);
}

static long word_count(const char *s, size_t n)
{
    long w = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t';
        if (!sp && !in)
            w++;
        in = !sp;
    }
    return w;
}

static void cut(struct kt_mockcall *m)
{
    if (m->ncuts < sizeof m->cuts / sizeof m->cuts[0])
        m->cuts[m->ncuts++] = m->body.len;
}

static void build(struct kt_mockcall *m, enum kt_format fmt, const struct kt_request *req,
                  const char *model)
{
    struct kt_buf text = {0};
    reply_words(req, &text);
    size_t ulen;
    const char *ut = last_user_text(req, &ulen);
    long in_tok = word_count(ut, ulen) + 3, out_tok = word_count(text.data, text.len);
    char id[48];
    kt_random_hex(id, 12);
    long now = (long)time(NULL);
    struct kt_buf *b = &m->body;
    if (!m->stream) {
        if (fmt == KT_FMT_ANTHROPIC) {
            kt_buf_printf(b, "{\"id\":\"msg_mock%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
            kt_buf_json_str(b, model, strlen(model));
            kt_buf_puts(b, ",\"content\":[{\"type\":\"text\",\"text\":");
            kt_buf_json_str(b, text.data, text.len);
            kt_buf_printf(b, "}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
                             "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}", in_tok, out_tok);
        } else {
            kt_buf_printf(b, "{\"id\":\"chatcmpl-mock%s\",\"object\":\"chat.completion\",\"created\":%ld,\"model\":", id, now);
            kt_buf_json_str(b, model, strlen(model));
            kt_buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            kt_buf_json_str(b, text.data, text.len);
            kt_buf_printf(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                             "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                          in_tok, out_tok, in_tok + out_tok);
        }
        cut(m);
        kt_buf_free(&text);
        return;
    }
    /* Streams: the text in pieces of a few words. */
    const char *p = text.data, *end = text.data + text.len;
    if (fmt == KT_FMT_ANTHROPIC) {
        kt_buf_printf(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock%s\","
                         "\"type\":\"message\",\"role\":\"assistant\",\"model\":", id);
        kt_buf_json_str(b, model, strlen(model));
        kt_buf_printf(b, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                         "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":1}}}\n\n", in_tok);
        kt_buf_puts(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
                       "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        cut(m);
    } else {
        kt_buf_printf(b, "data: {\"id\":\"chatcmpl-mock%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":", id, now);
        kt_buf_json_str(b, model, strlen(model));
        kt_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
        cut(m);
    }
    while (p < end) {
        const char *q = p;
        int words = 0;
        while (q < end && words < 3) {
            while (q < end && *q != ' ')
                q++;
            if (q < end)
                q++;
            words++;
        }
        if (fmt == KT_FMT_ANTHROPIC) {
            kt_buf_puts(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                           "\"delta\":{\"type\":\"text_delta\",\"text\":");
            kt_buf_json_str(b, p, (size_t)(q - p));
            kt_buf_puts(b, "}}\n\n");
        } else {
            kt_buf_printf(b, "data: {\"id\":\"chatcmpl-mock%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":", id, now);
            kt_buf_json_str(b, model, strlen(model));
            kt_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
            kt_buf_json_str(b, p, (size_t)(q - p));
            kt_buf_puts(b, "},\"finish_reason\":null}]}\n\n");
        }
        cut(m);
        p = q;
    }
    if (fmt == KT_FMT_ANTHROPIC) {
        kt_buf_printf(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
                         "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                         "\"stop_sequence\":null},\"usage\":{\"output_tokens\":%ld}}\n\n"
                         "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", out_tok);
    } else {
        kt_buf_printf(b, "data: {\"id\":\"chatcmpl-mock%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":", id, now);
        kt_buf_json_str(b, model, strlen(model));
        kt_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        if (req->include_usage) {
            kt_buf_printf(b, "data: {\"id\":\"chatcmpl-mock%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":", id, now);
            kt_buf_json_str(b, model, strlen(model));
            kt_buf_printf(b, ",\"choices\":[],\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n",
                          in_tok, out_tok, in_tok + out_tok);
        }
        kt_buf_puts(b, "data: [DONE]\n\n");
    }
    cut(m);
    kt_buf_free(&text);
}

static void arm(struct kt_mockcall *m, int ms)
{
    struct timeval tv = { 0, ms * 1000 };
    evtimer_add(m->timer, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct kt_mockcall *m = arg;
    if (!m->headers_sent) {
        m->headers_sent = 1;
        m->cbs.on_headers(m->ud, 200, m->stream ? "text/event-stream" : "application/json", -1);
        arm(m, 0);
        return;
    }
    if (m->cut < m->ncuts) {
        size_t end = m->cuts[m->cut];
        int r = m->cbs.on_data(m->ud, m->body.data + m->sent, end - m->sent);
        if (r < 0) {
            m->cbs.on_done(m->ud, KT_UP_ABORTED, 200, "aborted");
            kt_mock_cancel(m);
            return;
        }
        if (r > 0) {
            m->paused = 1;
            return;
        }
        m->sent = end;
        m->cut++;
        arm(m, m->stream ? 5 : 0);
        return;
    }
    m->cbs.on_done(m->ud, KT_UP_OK, 200, NULL);
    kt_mock_cancel(m);
}

struct kt_mockcall *kt_mock_start(struct event_base *base, enum kt_format fmt,
                                  const struct kt_request *req, const char *model,
                                  const struct kt_upcall_cbs *cbs, void *ud)
{
    struct kt_mockcall *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->timer = evtimer_new(base, on_tick, m);
    if (m->timer == NULL) {
        free(m);
        return NULL;
    }
    m->cbs = *cbs;
    m->ud = ud;
    m->stream = req->stream;
    build(m, fmt, req, model);
    arm(m, 1);
    return m;
}

void kt_mock_resume(struct kt_mockcall *m)
{
    if (m && m->paused) {
        m->paused = 0;
        arm(m, 0);
    }
}

void kt_mock_cancel(struct kt_mockcall *m)
{
    if (m == NULL)
        return;
    event_free(m->timer);
    kt_buf_free(&m->body);
    free(m);
}
