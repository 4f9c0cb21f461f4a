/*
 * FCGX_FPrintF and FCGX_VFPrintF: C because defining a C-variadic function is not stable Rust.
 * They format with the C library's vsnprintf and hand the bytes to FCGX_PutStr (Rust), which
 * buffers them for the request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fcgiapp.h"

/* Output up to this size is formatted on the stack; longer output in one heap buffer of its
 * exact size (the program's own text, not the peer's). */
#define SMALL 1024

int FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg) {
    char small[SMALL];
    va_list again;
    if (stream == NULL || format == NULL) {
        return -1;
    }
    va_copy(again, arg);
    int len = vsnprintf(small, sizeof small, format, arg);
    if (len < 0) {
        va_end(again);
        return -1;
    }
    if ((size_t)len < sizeof small) {
        va_end(again);
        return FCGX_PutStr(small, len, stream);
    }
    char *big = malloc((size_t)len + 1);
    if (big == NULL) {
        va_end(again);
        return -1;
    }
    int again_len = vsnprintf(big, (size_t)len + 1, format, again);
    va_end(again);
    int written = again_len == len ? FCGX_PutStr(big, len, stream) : -1;
    free(big);
    return written;
}

int FCGX_FPrintF(FCGX_Stream *stream, const char *format, ...) {
    va_list arg;
    va_start(arg, format);
    int written = FCGX_VFPrintF(stream, format, arg);
    va_end(arg);
    return written;
}
