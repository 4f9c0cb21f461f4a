#!/usr/bin/env python3
"""Writes the seed corpus: corpus/<target>/seed-* (committed; libFuzzer's finds are ignored).

Run from anywhere: python3 fcgi-core/fuzz/make_seeds.py
"""

import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent

BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA, GET_VALUES = 1, 2, 4, 5, 8, 9
RESPONDER, FILTER = 1, 3
KEEP_CONN = 1


def record(kind, request_id, content=b"", padding=None):
    """One record, padded to 8 unless a padding length is given."""
    if padding is None:
        padding = -len(content) % 8
    return struct.pack(">BBHHBx", 1, kind, request_id, len(content), padding) + content + b"\0" * padding


def length(n):
    return bytes([n]) if n < 0x80 else struct.pack(">I", n | 0x80000000)


def pair(name, value):
    return length(len(name)) + length(len(value)) + name + value


def pairs(items):
    return b"".join(pair(n, v) for n, v in items)


GET_PARAMS = pairs(
    [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/index.cgi"),
        (b"QUERY_STRING", b"a=1&b=2"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"HTTP_USER_AGENT", b"u" * 130),  # a 4-byte value length
    ]
)
GET_VALUES_QUERY = pairs([(b"FCGI_MAX_CONNS", b""), (b"FCGI_MAX_REQS", b""), (b"FCGI_MPXS_CONNS", b"")])
TWO_GIB_PAIR = b"\xff\xff\xff\xff\x01"  # name length 2^31-1, value length 1


def request(request_id, role=RESPONDER, keep_conn=True, params=GET_PARAMS, stdin=b""):
    begin = struct.pack(">HB5x", role, KEEP_CONN if keep_conn else 0)
    # The params split mid-pair across two records, as web servers may.
    cut = len(params) // 2
    out = record(BEGIN_REQUEST, request_id, begin)
    out += record(PARAMS, request_id, params[:cut]) + record(PARAMS, request_id, params[cut:], padding=255)
    out += record(PARAMS, request_id)
    if stdin:
        out += record(STDIN, request_id, stdin)
    return out + record(STDIN, request_id)


GET_REQUEST = request(1)
STREAMS = {
    "get-request": GET_REQUEST,
    "get-values": record(GET_VALUES, 0, GET_VALUES_QUERY),
    "two-gib-pair": record(BEGIN_REQUEST, 1, struct.pack(">HB5x", RESPONDER, 0))
    + record(PARAMS, 1, TWO_GIB_PAIR)
    + record(PARAMS, 1),
    "truncated-header": GET_REQUEST + record(STDIN, 1, b"late")[:5],
}
SEEDS = {
    "record_stream": STREAMS,
    # First byte: where the stream is split (proportionally, 0..255).
    "params": {
        "get-request": b"\x80" + GET_PARAMS,
        "get-values": b"\x10" + GET_VALUES_QUERY,
        "two-gib-pair": b"\x00" + TWO_GIB_PAIR,
        "truncated-pair": b"\xff" + GET_PARAMS[:-3],
    },
    # First byte: the config (bit 0 multiplexes, bits 1-3 refuse responder/authorizer/filter).
    "connection": {
        **{name: b"\x00" + stream for name, stream in STREAMS.items()},
        "multiplexed": b"\x01"
        + record(BEGIN_REQUEST, 1, struct.pack(">HB5x", RESPONDER, KEEP_CONN))
        + request(2, role=FILTER, stdin=b"body")
        + record(DATA, 2, b"file")
        + record(DATA, 2)
        + record(ABORT_REQUEST, 1)
        + request(3, keep_conn=False),
    },
}

# connection_flood: byte 0 is the config (bits 0-1: 1, 2, 3 or 8 requests at once; bit 2
# overloaded; bit 3 tight PARAMS limits; bit 4 refuses the filter role), then moves of three
# bytes (op, a, b); see fuzz_targets/connection_flood.rs. Ids are a % 8 + 1.
RAW, MGMT_BURST, GET_VALUES_BURST, BEGIN, PARAMS_STREAM, BODY, ABORT, STRAY, CUT, CUT_INTO = range(10)
KEEP = 4  # BEGIN's b: bits 0-1 role (0 responder, 1 authorizer, 2 filter, 3 unknown), bit 2 keep_conn


def flood(knobs, *moves):
    out = bytes([knobs])
    for move in moves:
        if move[0] == RAW:
            out += bytes([RAW, len(move[1]), 0]) + move[1]
        else:
            out += bytes(move)
    return out


FLOOD_SEEDS = {
    # One request, a 64 KiB burst of UNKNOWN_TYPE (type 42) and GET_VALUES while its body comes
    # in cut chunks, with a stall, a stray record and an ABORT for an id never begun.
    "flood-during-request": flood(
        0x01,
        (BEGIN, 0, KEEP),
        (PARAMS_STREAM, 0, 0x32),
        (MGMT_BURST, 127, 42),
        (CUT, 0, 1),
        (STRAY, 3, 0x25),
        (GET_VALUES_BURST, 3, 3),
        (BODY, 0, 20),
        (ABORT, 1, 0),
        (CUT_INTO, 5, 0),
        (BODY, 0, 0),
    ),
    # Eight at once, interleaved: begins, params, bodies, DATA for a filter, ABORTs; a burst
    # between each step and cuts inside records.
    "interleaved": flood(
        0x03,
        (BEGIN, 0, KEEP),
        (BEGIN, 1, KEEP | 2),
        (BEGIN, 2, KEEP | 3),
        (CUT_INTO, 3, 1),
        (PARAMS_STREAM, 1, 0x14),
        (PARAMS_STREAM, 0, 0x22),
        (MGMT_BURST, 0, 200),
        (BODY, 1, 9),
        (BODY, 1, 0),
        (BODY, 1, 7),
        (BODY, 1, 1),
        (STRAY, 9, 0x31),
        (BODY, 0, 100),
        (ABORT, 0, 0),
        (CUT, 0, 1),
        (BEGIN, 0, 0),
        (PARAMS_STREAM, 0, 0x40),
        (BODY, 0, 0),
    ),
    # An overloaded connection: every BEGIN refused, its records then for an inactive id.
    "overloaded": flood(
        0x04,
        (BEGIN, 0, KEEP),
        (PARAMS_STREAM, 0, 0x12),
        (BODY, 0, 0),
        (GET_VALUES_BURST, 10, 64),
        (BEGIN, 1, 0),
        (ABORT, 1, 0),
    ),
    # Tight PARAMS limits: params refused, then the body of the refused request.
    "params-refused": flood(
        0x08,
        (BEGIN, 0, KEEP),
        (PARAMS_STREAM, 0, 0x0E),
        (BODY, 0, 30),
        (BODY, 0, 0),
        (BEGIN, 1, KEEP),
    ),
    # Raw bytes: a whole request written by hand, cut in the middle of its params.
    "raw-request": flood(0x00, (RAW, GET_REQUEST[:100]), (CUT, 0, 1), (RAW, GET_REQUEST[100:200])),
}
SEEDS["connection_flood"] = FLOOD_SEEDS


def main():
    for target, seeds in SEEDS.items():
        directory = HERE / "corpus" / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
