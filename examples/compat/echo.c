/*
 * echo.c: the echo contract (tests/README.md) written against libfcgi's fcgiapp.h, so that
 * fcgi-core's protocol suites run against fcgi-compat (FCGI_TEST_APP). The same source builds
 * against Debian's libfcgi-dev.
 *
 *   echo [--bind ADDR] [--workers N] [--max-requests N] [--multiplex N] [--max-body-bytes N]
 *        [--max-connections N] [--read-timeout SECS] [--write-timeout SECS] [--idle-timeout SECS]
 *        [--processes N] [--cgi]
 *
 * The libfcgi way: FCGX_OpenSocket for --bind (else fd 0, as a web server hands it over), the
 * main thread accepts into a fresh FCGX_Request and serves each on a thread of its own, and
 * --processes N forks N children that share the socket, under a parent that restarts them and
 * passes SIGTERM on. Options libfcgi has no API for become fcgi-compat's FCGI_COMPAT_*
 * environment variables (libfcgi ignores them).
 *
 * Routes (the first path segment of PATH_INFO, else of REQUEST_URI, that names one): /hello,
 * /env, /echo, /big?n=BYTES, /status/NNN, /cookies, /stderr?msg=TEXT, /stats, /slow?ms=N,
 * /pid; anything else is 404.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fcgiapp.h"

static int listen_sock; /* 0: the socket a web server hands over on fd 0 */

/* Requests being served on their own threads; main waits until none is left. */
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;
static unsigned busy;
static unsigned long long served; /* for /stats where the library has no counters */

#define BLOCK_LEN (251 * 1044)
static char block[BLOCK_LEN];

static const char *const ROUTES[] = {"hello", "env", "echo", "big", "status", "cookies", "stderr", "stats", "slow", "pid"};
#define ROUTE_COUNT (sizeof ROUTES / sizeof ROUTES[0])

/* Parses all of s as an unsigned decimal (an optional '+', then digits); -1 if it is not one. */
static int parse_unsigned(const char *s, size_t len, uint64_t max, uint64_t *out) {
    if (len && *s == '+') {
        s++;
        len--;
    }
    if (len == 0) {
        return -1;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (value > (max - digit) / 10) {
            return -1;
        }
        value = value * 10 + digit;
    }
    *out = value;
    return 0;
}

/* The value of query parameter name (the first name=... pair) in QUERY_STRING. */
static int query_value(FCGX_ParamArray envp, const char *name, const char **value, size_t *len) {
    const char *query = FCGX_GetParam("QUERY_STRING", envp);
    if (query == NULL) {
        return -1;
    }
    size_t name_len = strlen(name);
    for (const char *pair = query; *pair;) {
        size_t pair_len = strcspn(pair, "&");
        const char *eq = memchr(pair, '=', pair_len);
        if (eq && (size_t)(eq - pair) == name_len && memcmp(pair, name, name_len) == 0) {
            *value = eq + 1;
            *len = pair_len - name_len - 1;
            return 0;
        }
        pair += pair_len;
        if (*pair == '&') {
            pair++;
        }
    }
    return -1;
}

static uint64_t query_number(FCGX_ParamArray envp, const char *name, uint64_t fallback) {
    const char *value;
    size_t len;
    uint64_t n;
    if (query_value(envp, name, &value, &len) == 0 && parse_unsigned(value, len, UINT64_MAX, &n) == 0) {
        return n;
    }
    return fallback;
}

/* The route named in the path, as an index into ROUTES or -1; in rest what follows it. */
static int route(FCGX_ParamArray envp, char *rest, size_t rest_cap) {
    const char *path = FCGX_GetParam("PATH_INFO", envp);
    size_t len = path ? strlen(path) : 0;
    rest[0] = '\0';
    if (len == 0) {
        path = FCGX_GetParam("REQUEST_URI", envp);
        if (path == NULL) {
            path = "/";
        }
        len = strcspn(path, "?");
    }
    const char *end = path + len;
    for (const char *segment = path; segment < end;) {
        const char *slash = memchr(segment, '/', (size_t)(end - segment));
        const char *segment_end = slash ? slash : end;
        size_t segment_len = (size_t)(segment_end - segment);
        for (size_t i = 0; segment_len && i < ROUTE_COUNT; i++) {
            if (strlen(ROUTES[i]) == segment_len && memcmp(ROUTES[i], segment, segment_len) == 0) {
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

/* libfcgi's own FCGX_FPrintF knows no %zu (nor %lld): %lu with a cast works with both. */
static void respond(FCGX_Request *request, const char *status, const char *type, const char *body, size_t len) {
    FCGX_FPrintF(request->out, "Status: %s\r\nContent-Type: %s\r\nContent-Length: %lu\r\n\r\n", status, type,
                 (unsigned long)len);
    FCGX_PutStr(body, (int)len, request->out);
}

static void sleep_ms(uint64_t ms) {
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    /* A signal (SIGTERM asking for a graceful stop) must not cut the sleep short. */
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

static void handle(FCGX_Request *request) {
    char rest[64];
    char text[160];
    int len;
    FCGX_ParamArray envp = request->envp;
    switch (route(envp, rest, sizeof rest)) {
    case 0: /* hello */
        respond(request, "200 OK", "text/plain", "Hello, world!", 13);
        break;
    case 1: { /* env: the params, in the order received */
        size_t total = 0;
        for (char **p = envp; *p; p++) {
            total += strlen(*p) + 1;
        }
        FCGX_FPrintF(request->out, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %lu\r\n\r\n",
                     (unsigned long)total);
        for (char **p = envp; *p; p++) {
            FCGX_PutS(*p, request->out);
            FCGX_PutChar('\n', request->out);
        }
        break;
    }
    case 2: { /* echo: read the whole body before answering, as nginx sends all of it first */
        /* ?prefix=N: N bytes of 'p' go out before the body is read, then the body (no length). */
        uint64_t prefix = query_number(envp, "prefix", UINT64_MAX);
        if (prefix != UINT64_MAX) {
            FCGX_PutS("Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", request->out);
            for (uint64_t i = 0; i < prefix; i++) {
                FCGX_PutChar('p', request->out);
            }
        }
        size_t cap = 65536, used = 0;
        char *body = malloc(cap);
        while (body) {
            if (cap - used < 65536) {
                char *bigger = realloc(body, cap * 2);
                if (bigger == NULL) {
                    break;
                }
                body = bigger;
                cap *= 2;
            }
            int want = (int)(cap - used);
            int n = FCGX_GetStr(body + used, want, request->in);
            used += (size_t)n;
            if (n < want) {
                break; /* FCGX_GetStr is short only at the end of the body, or on an error */
            }
        }
        /* Aborted, or the web server left: nothing to answer (the library logs the rest). */
        if (body && FCGX_GetError(request->in) == 0) {
            if (prefix != UINT64_MAX) {
                FCGX_PutStr(body, (int)used, request->out);
            } else {
                respond(request, "200 OK", "application/octet-stream", body, used);
            }
        }
        free(body);
        break;
    }
    case 3: { /* big */
        uint64_t n = query_number(envp, "n", 0);
        FCGX_FPrintF(request->out,
                     "Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %lu\r\n\r\n",
                     (unsigned long)n);
        /* Each block starts at a multiple of 251, so it continues the pattern. */
        for (uint64_t sent = 0; sent < n;) {
            int chunk = n - sent < BLOCK_LEN ? (int)(n - sent) : BLOCK_LEN;
            if (FCGX_PutStr(block, chunk, request->out) < 0) {
                break;
            }
            sent += (uint64_t)chunk;
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
    case 5: /* cookies */
        FCGX_PutS("Status: 200 OK\r\nContent-Type: text/plain\r\n"
                  "Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n\r\ncookies\n",
                  request->out);
        break;
    case 6: { /* stderr */
        const char *message = "";
        size_t message_len = 0;
        query_value(envp, "msg", &message, &message_len);
        FCGX_PutS("echo-stderr: ", request->err);
        FCGX_PutStr(message, (int)message_len, request->err);
        FCGX_PutChar('\n', request->err);
        respond(request, "200 OK", "text/plain", "ok\n", 3);
        break;
    }
    case 7: { /* stats */
        unsigned long long connections = 0, requests = 0;
#ifdef FCGX_COMPAT
        FCGX_CompatStats(&connections, &requests);
#else
        pthread_mutex_lock(&busy_lock);
        requests = served;
        pthread_mutex_unlock(&busy_lock);
#endif
        len = snprintf(text, sizeof text, "connections=%llu requests=%llu\n", connections, requests);
        respond(request, "200 OK", "text/plain", text, (size_t)len);
        break;
    }
    case 8: { /* slow */
        uint64_t ms = query_number(envp, "ms", 100);
        sleep_ms(ms);
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
}

static void *serve_one(void *arg) {
    FCGX_Request *request = arg;
    handle(request);
    pthread_mutex_lock(&busy_lock);
    served++;
    pthread_mutex_unlock(&busy_lock);
    FCGX_Finish_r(request);
    FCGX_Free(request, 1);
    free(request);
    pthread_mutex_lock(&busy_lock);
    if (--busy == 0) {
        pthread_cond_broadcast(&all_done);
    }
    pthread_mutex_unlock(&busy_lock);
    return NULL;
}

/* Accepts until the server stops, each request on a thread of its own. */
static int serve(void) {
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (;;) {
        FCGX_Request *request = malloc(sizeof *request);
        if (request == NULL || FCGX_InitRequest(request, listen_sock, 0) != 0) {
            free(request);
            break;
        }
        if (FCGX_Accept_r(request) < 0) {
            FCGX_Free(request, 1);
            free(request);
            break;
        }
        pthread_mutex_lock(&busy_lock);
        busy++;
        pthread_mutex_unlock(&busy_lock);
        pthread_t thread;
        if (pthread_create(&thread, &detached, serve_one, request) != 0) {
            serve_one(request);
        }
    }
    pthread_attr_destroy(&detached);
    pthread_mutex_lock(&busy_lock);
    while (busy > 0) {
        pthread_cond_wait(&all_done, &busy_lock);
    }
    pthread_mutex_unlock(&busy_lock);
    return 0;
}

/* --processes N: a parent that keeps N children serving the shared socket. */
static volatile sig_atomic_t stopping;

static void on_stop(int signal) {
    (void)signal;
    stopping = 1;
}

static const int STOP_SIGNALS[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};

static pid_t spawn_child(void) {
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0]; i++) {
            signal(STOP_SIGNALS[i], SIG_DFL);
        }
        exit(serve());
    }
    return pid;
}

static int supervise(int processes) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop; /* no SA_RESTART: waitpid returns on a stop signal */
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0]; i++) {
        sigaction(STOP_SIGNALS[i], &action, NULL);
    }
    pid_t *children = calloc((size_t)processes, sizeof *children);
    time_t *started = calloc((size_t)processes, sizeof *started);
    if (children == NULL || started == NULL) {
        return 1;
    }
    while (!stopping) {
        for (int i = 0; i < processes && !stopping; i++) {
            if (children[i] <= 0) {
                /* A child that died at once is restarted only after a second. */
                if (started[i] && time(NULL) - started[i] < 1) {
                    sleep_ms(1000);
                }
                children[i] = spawn_child();
                started[i] = time(NULL);
            }
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        for (int i = 0; pid > 0 && i < processes; i++) {
            if (children[i] == pid) {
                children[i] = 0;
            }
        }
    }
    for (int i = 0; i < processes; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGTERM);
        }
    }
    for (int i = 0; i < processes; i++) {
        while (children[i] > 0 && waitpid(children[i], NULL, 0) < 0 && errno == EINTR) {
        }
    }
    free(children);
    free(started);
    return 0;
}

static int usage(const char *message) {
    fprintf(stderr,
            "echo: %s\nusage: echo [--bind ADDR] [--workers N] [--max-requests N] [--multiplex N]\n"
            "            [--max-body-bytes N] [--max-connections N] [--read-timeout SECS] [--write-timeout SECS]\n"
            "            [--idle-timeout SECS] [--processes N] [--cgi]\n",
            message);
    return 2;
}

/* Options that only fcgi-compat knows, passed on as its environment variables. */
static const struct {
    const char *option;
    const char *variable;
    enum { COUNT, SECONDS, TEXT } kind;
} KNOBS[] = {
    {"--workers", "FCGI_COMPAT_WORKERS", COUNT},
    {"--max-requests", "FCGI_COMPAT_MAX_REQUESTS", COUNT},
    {"--max-requests-jitter", "FCGI_COMPAT_MAX_REQUESTS_JITTER", COUNT},
    {"--max-rss", "FCGI_COMPAT_MAX_RSS", COUNT},
    {"--multiplex", "FCGI_COMPAT_MULTIPLEX", COUNT},
    {"--max-body-bytes", "FCGI_COMPAT_MAX_BODY_BYTES", COUNT},
    {"--max-connections", "FCGI_COMPAT_MAX_CONNS", COUNT},
    {"--read-timeout", "FCGI_COMPAT_READ_TIMEOUT", SECONDS},
    {"--idle-timeout", "FCGI_COMPAT_IDLE_TIMEOUT", SECONDS},
    {"--write-timeout", "FCGI_COMPAT_WRITE_TIMEOUT", SECONDS},
    {"--head-timeout", "FCGI_COMPAT_HEAD_TIMEOUT", SECONDS},
    {"--graceful-timeout", "FCGI_COMPAT_GRACEFUL_TIMEOUT", SECONDS},
    {"--slow-request-timeout", "FCGI_COMPAT_SLOW_REQUEST_TIMEOUT", SECONDS},
    {"--log-level", "FCGI_COMPAT_LOG_LEVEL", TEXT},
    {"--access-logfile", "FCGI_COMPAT_ACCESS_LOGFILE", TEXT},
    {"--access-logformat", "FCGI_COMPAT_ACCESS_LOGFORMAT", TEXT},
    {"--timeout", "FCGI_COMPAT_TIMEOUT", SECONDS},
    {"--timeout-grace", "FCGI_COMPAT_TIMEOUT_GRACE", SECONDS},
    {"--status-path", "FCGI_COMPAT_STATUS_PATH", TEXT},
    {"--ping-path", "FCGI_COMPAT_PING_PATH", TEXT},
    {"--status-allow", "FCGI_COMPAT_STATUS_ALLOW", TEXT},
};

int main(int argc, char **argv) {
    const char *bind = NULL;
    uint64_t processes = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--cgi") == 0) {
            setenv("FCGI_FORCE_CGI", "1", 1);
            continue;
        }
        if (i + 1 >= argc) {
            return usage(strncmp(arg, "--", 2) == 0 ? "an option needs a value" : "unknown argument");
        }
        const char *value = argv[++i];
        uint64_t n;
        int numeric = parse_unsigned(value, strlen(value), UINT64_MAX, &n) == 0;
        int known = 0;
        for (size_t k = 0; k < sizeof KNOBS / sizeof KNOBS[0]; k++) {
            if (strcmp(arg, KNOBS[k].option) == 0) {
                char *end;
                double seconds = strtod(value, &end);
                int bad = KNOBS[k].kind == SECONDS ? (end == value || *end || !(seconds >= 0))
                          : KNOBS[k].kind == COUNT ? !numeric
                                                   : 0;
                if (bad) {
                    return usage("bad number");
                }
                setenv(KNOBS[k].variable, value, 1);
                known = 1;
            }
        }
        if (known) {
            continue;
        }
        if (strcmp(arg, "--bind") == 0) {
            /* libfcgi takes a path, ":PORT" or "HOST:PORT"; the suites say unix:PATH. */
            bind = strncmp(value, "unix:", 5) == 0 ? value + 5 : value;
        } else if (strcmp(arg, "--processes") == 0 && numeric && n >= 1 && n <= 64) {
            processes = n;
        } else {
            return usage("unknown argument or bad number");
        }
    }
    for (size_t i = 0; i < BLOCK_LEN; i++) {
        block[i] = (char)(i % 251);
    }
    if (FCGX_Init() != 0) {
        return 1;
    }
    if (bind != NULL) {
        listen_sock = FCGX_OpenSocket(bind, 1024);
        if (listen_sock < 0) {
            perror("echo: FCGX_OpenSocket");
            return 1;
        }
    }
    return processes > 1 ? supervise((int)processes) : serve();
}
