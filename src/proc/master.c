/* master.c: the supervising master (nginx's master cycle, Postfix's
 * spawner). Owns: the current config ("cycle"), the listening sockets, the
 * audit socket slots, the table of children and every signal. Never
 * serves traffic.
 *
 * Signals are blocked and taken synchronously with sigtimedwait(), so the
 * loop has no async-signal hazards and children start from a clean mask.
 * Reload builds a new config beside the old one; only when it validated
 * and its listeners are bound does a new generation of workers start, and
 * only then is the old generation told to finish and exit. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kt/listen.h"
#include "kt/log.h"
#include "kt/master.h"
#include "kt/proc.h"
#include "kt/util.h"
#include "kt/worker.h"

#define MAX_CHILDREN 512
#define MAX_LISTEN 32
#define MAX_SLOTS 512

enum role { ROLE_WORKER, ROLE_AUDIT, ROLE_PROBER };
static const char *const role_names[] = { "worker", "audit", "prober" };

struct child {
    pid_t pid;                /* 0 = free entry */
    enum role role;
    int gen;
    int slot;                 /* audit slot for workers */
    int retiring;             /* told to stop; not restarted */
    uint64_t started_ms;
};

/* A pending restart of a role (with backoff after quick crashes). */
struct restart {
    int pending;
    uint64_t at_ms;
    int quick_crashes;
};

struct listener {
    struct kt_listen addr;
    int fd;
};

struct audit_slot {
    int fd[2];                /* [0] audit end, [1] worker end; kept open by the master */
    pid_t user;               /* the worker using the slot, 0 = free */
};

struct master {
    const struct kt_master_opts *opts;
    struct kt_config *cfg;
    int gen;
    int nworkers;             /* wanted per generation */
    struct listener listeners[MAX_LISTEN];
    size_t nlisteners;
    struct audit_slot slots[MAX_SLOTS];
    size_t nslots;
    struct child children[MAX_CHILDREN];
    struct restart worker_restart, audit_restart, prober_restart;
    int worker_restarts_wanted;
    int stopping;             /* 0, 1 graceful, 2 fast */
    uint64_t stop_deadline_ms;
    int audit_restart_requested;
};

static int want_audit(const struct kt_config *cfg)
{
    return kt_cfg_has_policy(cfg, "audit-logger");
}

static int want_prober(const struct kt_config *cfg)
{
    for (size_t i = 0; i < cfg->providers.ntargets; i++)
        if (cfg->providers.targets[i].health_probe.enabled)
            return 1;
    return 0;
}

/* check_tls: a certificate and key that workers could not load must fail
 * `ktd -t` and a reload, not every worker at start. */
static int check_tls(const struct kt_config *cfg)
{
    const struct kt_server *sv = &cfg->server;
    if (sv->tls_cert == NULL && sv->tls_key == NULL)
        return 0;
    if (sv->tls_cert == NULL || sv->tls_key == NULL) {
        kt_error("config: server.tls needs both cert and key");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int ok = ctx && SSL_CTX_use_certificate_chain_file(ctx, sv->tls_cert) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, sv->tls_key, SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1;
    if (!ok) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        kt_error("config: server.tls: cannot use %s with %s: %s", sv->tls_cert, sv->tls_key, buf);
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok ? 0 : -1;
}

int kt_master_load(const struct kt_master_opts *o, struct kt_config **out)
{
    struct kt_cfg_errors errs = {0};
    int rc = o->nconfig ? kt_cfg_load(o->config_paths, o->nconfig, out, &errs)
                        : kt_cfg_load_quickstart(out, &errs);
    if (rc != 0) {
        for (size_t i = 0; i < errs.n; i++) {
            char line[1024];
            kt_error("config: %s", kt_err_format(&errs.v[i], line, sizeof line));
        }
        if (errs.dropped)
            kt_error("config: %zu more errors not shown", errs.dropped);
        if (errs.n == 0)
            kt_error("config: could not load (error %d)", rc);
        kt_cfg_errors_free(&errs);
        return rc;
    }
    kt_cfg_errors_free(&errs);
    if (check_tls(*out) != 0) {
        kt_cfg_free(*out);
        *out = NULL;
        return KT_EINVAL;
    }
    if (o->fail_mode >= 0)
        (*out)->policies.fail_mode = (enum kt_fail_mode)o->fail_mode;
    return 0;
}

static int effective_workers(const struct master *m, const struct kt_config *cfg)
{
    if (m->opts->workers > 0)
        return m->opts->workers;
    if (cfg->server.workers > 0)
        return cfg->server.workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* --- listeners ---------------------------------------------------------- */

static const struct kt_listen *wanted_listen(const struct master *m, const struct kt_config *cfg,
                                             size_t *n)
{
    if (m->opts->nlisten) {
        *n = m->opts->nlisten;
        return m->opts->listen;
    }
    *n = cfg->server.nlisten;
    return cfg->server.listen;
}

/* bind_listeners: make the listener set match cfg, reusing sockets bound to
 * the same address. On failure nothing changes. */
static int bind_listeners(struct master *m, const struct kt_config *cfg)
{
    size_t n;
    const struct kt_listen *want = wanted_listen(m, cfg, &n);
    if (n > MAX_LISTEN) {
        kt_error("too many listen addresses (%zu, max %d)", n, MAX_LISTEN);
        return -1;
    }
    struct listener next[MAX_LISTEN];
    int reused[MAX_LISTEN] = {0};
    for (size_t i = 0; i < n; i++) {
        next[i].addr = want[i];
        next[i].fd = -1;
        for (size_t j = 0; j < m->nlisteners; j++)
            if (!reused[j] && m->listeners[j].addr.port == want[i].port &&
                strcmp(m->listeners[j].addr.host, want[i].host) == 0) {
                next[i].fd = m->listeners[j].fd;
                reused[j] = 1;
                break;
            }
        if (next[i].fd < 0) {
            struct kt_err err;
            int fd = kt_listen_open(want[i].host, want[i].port, &err);
            if (fd < 0) {
                kt_error("%s", err.msg);
                for (size_t k = 0; k < i; k++) {
                    int was_reused = 0;
                    for (size_t j = 0; j < m->nlisteners; j++)
                        if (m->listeners[j].fd == next[k].fd)
                            was_reused = 1;
                    if (!was_reused)
                        close(next[k].fd);
                }
                return -1;
            }
            char buf[300];
            kt_info("listening on %s", kt_cfg_format_listen(&want[i], buf, sizeof buf));
            next[i].fd = fd;
        }
    }
    for (size_t j = 0; j < m->nlisteners; j++)
        if (!reused[j])
            close(m->listeners[j].fd);
    memcpy(m->listeners, next, n * sizeof next[0]);
    m->nlisteners = n;
    return 0;
}

/* --- audit slots -------------------------------------------------------- */

static int add_slots(struct master *m, size_t want)
{
    while (m->nslots < want && m->nslots < MAX_SLOTS) {
        struct audit_slot *s = &m->slots[m->nslots];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->fd) != 0) {
            kt_error("audit socketpair: %s", strerror(errno));
            return -1;
        }
        /* Room for bursts while the audit process restarts. */
        int sz = 1 << 20;
        setsockopt(s->fd[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(s->fd[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        s->user = 0;
        m->nslots++;
    }
    return m->nslots >= want ? 0 : -1;
}

static int free_slot(struct master *m)
{
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].user == 0)
            return (int)i;
    return -1;
}

/* --- children ----------------------------------------------------------- */

static struct child *child_alloc(struct master *m)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid == 0)
            return &m->children[i];
    return NULL;
}

static struct child *child_find(struct master *m, pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid == pid)
            return &m->children[i];
    return NULL;
}

static int count_role(const struct master *m, enum role r, int live_only_current)
{
    int n = 0;
    for (int i = 0; i < MAX_CHILDREN; i++) {
        const struct child *c = &m->children[i];
        if (c->pid && c->role == r && (!live_only_current || (!c->retiring && c->gen == m->gen)))
            n++;
    }
    return n;
}

/* child_setup: what every child does right after fork. */
static void child_setup(const struct master *m, const char *role)
{
    sigset_t none;
    sigemptyset(&none);
    int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGPIPE };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_SETMASK, &none, NULL);
    kt_log_set_role(role);
    kt_random_reseed();
    /* "ktd: worker" in ps/top/pgrep -l (the kernel keeps 15 bytes). */
    char title[16];
    snprintf(title, sizeof title, "ktd: %s", role);
    prctl(PR_SET_NAME, title, 0, 0, 0);
    const char *user = m->cfg->server.user;
    if (user && geteuid() == 0) {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL || setgid(pw->pw_gid) != 0 || initgroups(user, pw->pw_gid) != 0 ||
            setuid(pw->pw_uid) != 0) {
            kt_error("cannot switch to user %s: %s", user, pw ? strerror(errno) : "no such user");
            _exit(2);
        }
    }
}

static pid_t spawn(struct master *m, enum role r)
{
    struct child *c = child_alloc(m);
    if (c == NULL) {
        kt_error("too many children");
        return -1;
    }
    int slot = -1;
    if (r == ROLE_WORKER && want_audit(m->cfg)) {
        slot = free_slot(m);
        if (slot < 0) {
            kt_error("no free audit slot for a new worker");
            return -1;
        }
    }
    pid_t pid = fork();
    if (pid < 0) {
        kt_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        child_setup(m, role_names[r]);
        int status = 1;
        if (r == ROLE_WORKER) {
            int fds[MAX_LISTEN];
            for (size_t i = 0; i < m->nlisteners; i++)
                fds[i] = m->listeners[i].fd;
            struct kt_worker_ctx w = {
                .cfg = m->cfg, .listen_fds = fds, .nlisten = m->nlisteners,
                .audit_fd = slot >= 0 ? m->slots[slot].fd[1] : -1,
                .generation = m->gen, .slot = slot,
            };
            for (size_t i = 0; i < m->nslots; i++) {
                close(m->slots[i].fd[0]);
                if ((int)i != slot)
                    close(m->slots[i].fd[1]);
            }
            status = kt_worker_run(&w);
        } else if (r == ROLE_AUDIT) {
            int fds[MAX_SLOTS];
            for (size_t i = 0; i < m->nslots; i++) {
                fds[i] = m->slots[i].fd[0];
                close(m->slots[i].fd[1]);
            }
            for (size_t i = 0; i < m->nlisteners; i++)
                close(m->listeners[i].fd);
            status = kt_proc_audit_main(m->cfg, fds, m->nslots);
        } else {
            for (size_t i = 0; i < m->nslots; i++) {
                close(m->slots[i].fd[0]);
                close(m->slots[i].fd[1]);
            }
            for (size_t i = 0; i < m->nlisteners; i++)
                close(m->listeners[i].fd);
            status = kt_proc_prober_main(m->cfg);
        }
        _exit(status);
    }
    c->pid = pid;
    c->role = r;
    c->gen = m->gen;
    c->slot = slot;
    c->retiring = 0;
    c->started_ms = kt_now_ms();
    if (slot >= 0)
        m->slots[slot].user = pid;
    kt_info("started %s pid %d (generation %d)", role_names[r], (int)pid, m->gen);
    return pid;
}

static void signal_role(struct master *m, enum role r, int sig, int only_gen)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (c->pid && c->role == r && (only_gen < 0 || c->gen == only_gen)) {
            kill(c->pid, sig);
            if (sig == SIGTERM || sig == SIGQUIT)
                c->retiring = 1;
        }
    }
}

static void schedule_restart(struct restart *rs, uint64_t lived_ms)
{
    /* Back off only while a child keeps dying young (a crash loop). */
    if (lived_ms < 1000)
        rs->quick_crashes++;
    else
        rs->quick_crashes = 0;
    uint64_t delay = 0;
    if (rs->quick_crashes > 1) {
        delay = 100u << (rs->quick_crashes < 7 ? rs->quick_crashes - 2 : 5);
        if (delay > 5000)
            delay = 5000;
    }
    rs->pending = 1;
    rs->at_ms = kt_now_ms() + delay;
}

static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = child_find(m, pid);
        if (c == NULL)
            continue;
        uint64_t lived = kt_now_ms() - c->started_ms;
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (WIFSIGNALED(status))
            kt_log(c->retiring || m->stopping ? KT_LOG_INFO : KT_LOG_WARN,
                   "%s pid %d killed by signal %d", role_names[c->role], (int)pid, WTERMSIG(status));
        else
            kt_log(clean || c->retiring ? KT_LOG_INFO : KT_LOG_WARN, "%s pid %d exited with status %d",
                   role_names[c->role], (int)pid, WEXITSTATUS(status));
        if (c->slot >= 0 && m->slots[c->slot].user == pid)
            m->slots[c->slot].user = 0;
        enum role r = c->role;
        int retiring = c->retiring, gen = c->gen;
        memset(c, 0, sizeof *c);
        kt_proc_state_reader_check(m->cfg);
        if (m->stopping)
            continue;
        if (r == ROLE_WORKER && !retiring && gen == m->gen) {
            m->worker_restarts_wanted++;
            schedule_restart(&m->worker_restart, lived);
        } else if (r == ROLE_AUDIT && want_audit(m->cfg)) {
            /* A deliberate restart (reload) comes back at once. */
            if (m->audit_restart_requested) {
                m->audit_restart_requested = 0;
                m->audit_restart.pending = 1;
                m->audit_restart.at_ms = kt_now_ms();
            } else {
                schedule_restart(&m->audit_restart, lived);
            }
        } else if (r == ROLE_PROBER && want_prober(m->cfg)) {
            schedule_restart(&m->prober_restart, lived);
        }
    }
}

static void run_restarts(struct master *m)
{
    uint64_t now = kt_now_ms();
    if (m->audit_restart.pending && now >= m->audit_restart.at_ms && count_role(m, ROLE_AUDIT, 0) == 0) {
        m->audit_restart.pending = 0;
        spawn(m, ROLE_AUDIT);
    }
    if (m->prober_restart.pending && now >= m->prober_restart.at_ms && count_role(m, ROLE_PROBER, 0) == 0) {
        m->prober_restart.pending = 0;
        spawn(m, ROLE_PROBER);
    }
    if (m->worker_restart.pending && now >= m->worker_restart.at_ms) {
        m->worker_restart.pending = 0;
        while (m->worker_restarts_wanted > 0 && count_role(m, ROLE_WORKER, 1) < m->nworkers) {
            if (spawn(m, ROLE_WORKER) < 0) {
                schedule_restart(&m->worker_restart, 0);
                break;
            }
            m->worker_restarts_wanted--;
        }
        m->worker_restarts_wanted = 0;
    }
}

static int spawn_generation(struct master *m)
{
    for (int i = 0; i < m->nworkers; i++)
        if (spawn(m, ROLE_WORKER) < 0)
            return -1;
    return 0;
}

static void reload(struct master *m)
{
    kt_info("reloading configuration");
    struct kt_config *next = NULL;
    if (kt_master_load(m->opts, &next) != 0) {
        kt_error("reload refused: the new configuration has errors; still serving the old one");
        return;
    }
    if (bind_listeners(m, next) != 0) {
        kt_error("reload refused: cannot bind the new listeners; still serving the old one");
        kt_cfg_free(next);
        return;
    }
    if (kt_proc_state_prepare(next) != 0) {
        kt_error("reload refused: state_dir unusable; still serving the old one");
        kt_cfg_free(next);
        return;
    }
    int old_gen = m->gen;
    int had_audit = want_audit(m->cfg);
    struct kt_config *old = m->cfg;
    m->cfg = next;
    m->gen++;
    m->nworkers = effective_workers(m, next);
    kt_log_setup(next->server.log_level, next->server.log_json, next->server.log_file, "master");

    /* The new generation needs free slots while the old one drains; the
     * audit process reads every slot, so new slots mean a new audit process. */
    size_t live = (size_t)count_role(m, ROLE_WORKER, 0);
    int audit_changed = had_audit != want_audit(next) ||
        (had_audit && (strcmp(old->policies.audit.path, next->policies.audit.path) != 0 ||
                       old->policies.audit.immutable != next->policies.audit.immutable ||
                       old->policies.audit.retention_days != next->policies.audit.retention_days ||
                       old->policies.audit.max_file_bytes != next->policies.audit.max_file_bytes));
    if (want_audit(next) && m->nslots < live + (size_t)m->nworkers + 2) {
        add_slots(m, live + (size_t)m->nworkers * 2 + 2);
        audit_changed = 1;
    }
    if (want_audit(next) && count_role(m, ROLE_AUDIT, 0) == 0) {
        spawn(m, ROLE_AUDIT);
    } else if (audit_changed && count_role(m, ROLE_AUDIT, 0) > 0) {
        m->audit_restart_requested = want_audit(next);
        signal_role(m, ROLE_AUDIT, SIGTERM, -1);
    }
    if (count_role(m, ROLE_PROBER, 0) > 0)
        signal_role(m, ROLE_PROBER, SIGTERM, -1);
    if (want_prober(next))
        schedule_restart(&m->prober_restart, 5000);

    m->worker_restarts_wanted = 0;
    m->worker_restart.pending = 0;
    spawn_generation(m);
    /* Old workers stop accepting, finish in-flight requests and exit. */
    for (int g = 0; g <= old_gen; g++)
        signal_role(m, ROLE_WORKER, SIGTERM, g);
    kt_cfg_free(old);
    kt_info("configuration reloaded (generation %d)", m->gen);
}

static void begin_stop(struct master *m, int fast)
{
    if (m->stopping == 2 || (m->stopping == 1 && !fast))
        return;
    m->stopping = fast ? 2 : 1;
    kt_info("%s shutdown", fast ? "fast" : "graceful");
    int timeout = m->cfg->server.shutdown_timeout_seconds;
    m->stop_deadline_ms = kt_now_ms() + (uint64_t)(timeout > 0 ? timeout : 1) * 1000u + 1000u;
    signal_role(m, ROLE_WORKER, fast ? SIGQUIT : SIGTERM, -1);
    signal_role(m, ROLE_PROBER, SIGTERM, -1);
}

/* stop_progress: once workers are gone, let the audit process drain and
 * flush; returns 1 when everything has exited. */
static int stop_progress(struct master *m)
{
    int workers = count_role(m, ROLE_WORKER, 0);
    if (workers > 0 && kt_now_ms() > m->stop_deadline_ms) {
        kt_warn("shutdown timeout: killing %d worker(s)", workers);
        signal_role(m, ROLE_WORKER, SIGKILL, -1);
    }
    if (workers == 0) {
        for (int i = 0; i < MAX_CHILDREN; i++) {
            struct child *c = &m->children[i];
            if (c->pid && c->role == ROLE_AUDIT && !c->retiring) {
                kill(c->pid, SIGTERM);
                c->retiring = 1;
            }
        }
    }
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid)
            return 0;
    return 1;
}

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        kt_error("pid file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return 0;
}

static void daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        kt_error("fork: %s", strerror(errno));
        exit(1);
    }
    if (pid > 0)
        _exit(0);
    setsid();
    if (chdir("/") != 0)
        kt_warn("chdir /: %s", strerror(errno));
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 2)
            close(fd);
    }
}

int kt_master_run(const struct kt_master_opts *o)
{
    static struct master m;   /* large; lives for the process */
    memset(&m, 0, sizeof m);
    m.opts = o;
    kt_log_set_role("master");
    if (kt_master_load(o, &m.cfg) != 0)
        return 1;
    const struct kt_server *s = &m.cfg->server;
    if (kt_log_setup(s->log_level, s->log_json, s->log_file, "master") != 0) {
        fprintf(stderr, "ktd: cannot open log file %s: %s\n", s->log_file, strerror(errno));
        return 1;
    }
    if (kt_proc_state_prepare(m.cfg) != 0)
        return 1;
    if (bind_listeners(&m, m.cfg) != 0)
        return 1;
    m.nworkers = effective_workers(&m, m.cfg);
    if (add_slots(&m, (size_t)m.nworkers * 2 + 2) != 0)
        return 1;
    if (!o->foreground)
        daemonize();
    if (o->pidfile && write_pidfile(o->pidfile) != 0)
        return 1;

    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    kt_info("ktd %s starting: pack %s %s, %d worker(s), %zu target(s)", PACKAGE_VERSION,
            m.cfg->pack.name, m.cfg->pack.version, m.nworkers, m.cfg->providers.ntargets);
    if (want_audit(m.cfg))
        spawn(&m, ROLE_AUDIT);
    if (want_prober(m.cfg))
        spawn(&m, ROLE_PROBER);
    if (spawn_generation(&m) != 0) {
        begin_stop(&m, 1);
    }

    for (;;) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        switch (sig) {
        case SIGCHLD: reap(&m); break;
        case SIGHUP: if (!m.stopping) reload(&m); break;
        case SIGTERM: case SIGINT: begin_stop(&m, 0); break;
        case SIGQUIT: begin_stop(&m, 1); break;
        case SIGUSR1:
            kt_log_reopen();
            for (int i = 0; i < MAX_CHILDREN; i++)
                if (m.children[i].pid)
                    kill(m.children[i].pid, SIGUSR1);
            break;
        default: break;
        }
        reap(&m);   /* SIGCHLDs coalesce; reaping every turn is cheap */
        if (m.stopping) {
            if (stop_progress(&m))
                break;
        } else {
            run_restarts(&m);
        }
    }
    kt_info("stopped");
    if (o->pidfile)
        unlink(o->pidfile);
    for (size_t i = 0; i < m.nlisteners; i++)
        close(m.listeners[i].fd);
    kt_cfg_free(m.cfg);
    return 0;
}
