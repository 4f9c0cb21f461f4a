/*
 * libfcgi_app.c: the libfcgi peer (Debian's libfcgi-dev), started by spawn-fcgi, which hands it
 * the listening socket on fd 0. THREADS threads each run an FCGX_Accept_r loop, as libfcgi's
 * own threaded example does. A thread serves one connection at a time: with fastcgi_keep_conn,
 * it stays with its kept connection until nginx closes it.
 *
 *   spawn-fcgi -n -s SOCKET -- libfcgi_app [THREADS]
 *
 * Routes as the other benchmark apps (the first path segment that names one): /hello, /echo
 * (the body, read whole, sent back), /big?n=BYTES (streamed in 256 KiB blocks), /sink (reads the
 * body in 64 KiB chunks, answers the byte count).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#define BLOCK_LEN (251 * 1044)
#define CHUNK (64 * 1024)
#define MAX_THREADS 256

static unsigned char block[BLOCK_LEN];

static const char *route(FCGX_ParamArray envp) {
    static const char *const routes[] = {"hello", "echo", "big", "sink"};
    const char *path = FCGX_GetParam("PATH_INFO", envp);
    if (!path || !*path) {
        path = FCGX_GetParam("REQUEST_URI", envp);
    }
    if (!path) {
        return "";
    }
    size_t len = strcspn(path, "?");
    for (const char *segment = path; segment < path + len;) {
        size_t segment_len = strcspn(segment, "/?");
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
            if (segment_len && strlen(routes[i]) == segment_len && memcmp(routes[i], segment, segment_len) == 0) {
                return routes[i];
            }
        }
        segment += segment_len + 1;
    }
    return "";
}

static uint64_t query_number(FCGX_ParamArray envp, const char *name) {
    const char *query = FCGX_GetParam("QUERY_STRING", envp);
    size_t name_len = strlen(name);
    for (const char *pair = query; pair && *pair;) {
        if (strncmp(pair, name, name_len) == 0 && pair[name_len] == '=') {
            return strtoull(pair + name_len + 1, NULL, 10);
        }
        pair = strchr(pair, '&');
        pair = pair ? pair + 1 : NULL;
    }
    return 0;
}

/* FCGX_FPrintF has its own printf that knows no %zu: heads are formatted by snprintf. */
static void put_head(FCGX_Request *request, const char *content_type, uint64_t len) {
    char head[160];
    int head_len = snprintf(head, sizeof head,
                            "Status: 200 OK\r\nContent-Type: %s\r\nContent-Length: %" PRIu64 "\r\n\r\n",
                            content_type, len);
    FCGX_PutStr(head, head_len, request->out);
}

static void respond(FCGX_Request *request, const char *body, size_t len) {
    put_head(request, "text/plain", len);
    FCGX_PutStr(body, (int)len, request->out);
}

static void handle(FCGX_Request *request, char *chunk) {
    const char *name = route(request->envp);
    if (strcmp(name, "hello") == 0) {
        respond(request, "Hello, world!", 13);
    } else if (strcmp(name, "echo") == 0) {
        size_t len = 0, cap = 1 << 20;
        char *body = malloc(cap);
        int n;
        while (body && (n = FCGX_GetStr(body + len, (int)(cap - len), request->in)) > 0) {
            len += (size_t)n;
            if (len == cap) {
                char *grown = realloc(body, cap * 2);
                if (!grown) {
                    free(body);
                    body = NULL;
                    break;
                }
                body = grown;
                cap *= 2;
            }
        }
        if (body) {
            respond(request, body, len);
        }
        free(body);
    } else if (strcmp(name, "big") == 0) {
        uint64_t n = query_number(request->envp, "n");
        put_head(request, "application/octet-stream", n);
        for (uint64_t sent = 0; sent < n;) {
            int len = n - sent < BLOCK_LEN ? (int)(n - sent) : BLOCK_LEN;
            if (FCGX_PutStr((const char *)block, len, request->out) != len) {
                break;
            }
            sent += (uint64_t)len;
        }
    } else if (strcmp(name, "sink") == 0) {
        uint64_t seen = 0;
        int n;
        while ((n = FCGX_GetStr(chunk, CHUNK, request->in)) > 0) {
            seen += (uint64_t)n;
        }
        char text[32];
        int len = snprintf(text, sizeof text, "%" PRIu64 "\n", seen);
        respond(request, text, (size_t)len);
    } else {
        FCGX_PutS("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot found\n", request->out);
    }
}

static void *serve(void *unused) {
    (void)unused;
    FCGX_Request request;
    char *chunk = malloc(CHUNK);
    if (!chunk || FCGX_InitRequest(&request, 0, 0) != 0) {
        fprintf(stderr, "libfcgi_app: cannot set up a request\n");
        exit(1);
    }
    /*
     * No accept mutex, unlike libfcgi's examples/threaded.c: Linux needs none, and with
     * fastcgi_keep_conn a thread waiting in FCGX_Accept_r for the next request on its kept
     * connection would hold the mutex and so stop every other thread from accepting.
     */
    while (FCGX_Accept_r(&request) >= 0) {
        handle(&request, chunk);
        FCGX_Finish_r(&request);
    }
    free(chunk);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: libfcgi_app [THREADS]  (1 to %d)\n", MAX_THREADS);
        return 2;
    }
    for (size_t i = 0; i < BLOCK_LEN; i++) {
        block[i] = (unsigned char)(i % 251);
    }
    if (FCGX_Init() != 0) {
        fprintf(stderr, "libfcgi_app: FCGX_Init failed\n");
        return 1;
    }
    pthread_t ids[MAX_THREADS];
    for (int i = 1; i < threads; i++) {
        pthread_create(&ids[i], NULL, serve, NULL);
    }
    serve(NULL);
    return 0;
}
