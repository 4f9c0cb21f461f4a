/*
 * The fcgi_stdio.h layer: FCGI_FILE functions that send each call either to the C library's
 * stdio or to the FCGX_* functions (Rust) of the current request. C because nearly every line
 * is a call into stdio (FILE *, fpos_t, va_list, environ); it holds no buffer and parses
 * nothing. It is single-threaded by design, as fcgi_stdio.h programs are.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NO_FCGI_DEFINES
#include "fcgi_stdio.h"

extern char **environ;

/* stdin, stdout and stderr: bound to the real stdio or to a request by FCGI_Accept. */
FCGI_FILE _fcgi_sF[3];

static int accept_called;
static int is_cgi;
/* The process environment while environ points at a request's params, else NULL. */
static char **process_environ;
static int environ_saved;
/* Set once the program closed a real standard stream, which must not be used again. */
static int std_closed[3];

/* The real stdio stream behind fp: its own, or, for the three standard files while no
 * request is bound (before the first FCGI_Accept, between requests, after the last), the
 * process's. NULL for a FastCGI stream. */
static FILE *file_of(FCGI_FILE *fp) {
    if (fp == NULL || fp->fcgx_stream != NULL) {
        return NULL;
    }
    if (fp->stdio_stream != NULL) {
        return fp->stdio_stream;
    }
    if (fp == FCGI_stdin && !std_closed[0]) {
        return stdin;
    }
    if (fp == FCGI_stdout && !std_closed[1]) {
        return stdout;
    }
    if (fp == FCGI_stderr && !std_closed[2]) {
        return stderr;
    }
    return NULL;
}

static FCGX_Stream *stream_of(FCGI_FILE *fp) {
    return fp == NULL ? NULL : fp->fcgx_stream;
}

static int is_standard(FCGI_FILE *fp) {
    return fp == FCGI_stdin || fp == FCGI_stdout || fp == FCGI_stderr;
}

static void bind_stdio(void) {
    _fcgi_sF[0].stdio_stream = std_closed[0] ? NULL : stdin;
    _fcgi_sF[1].stdio_stream = std_closed[1] ? NULL : stdout;
    _fcgi_sF[2].stdio_stream = std_closed[2] ? NULL : stderr;
    for (int i = 0; i < 3; i++) {
        _fcgi_sF[i].fcgx_stream = NULL;
    }
}

static void unbind(void) {
    for (int i = 0; i < 3; i++) {
        _fcgi_sF[i].stdio_stream = NULL;
        _fcgi_sF[i].fcgx_stream = NULL;
    }
}

/* Points environ back at the process environment (before the request's params go away). */
static void restore_environ(void) {
    if (environ_saved) {
        environ = process_environ;
        environ_saved = 0;
    }
}

int FCGI_Accept(void) {
    if (!accept_called) {
        is_cgi = FCGX_IsCGI();
        accept_called = 1;
        atexit(FCGI_Finish);
    } else if (is_cgi) {
        return EOF;
    }
    if (is_cgi) {
        bind_stdio();
        return 0;
    }
    unbind();
    restore_environ();
    FCGX_Stream *in, *out, *err;
    FCGX_ParamArray envp;
    int rc = FCGX_Accept(&in, &out, &err, &envp);
    if (rc < 0) {
        return rc;
    }
    _fcgi_sF[0].fcgx_stream = in;
    _fcgi_sF[1].fcgx_stream = out;
    _fcgi_sF[2].fcgx_stream = err;
    process_environ = environ;
    environ_saved = 1;
    environ = envp;
    return 0;
}

void FCGI_Finish(void) {
    if (!accept_called || is_cgi) {
        return;
    }
    unbind();
    restore_environ();
    FCGX_Finish();
}

int FCGI_StartFilterData(void) {
    FCGX_Stream *in = stream_of(FCGI_stdin);
    return in == NULL ? -1 : FCGX_StartFilterData(in);
}

void FCGI_SetExitStatus(int status) {
    FCGX_Stream *in = stream_of(FCGI_stdin);
    if (in != NULL) {
        FCGX_SetExitStatus(status, in);
    }
}

void FCGI_perror(const char *str) {
    const char *text = strerror(errno);
    if (str != NULL && *str != '\0') {
        FCGI_fputs(str, FCGI_stderr);
        FCGI_fputs(": ", FCGI_stderr);
    }
    FCGI_fputs(text, FCGI_stderr);
    FCGI_fputc('\n', FCGI_stderr);
}

/* A new FCGI_FILE around an open FILE; on failure the FILE is closed with close. */
static FCGI_FILE *wrap(FILE *file, int (*close)(FILE *)) {
    if (file == NULL) {
        return NULL;
    }
    FCGI_FILE *fp = malloc(sizeof *fp);
    if (fp == NULL) {
        close(file);
        errno = ENOMEM;
        return NULL;
    }
    fp->stdio_stream = file;
    fp->fcgx_stream = NULL;
    return fp;
}

FCGI_FILE *FCGI_fopen(const char *path, const char *mode) {
    return wrap(fopen(path, mode), fclose);
}

/*
 * Closes fp's stream with close (fclose or pclose) and frees fp unless it is standard. A
 * standard file closed during a request stays bound to its closed stream (later writes fail,
 * as with libfcgi) until the request ends; a real standard stream, once closed, is never used
 * again.
 */
static int close_with(FCGI_FILE *fp, int (*close)(FILE *)) {
    if (fp == NULL) {
        errno = EBADF;
        return EOF;
    }
    if (fp->fcgx_stream != NULL) {
        int rc = FCGX_FClose(fp->fcgx_stream);
        if (!is_standard(fp)) {
            free(fp);
        }
        return rc;
    }
    int rc = EOF;
    FILE *file = file_of(fp);
    if (file != NULL) {
        rc = close(file);
    }
    fp->stdio_stream = NULL;
    if (is_standard(fp)) {
        std_closed[fp - _fcgi_sF] = 1;
    } else {
        free(fp);
    }
    return rc;
}

int FCGI_fclose(FCGI_FILE *fp) {
    return close_with(fp, fclose);
}

int FCGI_fflush(FCGI_FILE *fp) {
    if (fp == NULL) {
        return fflush(NULL);
    }
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fflush(file);
    }
    return fp->fcgx_stream != NULL ? FCGX_FFlush(fp->fcgx_stream) : EOF;
}

FCGI_FILE *FCGI_freopen(const char *path, const char *mode, FCGI_FILE *fp) {
    if (fp == NULL) {
        return NULL;
    }
    FILE *file = file_of(fp);
    if (file != NULL) {
        file = freopen(path, mode, file);
        if (file == NULL) {
            return NULL;
        }
        fp->stdio_stream = file;
        return fp;
    }
    if (fp->fcgx_stream != NULL) {
        FCGX_FClose(fp->fcgx_stream);
        file = fopen(path, mode);
        if (file == NULL) {
            return NULL;
        }
        fp->stdio_stream = file;
        fp->fcgx_stream = NULL;
        return fp;
    }
    return NULL;
}

int FCGI_setvbuf(FCGI_FILE *fp, char *buf, int bufmode, size_t size) {
    FILE *file = file_of(fp);
    if (file == NULL) {
        errno = EBADF;
        return -1;
    }
    return setvbuf(file, buf, bufmode, size);
}

void FCGI_setbuf(FCGI_FILE *fp, char *buf) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        setbuf(file, buf);
    }
}

int FCGI_fseek(FCGI_FILE *fp, long offset, int whence) {
    FILE *file = file_of(fp);
    if (file == NULL) {
        errno = ESPIPE;
        return -1;
    }
    return fseek(file, offset, whence);
}

long FCGI_ftell(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file == NULL) {
        errno = ESPIPE;
        return -1;
    }
    return ftell(file);
}

void FCGI_rewind(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        rewind(file);
    }
}

int FCGI_fgetpos(FCGI_FILE *fp, fpos_t *pos) {
    FILE *file = file_of(fp);
    if (file == NULL) {
        errno = ESPIPE;
        return -1;
    }
    return fgetpos(file, pos);
}

int FCGI_fsetpos(FCGI_FILE *fp, const fpos_t *pos) {
    FILE *file = file_of(fp);
    if (file == NULL) {
        errno = ESPIPE;
        return -1;
    }
    return fsetpos(file, pos);
}

int FCGI_fgetc(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fgetc(file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_GetChar(stream) : EOF;
}

int FCGI_getchar(void) {
    return FCGI_fgetc(FCGI_stdin);
}

int FCGI_ungetc(int c, FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return ungetc(c, file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_UnGetChar(c, stream) : EOF;
}

char *FCGI_fgets(char *str, int size, FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fgets(str, size, file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_GetLine(str, size, stream) : NULL;
}

int FCGI_fputc(int c, FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fputc(c, file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_PutChar(c, stream) : EOF;
}

int FCGI_putchar(int c) {
    return FCGI_fputc(c, FCGI_stdout);
}

int FCGI_fputs(const char *str, FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fputs(str, file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL && FCGX_PutS(str, stream) >= 0 ? 0 : EOF;
}

int FCGI_puts(const char *str) {
    FILE *file = file_of(FCGI_stdout);
    if (file != NULL) {
        return puts(str);
    }
    FCGX_Stream *stream = stream_of(FCGI_stdout);
    if (stream == NULL || FCGX_PutS(str, stream) < 0 || FCGX_PutChar('\n', stream) == EOF) {
        return EOF;
    }
    return 0;
}

int FCGI_vfprintf(FCGI_FILE *fp, const char *format, va_list ap) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return vfprintf(file, format, ap);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_VFPrintF(stream, format, ap) : EOF;
}

int FCGI_vprintf(const char *format, va_list ap) {
    return FCGI_vfprintf(FCGI_stdout, format, ap);
}

int FCGI_fprintf(FCGI_FILE *fp, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int n = FCGI_vfprintf(fp, format, ap);
    va_end(ap);
    return n;
}

int FCGI_printf(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int n = FCGI_vfprintf(FCGI_stdout, format, ap);
    va_end(ap);
    return n;
}

/* FCGX_GetStr and FCGX_PutStr take an int count: larger transfers go in pieces. */
#define PIECE (INT_MAX & ~0xfff)

/* The bytes nmemb items of size make (0 when either is), as many whole items as fit a size_t. */
static size_t bytes_of(size_t size, size_t nmemb) {
    if (size == 0) {
        return 0;
    }
    return (nmemb > SIZE_MAX / size ? SIZE_MAX / size : nmemb) * size;
}

size_t FCGI_fread(void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fread(ptr, size, nmemb, file);
    }
    FCGX_Stream *stream = stream_of(fp);
    size_t total = bytes_of(size, nmemb), done = 0;
    while (stream != NULL && done < total) {
        size_t want = total - done < PIECE ? total - done : PIECE;
        int got = FCGX_GetStr((char *)ptr + done, (int)want, stream);
        if (got <= 0) {
            break;
        }
        done += (size_t)got;
        if ((size_t)got < want) {
            break;
        }
    }
    return size == 0 ? 0 : done / size;
}

size_t FCGI_fwrite(const void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return fwrite(ptr, size, nmemb, file);
    }
    FCGX_Stream *stream = stream_of(fp);
    size_t total = bytes_of(size, nmemb), done = 0;
    while (stream != NULL && done < total) {
        size_t want = total - done < PIECE ? total - done : PIECE;
        if (FCGX_PutStr((const char *)ptr + done, (int)want, stream) != (int)want) {
            break;
        }
        done += want;
    }
    return size == 0 ? 0 : done / size;
}

int FCGI_feof(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return feof(file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_HasSeenEOF(stream) != 0 : 0;
}

int FCGI_ferror(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        return ferror(file);
    }
    FCGX_Stream *stream = stream_of(fp);
    return stream != NULL ? FCGX_GetError(stream) != 0 : 0;
}

void FCGI_clearerr(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file != NULL) {
        clearerr(file);
    } else if (stream_of(fp) != NULL) {
        FCGX_ClearError(stream_of(fp));
    }
}

FCGI_FILE *FCGI_tmpfile(void) {
    return wrap(tmpfile(), fclose);
}

int FCGI_fileno(FCGI_FILE *fp) {
    FILE *file = file_of(fp);
    if (file == NULL) {
        errno = EBADF;
        return -1;
    }
    return fileno(file);
}

FCGI_FILE *FCGI_fdopen(int fd, const char *mode) {
    return wrap(fdopen(fd, mode), fclose);
}

FCGI_FILE *FCGI_popen(const char *cmd, const char *type) {
    return wrap(popen(cmd, type), pclose);
}

int FCGI_pclose(FCGI_FILE *fp) {
    return close_with(fp, pclose);
}
