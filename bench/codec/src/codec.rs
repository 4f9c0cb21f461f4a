//! The codec micro-benchmark: FastCGI decoding and encoding with no sockets, in MB/s of wire
//! bytes. Each case copies its bytes once, as the read or write of a socket would: decoding
//! appends the wire to the connection's input buffer in 64 KiB reads, encoding hands its slices
//! to a sender that copies them out. Every case runs for `--seconds`, `--rounds` times; the
//! median round is printed, one JSON object a line.
//!
//! ```text
//! codec [--seconds S] [--rounds N]
//! ```

use std::hint::black_box;
use std::io::{self, IoSlice};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::{encode_record, encode_stream, encode_stream_end};
use fcgi_core::protocol::{
    BeginRequest, Connection, ConnectionConfig, Event, Params, ParamsLimits, ProtocolStatus, RecordType,
    ResponseEncoder, Role,
};

/// What nginx sends for `GET /hello` with the stock `fastcgi_params`, plus the bench's own.
const NGINX_PARAMS: [(&str, &str); 22] = [
    ("QUERY_STRING", ""),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", ""),
    ("REQUEST_URI", "/hello"),
    ("DOCUMENT_URI", "/hello"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "http"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.22.1"),
    ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_PORT", "54312"),
    ("SERVER_ADDR", "127.0.0.1"),
    ("SERVER_PORT", "8080"),
    ("SERVER_NAME", "localhost"),
    ("REDIRECT_STATUS", "200"),
    ("PATH_INFO", "/hello"),
    ("HTTP_HOST", "127.0.0.1:8080"),
    ("HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
];

const READ_SIZE: usize = 64 << 10;
const HELLO_HEAD: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n";

struct Case {
    name: &'static str,
    /// What one operation is.
    unit: &'static str,
    /// Wire bytes one operation handles.
    bytes_per_op: usize,
    run: Box<dyn FnMut() -> usize>,
}

fn main() {
    let (seconds, rounds) = parse_args();
    let cases = vec![
        decode_case("decode-params", "request", 0),
        decode_case("decode-stdin-1MiB", "request", 1 << 20),
        encode_case("encode-stdout-hello", "response", &[HELLO_HEAD, b"Hello, world!"]),
        encode_case("encode-stdout-4KiB-writes", "4 KiB write", &[&[b'x'; 4096]]),
        encode_case("encode-stdout-256KiB-writes", "256 KiB write", &[&[b'x'; 256 << 10]]),
        params_case(),
    ];
    for mut case in cases {
        let mut results: Vec<(f64, f64)> = (0..rounds).map(|_| measure(&mut case, seconds)).collect();
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mb_per_s, ops_per_s) = results[results.len() / 2];
        println!(
            "{{\"case\": \"{}\", \"unit\": \"{}\", \"bytes_per_op\": {}, \"mb_per_s\": {:.1}, \"ops_per_s\": {:.0}}}",
            case.name, case.unit, case.bytes_per_op, mb_per_s, ops_per_s
        );
    }
}

fn parse_args() -> (f64, usize) {
    let (mut seconds, mut rounds) = (1.0, 3);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--seconds" => seconds = value.parse().expect("--seconds takes a number"),
            "--rounds" => rounds = value.parse().expect("--rounds takes a count"),
            _ => panic!("usage: codec [--seconds S] [--rounds N]"),
        }
    }
    (seconds, rounds.max(1))
}

/// Runs the case in batches until `seconds` pass: (MB/s, operations/s).
fn measure(case: &mut Case, seconds: f64) -> (f64, f64) {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let (mut ops, mut bytes) = (0usize, 0usize);
    while start.elapsed() < budget {
        for _ in 0..16 {
            bytes += (case.run)();
            ops += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    (bytes as f64 / elapsed / 1e6, ops as f64 / elapsed)
}

fn params_block() -> BytesMut {
    let mut block = BytesMut::new();
    for (name, value) in NGINX_PARAMS {
        encode_pair(name.as_bytes(), value.as_bytes(), &mut block);
    }
    block
}

/// One request as nginx sends it on a kept connection: BEGIN_REQUEST, PARAMS, STDIN.
fn request_wire(body_len: usize) -> Vec<u8> {
    let mut wire = BytesMut::new();
    let begin = BeginRequest { role: Role::Responder, keep_conn: true }.encode();
    encode_record(RecordType::BeginRequest, 1, &begin, &mut wire);
    encode_stream(RecordType::Params, 1, &params_block(), &mut wire);
    encode_stream_end(RecordType::Params, 1, &mut wire);
    encode_stream(RecordType::Stdin, 1, &vec![b'x'; body_len], &mut wire);
    encode_stream_end(RecordType::Stdin, 1, &mut wire);
    wire.to_vec()
}

/// Requests decoded by the connection state machine, one after another on one connection, the
/// wire arriving in 64 KiB reads.
fn decode_case(name: &'static str, unit: &'static str, body_len: usize) -> Case {
    let wire = request_wire(body_len);
    let mut connection = Connection::new(ConnectionConfig::default());
    let mut input = BytesMut::with_capacity(2 * READ_SIZE);
    let bytes_per_op = wire.len();
    let run = move || {
        let mut body = 0usize;
        for read in wire.chunks(READ_SIZE) {
            input.extend_from_slice(read);
            while let Some(event) = connection.poll_event(&mut input).expect("the wire is valid") {
                match event {
                    Event::Params { params, .. } => body += black_box(params).len(),
                    Event::Stdin { data, .. } => body += black_box(data).len(),
                    Event::StdinEnd { id } => {
                        connection.end_request(id, 0);
                        let _ = connection.flush(|slices| {
                            black_box(slices);
                            Ok(())
                        });
                    }
                    _ => {}
                }
            }
        }
        black_box(body);
        bytes_per_op
    };
    Case { name, unit, bytes_per_op, run: Box::new(run) }
}

/// The PARAMS body alone, decoded into name-value pairs.
fn params_case() -> Case {
    let block = params_block().to_vec();
    let bytes_per_op = block.len();
    let run = move || {
        let params = Params::decode(black_box(&block), ParamsLimits::default()).expect("the params are valid");
        black_box(params.len());
        bytes_per_op
    };
    Case { name: "decode-params-pairs", unit: "params set", bytes_per_op, run: Box::new(run) }
}

/// Writes framed as STDOUT by the response encoder, then the stream's end and END_REQUEST, the
/// encoded slices copied out as a socket write would.
fn encode_case(name: &'static str, unit: &'static str, writes: &[&[u8]]) -> Case {
    let writes: Vec<Vec<u8>> = writes.iter().map(|w| w.to_vec()).collect();
    let mut encoder = ResponseEncoder::new();
    let mut sent: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut run = move || {
        sent.clear();
        let mut send = |slices: &[IoSlice<'_>]| -> io::Result<()> {
            for slice in slices {
                sent.extend_from_slice(slice);
            }
            Ok(())
        };
        for data in &writes {
            encoder.write(RecordType::Stdout, 1, data, &mut send).expect("the sender never fails");
        }
        encoder.end_stream(RecordType::Stdout, 1);
        encoder.end_request(1, 0, ProtocolStatus::RequestComplete);
        encoder.flush(&mut send).expect("the sender never fails");
        black_box(&sent);
        sent.len()
    };
    let bytes_per_op = run();
    Case { name, unit, bytes_per_op, run: Box::new(run) }
}
