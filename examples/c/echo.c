/*
 * echo.c: the C twin of fcgi-core/examples/echo.rs, with the same routes, so that the
 * fcgi-core protocol suites run against it (FCGI_TEST_APP).
 *
 *   echo [--bind ADDR] [--workers N] [--max-requests N] [--multiplex N] [--max-body-bytes N]
 *        [--read-timeout SECS] [--write-timeout SECS] [--idle-timeout SECS] [--max-connections N] [--cgi]
 *        [--access-logfile PATH] [--access-logformat FMT] [--log-level LEVEL] [--log-callback TAG]
 *        [--slow-request-timeout SECS] [--status-path PATH] [--ping-path PATH] [--status-allow LIST]
 *        [--timeout SECS] [--timeout-grace SECS] [--max-requests-jitter N] [--max-rss MIB]
 *
 * Routes (the first path segment of PATH_INFO, else of REQUEST_URI, that names one):
 * /hello, /env, /echo, /big?n=BYTES, /status/NNN, /cookies, /stderr?msg=TEXT, /stats,
 * /slow?ms=N, /pid; anything else is 404.
 *
 * The main thread accepts; each request is served on a thread of its own, so the requests of
 * slow routes and multiplexed connections are served at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fcgi.h"

static fcgi_server *server;

/* Requests being served on their own threads; main waits until none is left. */
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;
static unsigned busy;

/* 251 x 1044 bytes (about 256 KiB) of the /big pattern: byte i is i % 251. */
#define BLOCK_LEN (251 * 1044)
static unsigned char block[BLOCK_LEN];

static const char *const ROUTES[] = {"hello", "env",    "echo",  "big",  "status",
                                     "cookies", "stderr", "stats", "slow", "pid"};
#define ROUTE_COUNT (sizeof ROUTES / sizeof ROUTES[0])

/* A growable byte buffer. */
struct buffer {
    char *data;
    size_t len, cap;
};

static int buffer_reserve(struct buffer *b, size_t more) {
    if (b->cap - b->len >= more) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data) {
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buffer_append(struct buffer *b, const void *bytes, size_t len) {
    if (buffer_reserve(b, len) != 0) {
        return -1;
    }
    if (len) {
        memcpy(b->data + b->len, bytes, len);
    }
    b->len += len;
    return 0;
}

/* Parses an unsigned decimal the way Rust's str::parse does: an optional '+', then digits only. */
static int parse_unsigned(const char *s, size_t len, uint64_t max, uint64_t *out) {
    if (len && *s == '+') {
        s++;
        len--;
    }
    if (!len) {
        return -1;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        unsigned digit = (unsigned)(s[i] - '0');
        if (value > (max - digit) / 10) {
            return -1;
        }
        value = value * 10 + digit;
    }
    *out = value;
    return 0;
}

/* The value of query parameter `name` (the first `name=...` pair), or -1. */
static int query_value(fcgi_request *request, const char *name, const char **value, size_t *len) {
    const char *query;
    size_t query_len;
    if (fcgi_request_param(request, "QUERY_STRING", &query, &query_len) != FCGI_OK) {
        return -1;
    }
    size_t name_len = strlen(name);
    const char *end = query + query_len;
    for (const char *pair = query; pair <= end;) {
        const char *amp = memchr(pair, '&', (size_t)(end - pair));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(pair, '=', (size_t)(pair_end - pair));
        if (eq && (size_t)(eq - pair) == name_len && memcmp(pair, name, name_len) == 0) {
            *value = eq + 1;
            *len = (size_t)(pair_end - eq - 1);
            return 0;
        }
        if (!amp) {
            break;
        }
        pair = amp + 1;
    }
    return -1;
}

static uint64_t query_number(fcgi_request *request, const char *name, uint64_t fallback) {
    const char *value;
    size_t len;
    uint64_t n;
    if (query_value(request, name, &value, &len) == 0 && parse_unsigned(value, len, UINT64_MAX, &n) == 0) {
        return n;
    }
    return fallback;
}

/*
 * The route named in the path, as an index into ROUTES or -1, and in `rest` what follows it
 * (`/status/404` gives "status" and "404"; `rest` holds at most rest_cap - 1 bytes).
 */
static int route(fcgi_request *request, char *rest, size_t rest_cap) {
    const char *path;
    size_t len;
    rest[0] = '\0';
    if (fcgi_request_param(request, "PATH_INFO", &path, &len) != FCGI_OK || len == 0) {
        if (fcgi_request_param(request, "REQUEST_URI", &path, &len) != FCGI_OK) {
            path = "/";
            len = 1;
        }
        const char *question = memchr(path, '?', len);
        if (question) {
            len = (size_t)(question - path);
        }
    }
    const char *end = path + len;
    for (const char *segment = path; segment < end;) {
        const char *slash = memchr(segment, '/', (size_t)(end - segment));
        const char *segment_end = slash ? slash : end;
        size_t segment_len = (size_t)(segment_end - segment);
        for (size_t i = 0; segment_len && i < ROUTE_COUNT; i++) {
            if (strlen(ROUTES[i]) == segment_len && memcmp(ROUTES[i], segment, segment_len) == 0) {
                /* The remaining non-empty segments, joined by '/'. */
                size_t used = 0;
                for (const char *next = segment_end; next < end;) {
                    const char *next_slash = memchr(next, '/', (size_t)(end - next));
                    const char *next_end = next_slash ? next_slash : end;
                    size_t next_len = (size_t)(next_end - next);
                    if (next_len) {
                        if (used && used + 1 < rest_cap) {
                            rest[used++] = '/';
                        }
                        size_t room = rest_cap - 1 - used;
                        size_t take = next_len < room ? next_len : room;
                        memcpy(rest + used, next, take);
                        used += take;
                    }
                    next = next_end + 1;
                }
                rest[used] = '\0';
                return (int)i;
            }
        }
        segment = segment_end + 1;
    }
    return -1;
}

static fcgi_result respond(fcgi_request *request, const char *status, const char *content_type, const void *body,
                           size_t len) {
    char head[256];
    int head_len = snprintf(head, sizeof head, "Status: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                            status, content_type, len);
    fcgi_result rc = fcgi_request_write(request, head, (size_t)head_len);
    return rc == FCGI_OK ? fcgi_request_write(request, body, len) : rc;
}

static void sleep_ms(uint64_t ms) {
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    /* A signal (SIGTERM asking for a graceful stop) must not cut the sleep short. */
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

static void handle(fcgi_request *request) {
    char rest[64];
    char text[128];
    int len;
    switch (route(request, rest, sizeof rest)) {
    case 0: /* hello */
        respond(request, "200 OK", "text/plain", "Hello, world!", 13);
        break;
    case 1: { /* env */
        struct buffer body = {0};
        size_t count = 0;
        fcgi_request_param_count(request, &count);
        for (size_t i = 0; i < count; i++) {
            const char *name, *value;
            size_t name_len, value_len;
            if (fcgi_request_param_at(request, i, &name, &name_len, &value, &value_len) != FCGI_OK ||
                buffer_append(&body, name, name_len) || buffer_append(&body, "=", 1) ||
                buffer_append(&body, value, value_len) || buffer_append(&body, "\n", 1)) {
                break;
            }
        }
        respond(request, "200 OK", "text/plain", body.data, body.len);
        free(body.data);
        break;
    }
    case 2: { /* echo: read the whole body before answering, as nginx sends all of it first */
        /* ?prefix=N: N bytes of 'p' go out before the body is read, then the body (no length). */
        uint64_t prefix = query_number(request, "prefix", UINT64_MAX);
        if (prefix != UINT64_MAX) {
            static const char head[] = "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
            char *ps = malloc(prefix ? (size_t)prefix : 1);
            if (ps == NULL) {
                break;
            }
            memset(ps, 'p', (size_t)prefix);
            fcgi_result rc = fcgi_request_write(request, head, sizeof head - 1);
            if (rc == FCGI_OK) {
                rc = fcgi_request_write(request, ps, (size_t)prefix);
            }
            free(ps);
            if (rc != FCGI_OK) {
                break;
            }
        }
        struct buffer body = {0};
        for (;;) {
            size_t n = 0;
            if (buffer_reserve(&body, 65536) != 0 ||
                fcgi_request_read(request, body.data + body.len, body.cap - body.len, &n) != FCGI_OK) {
                /* Aborted, or the web server left: nothing to answer (the library logs the rest). */
                free(body.data);
                fcgi_request_finish(request);
                return;
            }
            if (n == 0) {
                break;
            }
            body.len += n;
        }
        if (prefix != UINT64_MAX) {
            fcgi_request_write(request, body.data, body.len);
        } else {
            respond(request, "200 OK", "application/octet-stream", body.data, body.len);
        }
        free(body.data);
        break;
    }
    case 3: { /* big */
        uint64_t n = query_number(request, "n", 0);
        len = snprintf(text, sizeof text,
                       "Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %" PRIu64
                       "\r\n\r\n",
                       n);
        fcgi_result rc = fcgi_request_write(request, text, (size_t)len);
        /* Each block starts at a multiple of 251, so it continues the pattern. */
        for (uint64_t sent = 0; rc == FCGI_OK && sent < n;) {
            size_t chunk = n - sent < BLOCK_LEN ? (size_t)(n - sent) : BLOCK_LEN;
            rc = fcgi_request_write(request, block, chunk);
            sent += chunk;
        }
        break;
    }
    case 4: { /* status */
        uint64_t code;
        if (parse_unsigned(rest, strlen(rest), UINT16_MAX, &code) != 0) {
            code = 500;
        }
        char status[64];
        snprintf(status, sizeof status, "%" PRIu64 " Status %" PRIu64, code, code);
        len = snprintf(text, sizeof text, "status %" PRIu64 "\n", code);
        respond(request, status, "text/plain", text, (size_t)len);
        break;
    }
    case 5: { /* cookies */
        static const char page[] = "Status: 200 OK\r\nContent-Type: text/plain\r\n"
                                   "Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n\r\ncookies\n";
        fcgi_request_write(request, page, sizeof page - 1);
        break;
    }
    case 6: { /* stderr */
        const char *message = "";
        size_t message_len = 0;
        query_value(request, "msg", &message, &message_len);
        struct buffer line = {0};
        if (buffer_append(&line, "echo-stderr: ", 13) == 0 && buffer_append(&line, message, message_len) == 0 &&
            buffer_append(&line, "\n", 1) == 0 && fcgi_request_write_stderr(request, line.data, line.len) == FCGI_OK) {
            respond(request, "200 OK", "text/plain", "ok\n", 3);
        }
        free(line.data);
        break;
    }
    case 7: { /* stats */
        uint64_t connections = 0, requests = 0;
        fcgi_server_stats(server, &connections, &requests);
        len = snprintf(text, sizeof text, "connections=%" PRIu64 " requests=%" PRIu64 "\n", connections, requests);
        respond(request, "200 OK", "text/plain", text, (size_t)len);
        break;
    }
    case 8: { /* slow: sleep in steps, giving up as soon as the web server aborts the request */
        uint64_t ms = query_number(request, "ms", 100);
        uint64_t step = ms < 10 ? ms : 10;
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t elapsed = (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
            if (elapsed >= 0 && (uint64_t)elapsed >= ms) {
                break;
            }
            bool aborted = false;
            if (fcgi_request_is_aborted(request, &aborted) != FCGI_OK || aborted) {
                fcgi_request_finish(request);
                return;
            }
            sleep_ms(step);
        }
        len = snprintf(text, sizeof text, "slept %" PRIu64 "\n", ms);
        respond(request, "200 OK", "text/plain", text, (size_t)len);
        break;
    }
    case 9: /* pid */
        len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
        respond(request, "200 OK", "text/plain", text, (size_t)len);
        break;
    default:
        respond(request, "404 Not Found", "text/plain", "not found\n", 10);
        break;
    }
    fcgi_request_finish(request);
}

static void served_one(void) {
    pthread_mutex_lock(&busy_lock);
    if (--busy == 0) {
        pthread_cond_broadcast(&all_done);
    }
    pthread_mutex_unlock(&busy_lock);
}

static void *serve_one(void *request) {
    handle(request);
    served_one();
    return NULL;
}

static int usage(const char *message) {
    fprintf(stderr,
            "echo: %s\nusage: echo [--bind ADDR] [--workers N] [--max-requests N] [--multiplex N]\n"
            "            [--max-body-bytes N] [--read-timeout SECS] [--write-timeout SECS] [--idle-timeout SECS]\n"
            "            [--max-connections N] [--cgi] [--access-logfile PATH] [--access-logformat FMT]\n"
            "            [--log-level LEVEL] [--log-callback TAG] [--slow-request-timeout SECS]\n"
            "            [--status-path PATH] [--ping-path PATH] [--status-allow LIST]\n"
            "            [--timeout SECS] [--timeout-grace SECS] [--max-requests-jitter N] [--max-rss MIB]\n",
            message);
    return 2;
}

/* Seconds, fractions allowed ("0.3"), as milliseconds; -1 if it is not a number of seconds. */
static long long milliseconds(const char *text) {
    char *end;
    errno = 0;
    double seconds = strtod(text, &end);
    if (errno || end == text || *end || !(seconds >= 0) || seconds > 4294967.0) {
        return -1;
    }
    long long ms = (long long)(seconds * 1000.0 + 0.5);
    return ms == 0 && seconds > 0 ? 1 : ms;
}

/* The level called `name`, 0 if none is. */
static fcgi_log_level log_level(const char *name) {
    static const char *const NAMES[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, NAMES[i]) == 0) {
            return (fcgi_log_level)(FCGI_LOG_ERROR + i);
        }
    }
    return (fcgi_log_level)0;
}

/* The log callback of --log-callback TAG: `TAG LEVEL LOGGER MESSAGE` on stderr. */
static void log_to_stderr(void *user_data, fcgi_log_level level, const char *logger, const char *message) {
    fprintf(stderr, "%s %d %s %s\n", (const char *)user_data, (int)level, logger, message);
}

int main(int argc, char **argv) {
    for (size_t i = 0; i < BLOCK_LEN; i++) {
        block[i] = (unsigned char)(i % 251);
    }

    fcgi_options *options = NULL;
    fcgi_result rc = fcgi_options_new(&options);
    if (rc != FCGI_OK) {
        fprintf(stderr, "echo: %s\n", fcgi_result_str(rc));
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        uint64_t n = 0;
        if (strcmp(arg, "--cgi") == 0) {
            rc = fcgi_options_set_force_cgi(options, true);
            continue;
        }
        if (i + 1 >= argc) {
            fcgi_options_free(options);
            return usage(arg[0] == '-' && arg[1] == '-' ? "an option needs a value" : "unknown argument");
        }
        const char *value = argv[++i];
        int numeric = parse_unsigned(value, strlen(value), UINT64_MAX, &n) == 0;
        if (strcmp(arg, "--bind") == 0) {
            rc = fcgi_options_set_bind(options, value);
        } else if (strcmp(arg, "--workers") == 0 && numeric) {
            rc = fcgi_options_set_workers(options, (size_t)n);
        } else if (strcmp(arg, "--max-requests-jitter") == 0 && numeric) {
            rc = fcgi_options_set_max_requests_jitter(options, n);
        } else if (strcmp(arg, "--max-rss") == 0 && numeric) {
            rc = fcgi_options_set_max_rss(options, n);
        } else if (strcmp(arg, "--max-requests") == 0 && numeric) {
            rc = fcgi_options_set_max_requests(options, n);
        } else if (strcmp(arg, "--multiplex") == 0 && numeric && n <= UINT16_MAX) {
            rc = fcgi_options_set_multiplex(options, (uint16_t)n);
        } else if (strcmp(arg, "--max-body-bytes") == 0 && numeric) {
            rc = fcgi_options_set_max_body_bytes(options, n);
        } else if (strcmp(arg, "--read-timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_read_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--write-timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_write_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--idle-timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_idle_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--head-timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_head_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--graceful-timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_graceful_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--max-connections") == 0 && numeric) {
            rc = fcgi_options_set_max_conns(options, (size_t)n);
        } else if (strcmp(arg, "--slow-request-timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_slow_request_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--access-logfile") == 0) {
            rc = fcgi_options_set_access_logfile(options, value);
        } else if (strcmp(arg, "--access-logformat") == 0) {
            rc = fcgi_options_set_access_logformat(options, value);
        } else if (strcmp(arg, "--timeout") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_timeout(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--timeout-grace") == 0 && milliseconds(value) >= 0) {
            rc = fcgi_options_set_timeout_grace(options, (uint32_t)milliseconds(value));
        } else if (strcmp(arg, "--status-path") == 0) {
            rc = fcgi_options_set_status_path(options, value);
        } else if (strcmp(arg, "--ping-path") == 0) {
            rc = fcgi_options_set_ping_path(options, value);
        } else if (strcmp(arg, "--status-allow") == 0) {
            rc = fcgi_options_set_status_allow(options, value);
        } else if (strcmp(arg, "--log-level") == 0 && log_level(value) != 0) {
            rc = fcgi_options_set_log_level(options, log_level(value));
        } else if (strcmp(arg, "--log-callback") == 0) {
            /* Every record, access ones too, through the callback below, tagged with VALUE. */
            rc = fcgi_log_set_callback(log_to_stderr, (void *)value, true);
        } else {
            fcgi_options_free(options);
            return usage("unknown argument or bad number");
        }
        if (rc != FCGI_OK) {
            fprintf(stderr, "echo: %s %s: %s\n", arg, value, fcgi_result_str(rc));
            fcgi_options_free(options);
            return 2;
        }
    }
    rc = fcgi_server_open(options, &server);
    fcgi_options_free(options);
    if (rc != FCGI_OK) {
        fprintf(stderr, "echo: %s\n", fcgi_result_str(rc));
        return 1;
    }

    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    fcgi_request *request;
    while ((rc = fcgi_server_accept(server, &request)) == FCGI_OK) {
        pthread_mutex_lock(&busy_lock);
        busy++;
        pthread_mutex_unlock(&busy_lock);
        pthread_t thread;
        if (pthread_create(&thread, &detached, serve_one, request) != 0) {
            serve_one(request);
        }
    }
    pthread_attr_destroy(&detached);
    if (rc != FCGI_ERR_STOPPED) {
        fprintf(stderr, "echo: %s\n", fcgi_result_str(rc));
    }

    pthread_mutex_lock(&busy_lock);
    while (busy > 0) {
        pthread_cond_wait(&all_done, &busy_lock);
    }
    pthread_mutex_unlock(&busy_lock);

    int code = 0;
    fcgi_server_exit_code(server, &code);
    fcgi_server_close(server);
    return code;
}
