/*
 * stdio.c: a CGI program made a FastCGI one with fcgi_stdio.h, libfcgi's classic way:
 * include it first, loop on FCGI_Accept, and keep using printf, getenv, fread and friends.
 * Run by a web server with the socket on fd 0 it serves FastCGI; run as CGI it serves one
 * request with the real stdio. Builds against fcgi-compat and against libfcgi alike.
 *
 * It answers with the request count, a few params, and the body it read (CONTENT_LENGTH bytes)
 * upper-cased; /lines reads the body line by line with fgets instead; /exit answers and then
 * calls exit(3), whose atexit handler still finishes the request.
 */
#include "fcgi_stdio.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *param(const char *name) {
    const char *value = getenv(name);
    return value != NULL ? value : "";
}

int main(void) {
    int count = 0;
    while (FCGI_Accept() >= 0) {
        count++;
        printf("Content-Type: text/plain\r\n\r\n");
        printf("request %d\n", count);
        printf("method=%s uri=%s query=%s\n", param("REQUEST_METHOD"), param("REQUEST_URI"), param("QUERY_STRING"));
        long length = strtol(param("CONTENT_LENGTH"), NULL, 10);
        if (strcmp(param("REQUEST_URI"), "/lines") == 0) {
            char line[64];
            int lines = 0;
            while (fgets(line, sizeof line, stdin) != NULL) {
                lines++;
                fputs("> ", stdout);
                fputs(line, stdout);
            }
            printf("%d lines, eof=%d\n", lines, feof(stdin) != 0);
        } else if (length > 0) {
            char buf[4096];
            long left = length;
            printf("body=");
            while (left > 0) {
                size_t want = left < (long)sizeof buf ? (size_t)left : sizeof buf;
                size_t got = fread(buf, 1, want, stdin);
                if (got == 0) {
                    break;
                }
                for (size_t i = 0; i < got; i++) {
                    buf[i] = (char)toupper((unsigned char)buf[i]);
                }
                fwrite(buf, 1, got, stdout);
                left -= (long)got;
            }
            putchar('\n');
        }
        fprintf(stderr, "stdio: served request %d\n", count);
        if (strcmp(param("REQUEST_URI"), "/exit") == 0) {
            puts("exiting");
            exit(0);
        }
    }
    return 0;
}
