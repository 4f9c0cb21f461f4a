/*
 * filter.c: the FastCGI Filter role with libfcgi's FCGX_StartFilterData. The web server sends
 * the file to filter on the DATA stream (after stdin), with its size in FCGI_DATA_LENGTH; this
 * filter answers with the file upper-cased. Builds against fcgi-compat and against libfcgi.
 *
 *   filter [--bind ADDR]
 *
 * A request of another role gets "not a filter". With ?early in the query string it calls
 * FCGX_StartFilterData before reading stdin to its end, which must fail with
 * FCGX_CALL_SEQ_ERROR.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastcgi.h"
#include "fcgiapp.h"

static void filter(FCGX_Request *request) {
    const char *query = FCGX_GetParam("QUERY_STRING", request->envp);
    if (query != NULL && strcmp(query, "early") == 0) {
        int rc = FCGX_StartFilterData(request->in);
        FCGX_FPrintF(request->out, "Content-Type: text/plain\r\n\r\nearly: %d error %d\n", rc,
                     FCGX_GetError(request->in));
        return;
    }
    char buf[4096];
    long stdin_bytes = 0;
    int n;
    while ((n = FCGX_GetStr(buf, sizeof buf, request->in)) > 0) {
        stdin_bytes += n;
    }
    if (FCGX_StartFilterData(request->in) != 0) {
        FCGX_FPrintF(request->out, "Status: 500 Internal Server Error\r\n\r\nno data stream: %d\n",
                     FCGX_GetError(request->in));
        return;
    }
    const char *declared = FCGX_GetParam("FCGI_DATA_LENGTH", request->envp);
    FCGX_FPrintF(request->out, "Content-Type: text/plain\r\nX-Stdin-Bytes: %ld\r\nX-Data-Length: %s\r\n\r\n",
                 stdin_bytes, declared != NULL ? declared : "none");
    long data_bytes = 0;
    while ((n = FCGX_GetStr(buf, sizeof buf, request->in)) > 0) {
        for (int i = 0; i < n; i++) {
            buf[i] = (char)toupper((unsigned char)buf[i]);
        }
        FCGX_PutStr(buf, n, request->out);
        data_bytes += n;
    }
    if (declared != NULL && strtol(declared, NULL, 10) != data_bytes) {
        FCGX_FPrintF(request->err, "filter: FCGI_DATA_LENGTH says %s, the data stream had %ld bytes\n", declared,
                     data_bytes);
        FCGX_SetExitStatus(1, request->out);
    }
}

int main(int argc, char **argv) {
    int sock = 0;
    if (argc == 3 && strcmp(argv[1], "--bind") == 0) {
        const char *bind = strncmp(argv[2], "unix:", 5) == 0 ? argv[2] + 5 : argv[2];
        sock = FCGX_OpenSocket(bind, 128);
        if (sock < 0) {
            perror("filter: FCGX_OpenSocket");
            return 1;
        }
    }
    FCGX_Init();
    FCGX_Request request;
    FCGX_InitRequest(&request, sock, 0);
    while (FCGX_Accept_r(&request) >= 0) {
        if (request.role == FCGI_FILTER) {
            filter(&request);
        } else {
            FCGX_PutS("Content-Type: text/plain\r\n\r\nnot a filter\n", request.out);
        }
        FCGX_Finish_r(&request);
    }
    FCGX_Free(&request, 1);
    return 0;
}
