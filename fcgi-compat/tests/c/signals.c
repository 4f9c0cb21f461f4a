/*
 * signals.c (a test program): a libfcgi program with a SIGTERM handler of its own. With no
 * argument it accepts with FCGI_FAIL_ACCEPT_ON_INTR, so SIGTERM makes FCGX_Accept_r return
 * -EINTR (exit status 3); with "shutdown" its handler calls FCGX_ShutdownPending instead, so
 * accept returns -1 once the server has stopped (exit status 0). A signal that lands before the
 * accept begins is seen by the loop's check instead (exit status 4), libfcgi's idiom.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fcgiapp.h"

static volatile sig_atomic_t signalled;
static int shutdown_mode;

static void on_term(int signal) {
    (void)signal;
    signalled = 1;
    if (shutdown_mode) {
        FCGX_ShutdownPending();
    }
}

int main(int argc, char **argv) {
    shutdown_mode = argc > 1 && strcmp(argv[1], "shutdown") == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_term;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);

    FCGX_Request request;
    FCGX_InitRequest(&request, 0, shutdown_mode ? 0 : FCGI_FAIL_ACCEPT_ON_INTR);
    int rc = 0;
    while (!signalled && (rc = FCGX_Accept_r(&request)) >= 0) {
        FCGX_PutS("Content-Type: text/plain\r\n\r\nHello, world!", request.out);
    }
    fprintf(stderr, "accept returned %d after signal %d\n", rc, (int)signalled);
    FCGX_Free(&request, 1);
    return rc == -EINTR ? 3 : rc == 0 ? 4 : 0;
}
