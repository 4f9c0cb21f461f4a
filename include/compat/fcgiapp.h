/*
 * fcgiapp.h: the libfcgi application API (FCGX_*), served by fcgi-compat.
 *
 * A program written for libfcgi compiles against this header unchanged and links with
 * -lfcgi_compat instead of -lfcgi. The protocol is spoken by this project's Rust core, which
 * also brings what libfcgi lacks: kept connections (FCGI_KEEP_CONN), correct answers to
 * GET_VALUES and unknown roles, bounded params (no CVE-2025-23016), IPv4 and IPv6 in
 * FCGI_WEB_SERVER_ADDRS, poll(2) instead of select(2), and a graceful stop on SIGTERM.
 *
 * How it runs. The first FCGX_Accept_r (or FCGX_Accept) of a process starts a server on the
 * request's listening socket. The thread that calls FCGX_Accept_r waits for the next request
 * and reads it itself, and owns it until FCGX_Finish_r or the next FCGX_Accept_r (the few
 * threads the library starts itself block every signal, so a program's signal handlers run on
 * the program's threads, as with libfcgi). Any number of threads may accept at once, each
 * with its own FCGX_Request. One process serves one listening socket; a socket from
 * FCGX_OpenSocket stays the program's (the server uses a duplicate of it). A forked child
 * that accepts starts a server of its own on the shared socket. Without a listening socket
 * (fd 0 is not one, and no systemd socket was passed) the process is a CGI program: the first
 * accept returns the one CGI request (environment and stdin in, stdout out) and the next
 * returns -1. At exit, the request of FCGX_Accept is finished, requests read but never
 * accepted are answered 503, and the exit waits (up to 5 s) for the requests finished by the
 * program to reach the web server.
 *
 * What libfcgi has no knob for is read from the environment when the server starts:
 * FCGI_COMPAT_WORKERS (the requests at once GET_VALUES reports; accept on that many threads),
 * FCGI_COMPAT_MAX_REQUESTS, FCGI_COMPAT_MULTIPLEX, FCGI_COMPAT_MAX_BODY_BYTES,
 * FCGI_COMPAT_MAX_CONNS, FCGI_COMPAT_READ_TIMEOUT, FCGI_COMPAT_WRITE_TIMEOUT,
 * FCGI_COMPAT_IDLE_TIMEOUT, FCGI_COMPAT_HEAD_TIMEOUT and FCGI_COMPAT_GRACEFUL_TIMEOUT
 * (seconds; 0 means no limit). FCGI_FORCE_CGI=1 forces CGI mode. FCGI_WEB_SERVER_ADDRS
 * lists the TCP peers allowed.
 *
 * Signals: unless the program installed a handler of its own for one of SIGTERM, SIGINT,
 * SIGUSR1 or SIGHUP before the server starts, SIGTERM, SIGINT and SIGUSR1 stop the server
 * gracefully (requests in flight finish, then accept returns -1), and SIGHUP reloads: accept
 * returns -1 likewise, and when the program exits it is executed anew on the same listening
 * socket. SIGPIPE
 * is ignored if it was left at its default, as libfcgi does.
 */
#ifndef _FCGIAPP_H
#define _FCGIAPP_H

#include <stdarg.h>

#ifndef DLLAPI
#define DLLAPI
#endif

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

/* The end of a stream, and the error return of the character functions. */
#ifndef EOF
#define EOF (-1)
#endif

/*
 * FCGX_GetError codes. 0 is no error; a positive value is an errno value (ECONNABORTED: the
 * web server aborted the request; EPIPE or ECONNRESET: it went away; ETIMEDOUT: it stalled;
 * EFBIG: the body passed FCGI_COMPAT_MAX_BODY_BYTES); a negative value is one of these.
 */
#define FCGX_UNSUPPORTED_VERSION -2 /* the web server spoke another FastCGI version */
#define FCGX_PROTOCOL_ERROR -3      /* the web server broke the protocol */
#define FCGX_PARAMS_ERROR -4        /* the params could not be decoded */
#define FCGX_CALL_SEQ_ERROR -5      /* a call out of order (such as reading a finished request) */

/*
 * A byte stream of a request: in (the body, then the Filter role's data), out (the response)
 * and err (the web server's error log). The library allocates and owns every stream; use them
 * only through the functions below. The buffer pointers are left NULL by this implementation;
 * isReader, isClosed (end of input seen, or an error), wasFCloseCalled and FCGI_errno are kept
 * up to date for programs that look at them.
 */
typedef struct FCGX_Stream {
    unsigned char *rdNext;
    unsigned char *wrNext;
    unsigned char *stop;
    unsigned char *stopUnget;
    int isReader;
    int isClosed;
    int wasFCloseCalled;
    int FCGI_errno;
    void (*fillBuffProc)(struct FCGX_Stream *stream);
    void (*emptyBuffProc)(struct FCGX_Stream *stream, int doClose);
    void *data;
} FCGX_Stream;

/* A request's params as an environment: "NAME=value" strings, then NULL. A name the web
 * server sent twice appears once, with the later value. */
typedef char **FCGX_ParamArray;

/* FCGX_InitRequest flag: make FCGX_Accept_r return -EINTR when a signal handler runs on the
 * accepting thread, instead of waiting on. */
#define FCGI_FAIL_ACCEPT_ON_INTR 1

/*
 * One request slot, owned by the program (on the stack, in a struct, or malloc'd) and set up
 * by FCGX_InitRequest. After a successful FCGX_Accept_r, in, out, err and envp belong to the
 * request until it is finished; role is FCGI_RESPONDER, FCGI_AUTHORIZER or FCGI_FILTER, and
 * requestId is 1. The fields after envp are the library's: paramsPtr holds its state, ipcFd
 * is -1 (the connection belongs to the library's threads), keepConnection is 0.
 */
typedef struct FCGX_Request {
    int requestId;
    int role;
    FCGX_Stream *in;
    FCGX_Stream *out;
    FCGX_Stream *err;
    char **envp;

    struct Params *paramsPtr;
    int ipcFd;
    int isBeginProcessed;
    int keepConnection;
    int appStatus;
    int nWriters;
    int flags;
    int listen_sock;
    int detached;
} FCGX_Request;

/* Process set-up. */

/* 1 if this process is a CGI program (fd 0 is not a listening socket, no systemd socket was
 * passed, or FCGI_FORCE_CGI=1), 0 if it serves FastCGI. The first answer is kept. */
DLLAPI int FCGX_IsCGI(void);

/* Prepares the library. Always 0; the library also prepares itself on first use. */
DLLAPI int FCGX_Init(void);

/*
 * Creates a listening socket and returns its descriptor, for FCGX_InitRequest; -1 with errno
 * set on failure (libfcgi exits the process instead). path is a Unix socket path (a stale
 * socket file there is replaced, any other file is left alone and is an error), ":PORT" or
 * "*:PORT" (every IPv4 address), "HOST:PORT", "[IPV6]:PORT", or "unix:PATH". backlog is
 * listen(2)'s. A listening socket at that address that the process was handed (on fd 0 by a
 * SIGHUP reload, or by systemd socket activation) is returned instead of a new one, so the
 * connections waiting in it are served. A socket file this process created is removed when
 * its server stops or the process exits.
 */
DLLAPI int FCGX_OpenSocket(const char *path, int backlog);

/*
 * Sets up a request slot to accept on sock: 0 (FCGI_LISTENSOCK_FILENO) for the socket a web
 * server handed over, or a descriptor from FCGX_OpenSocket. flags: 0 or
 * FCGI_FAIL_ACCEPT_ON_INTR. Clears the whole struct. Always 0. One process serves one
 * listening socket: accepting on a second one fails.
 */
DLLAPI int FCGX_InitRequest(FCGX_Request *request, int sock, int flags);

/*
 * Finishes the request the slot holds, if any, then waits for the next one. 0 on success;
 * -1 once the server has stopped (a signal, FCGX_ShutdownPending, FCGI_COMPAT_MAX_REQUESTS, or
 * after the one CGI request) and no request is left; -EINTR when a signal interrupted the
 * wait and FCGI_FAIL_ACCEPT_ON_INTR is set; another negative errno value if the server could
 * not start. Thread-safe across different slots.
 */
DLLAPI int FCGX_Accept_r(FCGX_Request *request);

/*
 * Ends the request the slot holds: what is buffered on out and err is sent, then the end of
 * the request. in, out, err and envp become NULL. Nothing happens if the slot holds no
 * request. May be called on any thread.
 */
DLLAPI void FCGX_Finish_r(FCGX_Request *request);

/* Finishes the slot's request, if any, and frees what the library keeps for the slot. The
 * slot may be accepted on again. close is accepted for compatibility and changes nothing. */
DLLAPI void FCGX_Free(FCGX_Request *request, int close);

/*
 * The single-threaded form: finishes the previous request and accepts the next on fd 0,
 * through a slot the library keeps. On success the streams and params are stored through
 * the pointers. Returns as FCGX_Accept_r does.
 */
DLLAPI int FCGX_Accept(FCGX_Stream **in, FCGX_Stream **out, FCGX_Stream **err, FCGX_ParamArray *envp);

/* Finishes the request of FCGX_Accept, if any. Also done at exit. */
DLLAPI void FCGX_Finish(void);

/*
 * For a request of the Filter role: stream must be the request's in stream, positioned at the
 * end of the body (stdin). Switches it to the data stream (the file to filter). 0 on success;
 * otherwise -1 and FCGX_CALL_SEQ_ERROR on the stream.
 */
DLLAPI int FCGX_StartFilterData(FCGX_Stream *stream);

/* Sets the application status sent with the end of the request that stream belongs to. */
DLLAPI void FCGX_SetExitStatus(int status, FCGX_Stream *stream);

/* Params. */

/* The value of name in envp, or NULL. The string belongs to the request. */
DLLAPI char *FCGX_GetParam(const char *name, FCGX_ParamArray envp);

/* Reading (in). */

/* The next byte, or EOF at the end of the stream or on an error. */
DLLAPI int FCGX_GetChar(FCGX_Stream *stream);

/* Pushes c back, so that the next read returns it. One byte of push-back is guaranteed after
 * a byte was read; none at the end of the stream. Returns c, or EOF if it could not. */
DLLAPI int FCGX_UnGetChar(int c, FCGX_Stream *stream);

/* Reads up to n bytes into str; returns how many. Fewer than n only at the end of the stream
 * or on an error. */
DLLAPI int FCGX_GetStr(char *str, int n, FCGX_Stream *stream);

/* Reads a line: up to n - 1 bytes, stopping after a newline, and a terminating NUL. Returns
 * str, or NULL if the stream ended before any byte. */
DLLAPI char *FCGX_GetLine(char *str, int n, FCGX_Stream *stream);

/* EOF once the end of the stream was met (or an error), else 0. A 0 does not promise that
 * the next read returns data. */
DLLAPI int FCGX_HasSeenEOF(FCGX_Stream *stream);

/* Writing (out, err). Writes are buffered and sent when the buffer fills, on FCGX_FFlush, or
 * when the request is finished. */

/* Writes one byte; returns it, or EOF on an error. */
DLLAPI int FCGX_PutChar(int c, FCGX_Stream *stream);

/* Writes n bytes; returns n, or -1 on an error. */
DLLAPI int FCGX_PutStr(const char *str, int n, FCGX_Stream *stream);

/* Writes a NUL-terminated string, without the NUL; returns its length, or -1. */
DLLAPI int FCGX_PutS(const char *str, FCGX_Stream *stream);

/* printf to a stream, with the C library's formatting (every C99 conversion: %zu, %lld, %a;
 * libfcgi's own formatter knows fewer); returns the number of bytes written, or -1. */
DLLAPI int FCGX_FPrintF(FCGX_Stream *stream, const char *format, ...);

DLLAPI int FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg);

/* Sends what is buffered now. 0, or -1 on an error. A no-op on in. */
DLLAPI int FCGX_FFlush(FCGX_Stream *stream);

/* Closes a stream: a writer sends what it buffered and takes no more writes. 0, or -1. The
 * stream still belongs to the request (or, from FCGX_CreateWriter, to the program). */
DLLAPI int FCGX_FClose(FCGX_Stream *stream);

/* Errors. */

/* The stream's first error since the last FCGX_ClearError: 0, an errno value, or one of the
 * FCGX_* codes above. */
DLLAPI int FCGX_GetError(FCGX_Stream *stream);

/* Forgets the stream's error code. A stream closed by an error stays closed. */
DLLAPI void FCGX_ClearError(FCGX_Stream *stream);

/* Raw streams. */

/*
 * A stream that writes FastCGI records of streamType (FCGI_STDOUT, FCGI_STDERR, ...) for
 * requestId straight to the connected socket, buffering up to bufflen bytes (at least 32, at
 * most 65535). FCGX_FClose sends the end of the stream. Free it with FCGX_FreeStream. NULL on
 * a bad argument.
 */
DLLAPI FCGX_Stream *FCGX_CreateWriter(int socket, int requestId, int bufflen, int streamType);

/* Frees a stream from FCGX_CreateWriter and sets *stream to NULL. A request's own stream is
 * only forgotten (*stream = NULL); the request frees it. */
DLLAPI void FCGX_FreeStream(FCGX_Stream **stream);

/* Stopping. */

/* Stops the server gracefully: no new connections, requests already received are served,
 * then accept returns -1. Async-signal-safe: call it from a signal handler. */
DLLAPI void FCGX_ShutdownPending(void);

/* libfcgi's fork helpers. The connection belongs to the library's threads, which a forked
 * child does not have, so a request cannot be detached: FCGX_Detach returns -1 and
 * FCGX_Attach 0. */
DLLAPI int FCGX_Attach(FCGX_Request *request);
DLLAPI int FCGX_Detach(FCGX_Request *request);

/*
 * fcgi-compat extensions, not in libfcgi: test for FCGX_COMPAT before using them, so the
 * program still builds against libfcgi.
 */
#define FCGX_COMPAT 1

/* Counters of the process's server: FastCGI connections accepted, requests finished (zeros in
 * CGI mode). 0, or -1 (and zeros) before the first accept. Either pointer may be NULL. */
DLLAPI int FCGX_CompatStats(unsigned long long *connections, unsigned long long *requests);

#if defined(__cplusplus) || defined(c_plusplus)
} /* extern "C" */
#endif

#endif /* _FCGIAPP_H */
