/*
 * hello.c: the smallest FastCGI program: one thread, one request at a time.
 *
 *   hello [--bind ADDR]
 *
 * Without --bind it serves the listening socket on fd 0 (mod_fcgid, spawn-fcgi, lighttpd),
 * else a systemd socket, else it runs as a CGI program: one request, then exit.
 */
#include <stdio.h>
#include <string.h>

#include "fcgi.h"

static const char RESPONSE[] =
    "Status: 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, world!";

int main(int argc, char **argv) {
    fcgi_options *options = NULL;
    fcgi_server *server = NULL;
    fcgi_result rc = fcgi_options_new(&options);
    if (rc == FCGI_OK && argc == 3 && strcmp(argv[1], "--bind") == 0) {
        rc = fcgi_options_set_bind(options, argv[2]);
    } else if (rc == FCGI_OK && argc != 1) {
        fprintf(stderr, "usage: hello [--bind ADDR]\n");
        fcgi_options_free(options);
        return 2;
    }
    /* One accepting thread, so one request at a time: what GET_VALUES reports. */
    if (rc == FCGI_OK) {
        rc = fcgi_options_set_workers(options, 1);
    }
    if (rc == FCGI_OK) {
        rc = fcgi_server_open(options, &server);
    }
    fcgi_options_free(options);
    if (rc != FCGI_OK) {
        fprintf(stderr, "hello: %s\n", fcgi_result_str(rc));
        return 1;
    }

    fcgi_request *request;
    while (fcgi_server_accept(server, &request) == FCGI_OK) {
        fcgi_request_write(request, RESPONSE, sizeof RESPONSE - 1);
        fcgi_request_finish(request);
    }

    int code = 0;
    fcgi_server_exit_code(server, &code);
    fcgi_server_close(server);
    return code;
}
