/*
 * fastcgi.h: the FastCGI 1.0 wire format (record header, BEGIN_REQUEST and END_REQUEST
 * bodies, record types, roles, status codes), as the FastCGI specification lays it out.
 *
 * Part of fcgi-compat, the libfcgi drop-in of this project: a program written for libfcgi's
 * fastcgi.h compiles against this one unchanged. The library itself never uses these structs
 * to parse anything (the Rust core does); they are here for programs that build or inspect
 * records themselves.
 *
 * Multi-byte numbers are big-endian and split into bytes: B1 is the high byte, B0 the low one.
 */
#ifndef _FASTCGI_H
#define _FASTCGI_H

/* The file descriptor on which a web server that spawns the application (mod_fcgid,
 * spawn-fcgi, lighttpd) hands over the listening socket. */
#define FCGI_LISTENSOCK_FILENO 0

/* Every record starts with this 8-byte header; contentLength bytes of content and
 * paddingLength bytes of padding follow. */
typedef struct {
    unsigned char version;
    unsigned char type;
    unsigned char requestIdB1;
    unsigned char requestIdB0;
    unsigned char contentLengthB1;
    unsigned char contentLengthB0;
    unsigned char paddingLength;
    unsigned char reserved;
} FCGI_Header;

/* The largest content one record can carry. */
#define FCGI_MAX_LENGTH 0xffff

/* The size of FCGI_Header on the wire. */
#define FCGI_HEADER_LEN 8

/* The value of FCGI_Header.version. */
#define FCGI_VERSION_1 1

/* Values of FCGI_Header.type. */
#define FCGI_BEGIN_REQUEST 1
#define FCGI_ABORT_REQUEST 2
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_DATA 8
#define FCGI_GET_VALUES 9
#define FCGI_GET_VALUES_RESULT 10
#define FCGI_UNKNOWN_TYPE 11
#define FCGI_MAXTYPE (FCGI_UNKNOWN_TYPE)

/* The request id of management records (GET_VALUES and its answer, UNKNOWN_TYPE). */
#define FCGI_NULL_REQUEST_ID 0

/* The content of a BEGIN_REQUEST record. */
typedef struct {
    unsigned char roleB1;
    unsigned char roleB0;
    unsigned char flags;
    unsigned char reserved[5];
} FCGI_BeginRequestBody;

typedef struct {
    FCGI_Header header;
    FCGI_BeginRequestBody body;
} FCGI_BeginRequestRecord;

/* FCGI_BeginRequestBody.flags: keep the connection open after this request. */
#define FCGI_KEEP_CONN 1

/* FCGI_BeginRequestBody.role. */
#define FCGI_RESPONDER 1
#define FCGI_AUTHORIZER 2
#define FCGI_FILTER 3

/* The content of an END_REQUEST record. */
typedef struct {
    unsigned char appStatusB3;
    unsigned char appStatusB2;
    unsigned char appStatusB1;
    unsigned char appStatusB0;
    unsigned char protocolStatus;
    unsigned char reserved[3];
} FCGI_EndRequestBody;

typedef struct {
    FCGI_Header header;
    FCGI_EndRequestBody body;
} FCGI_EndRequestRecord;

/* FCGI_EndRequestBody.protocolStatus. */
#define FCGI_REQUEST_COMPLETE 0
#define FCGI_CANT_MPX_CONN 1
#define FCGI_OVERLOADED 2
#define FCGI_UNKNOWN_ROLE 3

/* The variables a GET_VALUES record may ask about. */
#define FCGI_MAX_CONNS "FCGI_MAX_CONNS"
#define FCGI_MAX_REQS "FCGI_MAX_REQS"
#define FCGI_MPXS_CONNS "FCGI_MPXS_CONNS"

/* The content of an UNKNOWN_TYPE record: the type that was not understood. */
typedef struct {
    unsigned char type;
    unsigned char reserved[7];
} FCGI_UnknownTypeBody;

typedef struct {
    FCGI_Header header;
    FCGI_UnknownTypeBody body;
} FCGI_UnknownTypeRecord;

#endif /* _FASTCGI_H */
