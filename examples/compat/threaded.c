/*
 * threaded.c: libfcgi's multi-threaded pattern. One listening socket (FCGX_OpenSocket, or
 * fd 0 from a web server), N threads, each with its own FCGX_Request in its own
 * FCGX_Accept_r loop. Builds against fcgi-compat and against libfcgi alike.
 *
 *   threaded [--bind ADDR] [--threads N]
 *
 * Each answer names the thread that served it: "thread 2 (request 5 of this thread)".
 * /slow?ms=N sleeps first, so that concurrent requests show on different threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fcgiapp.h"

#define MAX_THREADS 64

static int listen_sock;

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

static void *serve(void *arg) {
    int id = (int)(size_t)arg;
    int count = 0;
    FCGX_Request request;
    FCGX_InitRequest(&request, listen_sock, 0);
    while (FCGX_Accept_r(&request) >= 0) {
        const char *uri = FCGX_GetParam("REQUEST_URI", request.envp);
        const char *query = FCGX_GetParam("QUERY_STRING", request.envp);
        if (uri != NULL && strncmp(uri, "/slow", 5) == 0 && query != NULL && strncmp(query, "ms=", 3) == 0) {
            sleep_ms(strtol(query + 3, NULL, 10));
        }
        FCGX_FPrintF(request.out, "Content-Type: text/plain\r\n\r\nthread %d (request %d of this thread)\n", id,
                     ++count);
        FCGX_Finish_r(&request);
    }
    FCGX_Free(&request, 1);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bind") == 0) {
            const char *bind = strncmp(argv[i + 1], "unix:", 5) == 0 ? argv[i + 1] + 5 : argv[i + 1];
            listen_sock = FCGX_OpenSocket(bind, 128);
            if (listen_sock < 0) {
                perror("threaded: FCGX_OpenSocket");
                return 1;
            }
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[i + 1]);
        }
    }
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "threaded: --threads takes 1 to %d\n", MAX_THREADS);
        return 2;
    }
    FCGX_Init();
    pthread_t ids[MAX_THREADS];
    for (int i = 1; i < threads; i++) {
        pthread_create(&ids[i], NULL, serve, (void *)(size_t)i);
    }
    serve((void *)(size_t)0);
    for (int i = 1; i < threads; i++) {
        pthread_join(ids[i], NULL);
    }
    return 0;
}
