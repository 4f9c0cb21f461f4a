/*
 * handoff.c (a test program, built by fcgi-capi/tests/c_examples.rs with -fsanitize=address):
 * the hand-off the header recommends for multiplexing. The main thread accepts and hands each
 * request to a thread of its own, which reads the whole body and echoes it back slowly, in
 * flushed chunks. On SIGTERM main's accept returns FCGI_ERR_STOPPED and main closes the server
 * at once, while the threads are still writing their requests; then it joins them.
 *
 *   handoff --bind ADDR [--chunks N] [--chunk-ms MS]
 *
 * Exits 0 when every call on every request returned FCGI_OK, else 1 (each failure is logged).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fcgi.h"

#define MAX_REQUESTS 64

static unsigned chunks = 8;
static long chunk_ms = 50;
static atomic_uint failures;
/* Requests handed to a thread and not finished yet. */
static atomic_uint serving;

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

/* Counts and logs a call that did not return FCGI_OK; whether it did. */
static int ok(fcgi_result rc, const char *call) {
    if (rc == FCGI_OK) {
        return 1;
    }
    fprintf(stderr, "handoff: %s: %s\n", call, fcgi_result_str(rc));
    atomic_fetch_add(&failures, 1);
    return 0;
}

static void *serve(void *arg) {
    fcgi_request *request = arg;
    size_t len = 0, cap = 4096;
    char *body = malloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            body = realloc(body, cap);
        }
        size_t n = 0;
        if (!ok(fcgi_request_read(request, body + len, cap - len, &n), "fcgi_request_read") || n == 0) {
            break;
        }
        len += n;
    }
    char head[128];
    int head_len = snprintf(head, sizeof head,
                            "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            len);
    int going = ok(fcgi_request_write(request, head, (size_t)head_len), "fcgi_request_write") &&
                ok(fcgi_request_flush(request), "fcgi_request_flush");
    /* The client sends SIGTERM once it has the head: the rest is written after the stop. */
    size_t step = len / chunks + 1;
    for (size_t at = 0; going && at < len; at += step) {
        sleep_ms(chunk_ms);
        size_t part = len - at < step ? len - at : step;
        going = ok(fcgi_request_write(request, body + at, part), "fcgi_request_write") &&
                ok(fcgi_request_flush(request), "fcgi_request_flush");
    }
    const char *uri;
    going = going && ok(fcgi_request_param_str(request, "REQUEST_URI", &uri), "fcgi_request_param_str");
    bool aborted = true;
    going = going && ok(fcgi_request_is_aborted(request, &aborted), "fcgi_request_is_aborted");
    if (going && aborted) {
        fprintf(stderr, "handoff: %s was aborted\n", uri);
        atomic_fetch_add(&failures, 1);
    }
    ok(fcgi_request_finish(request), "fcgi_request_finish");
    atomic_fetch_sub(&serving, 1);
    free(body);
    return NULL;
}

int main(int argc, char **argv) {
    const char *bind = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--chunks") == 0 && i + 1 < argc) {
            chunks = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--chunk-ms") == 0 && i + 1 < argc) {
            chunk_ms = strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: handoff --bind ADDR [--chunks N] [--chunk-ms MS]\n");
            return 2;
        }
    }
    if (!bind || chunks < 1) {
        fprintf(stderr, "usage: handoff --bind ADDR [--chunks N] [--chunk-ms MS]\n");
        return 2;
    }

    fcgi_options *options = NULL;
    fcgi_server *server = NULL;
    fcgi_result rc = fcgi_options_new(&options);
    if (rc == FCGI_OK) {
        rc = fcgi_options_set_bind(options, bind);
    }
    if (rc == FCGI_OK) {
        rc = fcgi_options_set_workers(options, MAX_REQUESTS);
    }
    if (rc == FCGI_OK) {
        rc = fcgi_server_open(options, &server);
    }
    fcgi_options_free(options);
    if (rc != FCGI_OK) {
        fprintf(stderr, "handoff: %s\n", fcgi_result_str(rc));
        return 1;
    }

    pthread_t threads[MAX_REQUESTS];
    unsigned started = 0;
    fcgi_request *request;
    while ((rc = fcgi_server_accept(server, &request)) == FCGI_OK) {
        atomic_fetch_add(&serving, 1);
        if (started == MAX_REQUESTS || pthread_create(&threads[started], NULL, serve, request) != 0) {
            fprintf(stderr, "handoff: no thread for a request\n");
            atomic_fetch_add(&failures, 1);
            atomic_fetch_sub(&serving, 1);
            fcgi_request_finish(request);
            continue;
        }
        started++;
    }
    fprintf(stderr, "handoff: accept: %s; closing with %u of %u requests still served on their threads\n",
            fcgi_result_str(rc), atomic_load(&serving), started);
    /* The threads still hold their requests: close must not pull them from under them. */
    fcgi_server_close(server);
    fprintf(stderr, "handoff: closed\n");
    for (unsigned i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    unsigned failed = atomic_load(&failures);
    fprintf(stderr, "handoff: %u requests, %u failed calls\n", started, failed);
    return rc == FCGI_ERR_STOPPED && failed == 0 ? 0 : 1;
}
