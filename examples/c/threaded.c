/*
 * threaded.c: N threads, each accepting and serving requests in its own loop.
 *
 *   threaded [--bind ADDR] [--threads N]
 *
 * The server gets N workers, so each accepting thread has a request to work on. A request
 * says which thread served it; /slow?ms=N sleeps first, so concurrent requests show several
 * threads at work. SIGTERM (or SIGINT, SIGUSR1) lets requests in flight finish, then every
 * thread's accept returns FCGI_ERR_STOPPED and the program exits 0; SIGHUP re-executes it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fcgi.h"

#define MAX_THREADS 256

struct worker {
    fcgi_server *server;
    unsigned index;
    unsigned long served;
};

/* The value of query parameter `name` as a number, or `fallback`. */
static long query_number(fcgi_request *request, const char *name, long fallback) {
    const char *query;
    if (fcgi_request_param_str(request, "QUERY_STRING", &query) != FCGI_OK) {
        return fallback;
    }
    size_t len = strlen(name);
    for (const char *p = query; *p;) {
        if (strncmp(p, name, len) == 0 && p[len] == '=') {
            return strtol(p + len + 1, NULL, 10);
        }
        p = strchr(p, '&');
        if (!p) {
            break;
        }
        p++;
    }
    return fallback;
}

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

static void *serve(void *arg) {
    struct worker *worker = arg;
    fcgi_request *request;
    while (fcgi_server_accept(worker->server, &request) == FCGI_OK) {
        long ms = query_number(request, "ms", 0);
        if (ms > 0 && ms <= 10000) {
            sleep_ms(ms);
        }
        char body[96];
        int body_len = snprintf(body, sizeof body, "served by thread %u (its request %lu)\n", worker->index,
                                ++worker->served);
        char head[128];
        int head_len = snprintf(head, sizeof head,
                                "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
                                body_len);
        if (fcgi_request_write(request, head, (size_t)head_len) == FCGI_OK) {
            fcgi_request_write(request, body, (size_t)body_len);
        }
        fcgi_request_finish(request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *bind = NULL;
    unsigned threads = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: threaded [--bind ADDR] [--threads N]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "threaded: --threads must be between 1 and %d\n", MAX_THREADS);
        return 2;
    }

    fcgi_options *options = NULL;
    fcgi_server *server = NULL;
    fcgi_result rc = fcgi_options_new(&options);
    if (rc == FCGI_OK && bind) {
        rc = fcgi_options_set_bind(options, bind);
    }
    if (rc == FCGI_OK) {
        rc = fcgi_options_set_workers(options, threads);
    }
    if (rc == FCGI_OK) {
        rc = fcgi_server_open(options, &server);
    }
    fcgi_options_free(options);
    if (rc != FCGI_OK) {
        fprintf(stderr, "threaded: %s\n", fcgi_result_str(rc));
        return 1;
    }

    static struct worker workers[MAX_THREADS];
    static pthread_t ids[MAX_THREADS];
    unsigned started = 0;
    for (; started < threads; started++) {
        workers[started] = (struct worker){server, started, 0};
        if (pthread_create(&ids[started], NULL, serve, &workers[started]) != 0) {
            fprintf(stderr, "threaded: cannot start thread %u\n", started);
            fcgi_server_shutdown(server);
            break;
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ids[i], NULL);
    }

    int code = 0;
    fcgi_server_exit_code(server, &code);
    fcgi_server_close(server);
    return started == threads ? code : 1;
}
