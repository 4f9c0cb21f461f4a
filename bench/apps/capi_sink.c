/*
 * capi_sink.c: the C API's /sink for the 1 GiB upload: reads the body in 64 KiB chunks and
 * answers the byte count, so the app's memory shows what the library holds, not the body.
 * THREADS threads each accept and serve in their own loop, as examples/c/threaded.c does.
 *
 *   capi_sink --bind ADDR [--threads N]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi.h"

#define CHUNK (64 * 1024)
#define MAX_THREADS 256

static void *serve(void *server) {
    char *chunk = malloc(CHUNK);
    fcgi_request *request;
    while (chunk && fcgi_server_accept(server, &request) == FCGI_OK) {
        uint64_t seen = 0;
        size_t n = 0;
        fcgi_result rc;
        while ((rc = fcgi_request_read(request, chunk, CHUNK, &n)) == FCGI_OK && n > 0) {
            seen += n;
        }
        if (rc == FCGI_OK) {
            char text[128];
            char body[32];
            int body_len = snprintf(body, sizeof body, "%" PRIu64 "\n", seen);
            int len = snprintf(text, sizeof text,
                               "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", body_len,
                               body);
            fcgi_request_write(request, text, (size_t)len);
        }
        fcgi_request_finish(request);
    }
    free(chunk);
    return NULL;
}

int main(int argc, char **argv) {
    const char *bind = NULL;
    unsigned threads = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bind") == 0) {
            bind = argv[i + 1];
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
        }
    }
    if (!bind || argc % 2 == 0 || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: capi_sink --bind ADDR [--threads N]\n");
        return 2;
    }
    fcgi_options *options = NULL;
    fcgi_server *server = NULL;
    fcgi_result rc = fcgi_options_new(&options);
    if (rc == FCGI_OK) {
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
        fprintf(stderr, "capi_sink: %s\n", fcgi_result_str(rc));
        return 1;
    }
    pthread_t ids[MAX_THREADS];
    for (unsigned i = 0; i < threads; i++) {
        pthread_create(&ids[i], NULL, serve, server);
    }
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
    }
    fcgi_server_close(server);
    return 0;
}
