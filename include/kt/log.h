/* log.h: the process-wide logger. One line per event, text or JSON, to
 * stderr or a file (reopened on SIGUSR1). Never given secrets: callers log
 * target ids and key ids, never key values. */
#ifndef KT_LOG_H
#define KT_LOG_H

enum kt_log_level { KT_LOG_DEBUG, KT_LOG_INFO, KT_LOG_WARN, KT_LOG_ERROR };

/* kt_log_setup: level, json (1) or text (0), path (NULL or "stderr" for
 * stderr) and the process role shown on each line ("master", "worker"...). */
int kt_log_setup(enum kt_log_level level, int json, const char *path, const char *role);
void kt_log_set_role(const char *role);
int kt_log_reopen(void);
int kt_log_level_parse(const char *s, enum kt_log_level *out);
int kt_log_enabled(enum kt_log_level level);
void kt_log(enum kt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define kt_debug(...) do { if (kt_log_enabled(KT_LOG_DEBUG)) kt_log(KT_LOG_DEBUG, __VA_ARGS__); } while (0)
#define kt_info(...)  kt_log(KT_LOG_INFO, __VA_ARGS__)
#define kt_warn(...)  kt_log(KT_LOG_WARN, __VA_ARGS__)
#define kt_error(...) kt_log(KT_LOG_ERROR, __VA_ARGS__)

#endif
