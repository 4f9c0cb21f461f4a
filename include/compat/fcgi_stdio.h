/*
 * fcgi_stdio.h: libfcgi's stdio redirection, served by fcgi-compat.
 *
 * A CGI program becomes a FastCGI program by including this header first and wrapping its
 * body in `while (FCGI_Accept() >= 0) { ... }`. The macros at the end rename the stdio
 * functions and stdin/stdout/stderr to FCGI_* versions that work on FCGI_FILE: during a
 * FastCGI request the three standard files are the request's streams and getenv() reads its
 * params; in CGI mode, and outside a request, they are the process's real stdio. Any other
 * file (fopen, fdopen, popen, tmpfile) is a real FILE underneath.
 *
 * FCGI_Accept serves the socket on fd 0 (or a systemd socket), else one CGI request. Define
 * NO_FCGI_DEFINES before including this header to get the FCGI_* functions without the
 * renaming macros. gets() is not redirected: it cannot be used safely (C11 removed it).
 */
#ifndef _FCGI_STDIO
#define _FCGI_STDIO 1

#include <stdio.h>
#include <sys/types.h>

#include "fcgiapp.h"

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

/* A file that is either a real stdio stream or a FastCGI stream of the current request. */
typedef struct {
    FILE *stdio_stream;
    FCGX_Stream *fcgx_stream;
} FCGI_FILE;

/*
 * Finishes the previous request and waits for the next; binds stdin, stdout, stderr and
 * environ to it. 0 on success; a negative value when there is no next request (the server
 * stopped, or the one CGI request was served). In CGI mode the first call returns 0 with the
 * real stdio and environment, the second EOF. The last request is also finished at exit.
 */
DLLAPI int FCGI_Accept(void);

/* Finishes the current request (also done by the next FCGI_Accept and at exit) and gives
 * back the real stdio and the process environment. */
DLLAPI void FCGI_Finish(void);

/* For a Filter request, after stdin was read to its end: stdin then reads the data stream.
 * 0, or -1 (also in CGI mode). */
DLLAPI int FCGI_StartFilterData(void);

/* Sets the application status sent with the end of the current request. */
DLLAPI void FCGI_SetExitStatus(int status);

#define FCGI_ToFILE(fcgi_file) ((fcgi_file)->stdio_stream)
#define FCGI_ToFcgiStream(fcgi_file) ((fcgi_file)->fcgx_stream)

/* stdin, stdout and stderr. */
DLLAPI extern FCGI_FILE _fcgi_sF[];
#define FCGI_stdin (&_fcgi_sF[0])
#define FCGI_stdout (&_fcgi_sF[1])
#define FCGI_stderr (&_fcgi_sF[2])

/* The stdio functions over FCGI_FILE. On a FastCGI stream, the positioning and buffering
 * calls fail (ESPIPE, EBADF) as they would on a pipe. */
DLLAPI void FCGI_perror(const char *str);

DLLAPI FCGI_FILE *FCGI_fopen(const char *path, const char *mode);
DLLAPI int FCGI_fclose(FCGI_FILE *fp);
DLLAPI int FCGI_fflush(FCGI_FILE *fp);
DLLAPI FCGI_FILE *FCGI_freopen(const char *path, const char *mode, FCGI_FILE *fp);

DLLAPI int FCGI_setvbuf(FCGI_FILE *fp, char *buf, int bufmode, size_t size);
DLLAPI void FCGI_setbuf(FCGI_FILE *fp, char *buf);

DLLAPI int FCGI_fseek(FCGI_FILE *fp, long offset, int whence);
DLLAPI long FCGI_ftell(FCGI_FILE *fp);
DLLAPI void FCGI_rewind(FCGI_FILE *fp);
DLLAPI int FCGI_fgetpos(FCGI_FILE *fp, fpos_t *pos);
DLLAPI int FCGI_fsetpos(FCGI_FILE *fp, const fpos_t *pos);

DLLAPI int FCGI_fgetc(FCGI_FILE *fp);
DLLAPI int FCGI_getchar(void);
DLLAPI int FCGI_ungetc(int c, FCGI_FILE *fp);
DLLAPI char *FCGI_fgets(char *str, int size, FCGI_FILE *fp);

DLLAPI int FCGI_fputc(int c, FCGI_FILE *fp);
DLLAPI int FCGI_putchar(int c);
DLLAPI int FCGI_fputs(const char *str, FCGI_FILE *fp);
DLLAPI int FCGI_puts(const char *str);

DLLAPI int FCGI_fprintf(FCGI_FILE *fp, const char *format, ...);
DLLAPI int FCGI_printf(const char *format, ...);
DLLAPI int FCGI_vfprintf(FCGI_FILE *fp, const char *format, va_list ap);
DLLAPI int FCGI_vprintf(const char *format, va_list ap);

DLLAPI size_t FCGI_fread(void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp);
DLLAPI size_t FCGI_fwrite(const void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp);

DLLAPI int FCGI_feof(FCGI_FILE *fp);
DLLAPI int FCGI_ferror(FCGI_FILE *fp);
DLLAPI void FCGI_clearerr(FCGI_FILE *fp);

DLLAPI FCGI_FILE *FCGI_tmpfile(void);
DLLAPI int FCGI_fileno(FCGI_FILE *fp);
DLLAPI FCGI_FILE *FCGI_fdopen(int fd, const char *mode);
DLLAPI FCGI_FILE *FCGI_popen(const char *cmd, const char *type);
DLLAPI int FCGI_pclose(FCGI_FILE *fp);

#if !defined(NO_FCGI_DEFINES)

/* The renaming. #undef first: the C library may define some of these as macros. */
#undef FILE
#define FILE FCGI_FILE

#undef stdin
#define stdin FCGI_stdin
#undef stdout
#define stdout FCGI_stdout
#undef stderr
#define stderr FCGI_stderr

#undef perror
#define perror FCGI_perror

#undef fopen
#define fopen FCGI_fopen
#undef fclose
#define fclose FCGI_fclose
#undef fflush
#define fflush FCGI_fflush
#undef freopen
#define freopen FCGI_freopen

#undef setvbuf
#define setvbuf FCGI_setvbuf
#undef setbuf
#define setbuf FCGI_setbuf

#undef fseek
#define fseek FCGI_fseek
#undef ftell
#define ftell FCGI_ftell
#undef rewind
#define rewind FCGI_rewind
#undef fgetpos
#define fgetpos FCGI_fgetpos
#undef fsetpos
#define fsetpos FCGI_fsetpos

#undef fgetc
#define fgetc FCGI_fgetc
#undef getc
#define getc FCGI_fgetc
#undef getchar
#define getchar FCGI_getchar
#undef ungetc
#define ungetc FCGI_ungetc
#undef fgets
#define fgets FCGI_fgets

#undef fputc
#define fputc FCGI_fputc
#undef putc
#define putc FCGI_fputc
#undef putchar
#define putchar FCGI_putchar
#undef fputs
#define fputs FCGI_fputs
#undef puts
#define puts FCGI_puts

#undef fprintf
#define fprintf FCGI_fprintf
#undef printf
#define printf FCGI_printf
#undef vfprintf
#define vfprintf FCGI_vfprintf
#undef vprintf
#define vprintf FCGI_vprintf

#undef fread
#define fread FCGI_fread
#undef fwrite
#define fwrite FCGI_fwrite

#undef feof
#define feof FCGI_feof
#undef ferror
#define ferror FCGI_ferror
#undef clearerr
#define clearerr FCGI_clearerr

#undef tmpfile
#define tmpfile FCGI_tmpfile
#undef fileno
#define fileno FCGI_fileno
#undef fdopen
#define fdopen FCGI_fdopen
#undef popen
#define popen FCGI_popen
#undef pclose
#define pclose FCGI_pclose

#endif /* !NO_FCGI_DEFINES */

#if defined(__cplusplus) || defined(c_plusplus)
} /* extern "C" */
#endif

#endif /* _FCGI_STDIO */
