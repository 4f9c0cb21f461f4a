//! The application side of one FastCGI connection, as a state machine: bytes in, events out.
//! It owns everything the connection sends (quinn-proto's `Connection` habit): the replies the
//! protocol owes the web server (GET_VALUES_RESULT, UNKNOWN_TYPE, refusals), the requests'
//! STDOUT and STDERR streams and their END_REQUESTs. The runtime hands it what the handler
//! writes and moves the slices it gives back to the socket, carrying no protocol state.

use std::io::{self, IoSlice};

use bytes::{Bytes, BytesMut};

use super::begin::{BeginRequest, Role};
use super::end::ProtocolStatus;
use super::header::{RecordType, HEADER_LEN};
use super::management::{answer_get_values, answer_unknown_type, Capabilities};
use super::params::{Params, ParamsDecoder, ParamsLimits};
use super::record::{encode_stream, Record, CUT_SHORT};
use super::response::{ResponseEncoder, OUTPUT_CAPACITY};
use super::stream::Output;
use super::{ParamsError, ProtocolError};

/// Which roles the application accepts; others are refused with UNKNOWN_ROLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub responder: bool,
    pub authorizer: bool,
    pub filter: bool,
}

impl Roles {
    /// All three roles of FastCGI 1.0.
    pub const ALL: Self = Self { responder: true, authorizer: true, filter: true };

    /// Whether `role` is accepted.
    pub fn accepts(&self, role: Role) -> bool {
        match role {
            Role::Responder => self.responder,
            Role::Authorizer => self.authorizer,
            Role::Filter => self.filter,
            Role::Unknown(_) => false,
        }
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

/// How a connection behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Bounds on each request's PARAMS.
    pub params_limits: ParamsLimits,
    /// Roles accepted.
    pub roles: Roles,
    /// Requests served at once on one connection: 1 refuses a second with CANT_MPX_CONN;
    /// more multiplexes, and refuses beyond the number with OVERLOADED.
    pub max_requests_per_conn: u16,
    /// What GET_VALUES reports.
    pub capabilities: Capabilities,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            params_limits: ParamsLimits::default(),
            roles: Roles::ALL,
            max_requests_per_conn: 1,
            capabilities: Capabilities { max_conns: 1, max_reqs: 1, mpxs_conns: false },
        }
    }
}

/// What the web server said, one step at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request began; its params follow.
    Begin { id: u16, role: Role, keep_conn: bool },
    /// The request's params are complete: the handler can start. `role` and `keep_conn` are
    /// its BEGIN_REQUEST's.
    Params { id: u16, role: Role, keep_conn: bool, params: Params },
    /// The request's params broke a limit or were malformed: answer it with an error response.
    ParamsRefused { id: u16, error: ParamsError },
    /// A chunk of the request body.
    Stdin { id: u16, data: Bytes },
    /// The request body is complete.
    StdinEnd { id: u16 },
    /// A chunk of the filter role's file.
    Data { id: u16, data: Bytes },
    /// The filter role's file is complete.
    DataEnd { id: u16 },
    /// The web server abandons the request; it still expects END_REQUEST.
    Abort { id: u16 },
}

impl Event {
    /// The request the event is about.
    pub fn id(&self) -> u16 {
        match *self {
            Self::Begin { id, .. }
            | Self::Params { id, .. }
            | Self::ParamsRefused { id, .. }
            | Self::Stdin { id, .. }
            | Self::StdinEnd { id }
            | Self::Data { id, .. }
            | Self::DataEnd { id }
            | Self::Abort { id } => id,
        }
    }
}

#[derive(Debug)]
enum Stage {
    Params(ParamsDecoder),
    Body { stdin_ended: bool, data_ended: bool },
}

#[derive(Debug)]
struct ActiveRequest {
    id: u16,
    role: Role,
    keep_conn: bool,
    stage: Stage,
}

/// The application side of one connection.
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    active: Vec<ActiveRequest>,
    /// Everything owed to the web server, framed.
    out: ResponseEncoder,
    /// Refusing every request with OVERLOADED (the application is at its connection limit).
    overloaded: bool,
    refused_overloaded: bool,
}

impl Connection {
    /// A fresh connection.
    pub fn new(config: ConnectionConfig) -> Self {
        Self::with_output_buffer(config, BytesMut::with_capacity(OUTPUT_CAPACITY))
    }

    /// A connection whose output is buffered in `buffer` (emptied first): a driver reusing the
    /// buffer of a connection that ended, see [`take_output_buffer`](Self::take_output_buffer),
    /// or an empty one for a connection whose output goes elsewhere.
    pub fn with_output_buffer(config: ConnectionConfig, buffer: BytesMut) -> Self {
        let out = ResponseEncoder::with_buffer(buffer);
        Self { config, active: Vec::new(), out, overloaded: false, refused_overloaded: false }
    }

    /// Takes the output buffer, with whatever it holds: for a connection that is done.
    pub fn take_output_buffer(&mut self) -> BytesMut {
        self.out.take_buffer()
    }

    /// A connection that refuses every request with OVERLOADED (still answering GET_VALUES):
    /// what the application says when it is at its connection limit.
    pub fn overloaded(config: ConnectionConfig) -> Self {
        Self { overloaded: true, ..Self::new(config) }
    }

    /// Whether this connection refuses every request with OVERLOADED.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// Whether a request was refused because the connection is [`overloaded`](Self::overloaded).
    pub fn has_refused_overloaded(&self) -> bool {
        self.refused_overloaded
    }

    /// Decodes records off the front of `input` until one yields an event. `Ok(None)` means
    /// more bytes are needed. An error means the connection must be closed.
    pub fn poll_event(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        while let Some(record) = Record::decode(input)? {
            if let Some(event) = self.handle_record(record)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Frames `data` on `output` of request `id`. Small data is buffered, and `send` is called
    /// only when the buffer is full; large data goes to `send` as slices (what is buffered
    /// first), never copied. `send` must write all slices or fail.
    pub fn write<F>(&mut self, id: u16, output: Output, data: &[u8], send: F) -> io::Result<()>
    where
        F: FnMut(&[IoSlice<'_>]) -> io::Result<()>,
    {
        self.out.write(output.record_type(), id, data, send)
    }

    /// Buffers `data` on `output` of request `id` if that needs no send, and says whether it
    /// did (for a caller that must not wait: one holding an interpreter lock).
    pub fn try_buffer(&mut self, id: u16, output: Output, data: &[u8]) -> bool {
        self.out.try_buffer(output.record_type(), id, data)
    }

    /// What is owed, taken, with the header and padding that frame a piece of `piece_len` bytes
    /// (at most [`STREAM_CHUNK`](super::record::STREAM_CHUNK)) on `output` of request `id`: for
    /// a writer that lets go of the connection while it sends (a multiplexed connection's), so
    /// that its reader goes on meanwhile.
    pub fn take_framed(
        &mut self,
        id: u16,
        output: Output,
        piece_len: usize,
    ) -> (BytesMut, [u8; HEADER_LEN], &'static [u8]) {
        self.out.take_framed(output.record_type(), id, piece_len)
    }

    /// Passes everything owed to `send` (as slices) and forgets it once sent.
    pub fn flush<F>(&mut self, send: F) -> io::Result<()>
    where
        F: FnMut(&[IoSlice<'_>]) -> io::Result<()>,
    {
        self.out.flush(send)
    }

    /// Bytes owed to the web server, not sent yet.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Takes everything owed to the web server (a sans-IO driver's `poll_transmit`).
    pub fn take_output(&mut self) -> BytesMut {
        self.out.buffer().split()
    }

    /// Appends the marker of a response cut short ([`CUT_SHORT`]): what the connection sends
    /// last before it closes without the request's END_REQUEST.
    pub fn cut_short(&mut self) {
        self.out.buffer().extend_from_slice(&CUT_SHORT);
    }

    /// Number of requests active on this connection.
    pub fn active_requests(&self) -> usize {
        self.active.len()
    }

    /// Whether request `id` is active.
    pub fn is_active(&self, id: u16) -> bool {
        self.position(id).is_some()
    }

    /// Ends request `id` after its response: the ends of its STDOUT stream (and STDERR if
    /// `stderr_used`), then END_REQUEST with `app_status`. Returns whether the web server asked
    /// to keep the connection (false for an inactive id, which gets nothing).
    pub fn finish_request(&mut self, id: u16, app_status: u32, stderr_used: bool) -> bool {
        if !self.is_active(id) {
            return false;
        }
        if stderr_used {
            self.out.end_stream(RecordType::Stderr, id);
        }
        self.out.end_stream(RecordType::Stdout, id);
        self.end_request(id, app_status)
    }

    /// Ends request `id` with END_REQUEST alone (an ABORT_REQUEST answered before the request
    /// reached a handler) and makes the id inactive; returns whether the web server asked to
    /// keep the connection (false for an inactive id).
    pub fn end_request(&mut self, id: u16, app_status: u32) -> bool {
        let Some(index) = self.position(id) else {
            return false;
        };
        let request = self.active.swap_remove(index);
        self.out.end_request(id, app_status, ProtocolStatus::RequestComplete);
        request.keep_conn
    }

    /// Answers request `id`, whose params were refused, with a 400 or 431 page and ends it;
    /// returns whether the web server asked to keep the connection.
    pub fn refuse_params(&mut self, id: u16, error: &ParamsError) -> bool {
        let (code, reason) = error.http_status();
        let page = format!("Status: {code} {reason}\r\nContent-Type: text/plain\r\n\r\n{code} {reason}: {error}\n");
        self.answer(id, page.as_bytes())
    }

    /// Answers request `id` with the whole response `page`, app status 1 (a refusal the
    /// runtime decides on, such as 503 for a request no worker could take), and ends it;
    /// returns whether the web server asked to keep the connection.
    pub fn answer(&mut self, id: u16, page: &[u8]) -> bool {
        encode_stream(RecordType::Stdout, id, page, self.out.buffer());
        self.finish_request(id, 1, false)
    }

    fn position(&self, id: u16) -> Option<usize> {
        self.active.iter().position(|r| r.id == id)
    }

    fn refuse(&mut self, id: u16, status: ProtocolStatus) {
        self.out.end_request(id, 0, status);
    }

    /// Applies one record.
    pub fn handle_record(&mut self, record: Record) -> Result<Option<Event>, ProtocolError> {
        let header = record.header;
        let type_byte = header.record_type.to_byte();
        if header.is_management() {
            match header.record_type {
                RecordType::GetValues => {
                    answer_get_values(&record.content, &self.config.capabilities, self.out.buffer())?
                }
                _ => answer_unknown_type(type_byte, self.out.buffer()),
            }
            return Ok(None);
        }
        let id = header.request_id;
        match header.record_type {
            RecordType::BeginRequest => self.begin(id, BeginRequest::parse(&record.content)?),
            RecordType::AbortRequest => Ok(self.is_active(id).then_some(Event::Abort { id })),
            RecordType::Params | RecordType::Stdin | RecordType::Data => {
                self.stream(id, header.record_type, record.content)
            }
            // Types a later protocol version may add to requests: skipped, as the spec intends.
            RecordType::Unknown(_) => Ok(None),
            _ => Err(ProtocolError::UnexpectedRecordType(type_byte)),
        }
    }

    fn begin(&mut self, id: u16, begin: BeginRequest) -> Result<Option<Event>, ProtocolError> {
        if self.is_active(id) {
            return Err(ProtocolError::DuplicateBegin(id));
        }
        if self.overloaded {
            self.refuse(id, ProtocolStatus::Overloaded);
            self.refused_overloaded = true;
            return Ok(None);
        }
        if !self.config.roles.accepts(begin.role) {
            self.refuse(id, ProtocolStatus::UnknownRole);
            return Ok(None);
        }
        if self.active.len() >= usize::from(self.config.max_requests_per_conn) {
            let status = if self.config.max_requests_per_conn <= 1 {
                ProtocolStatus::CantMpxConn
            } else {
                ProtocolStatus::Overloaded
            };
            self.refuse(id, status);
            return Ok(None);
        }
        self.active.push(ActiveRequest {
            id,
            role: begin.role,
            keep_conn: begin.keep_conn,
            stage: Stage::Params(ParamsDecoder::new(self.config.params_limits)),
        });
        Ok(Some(Event::Begin { id, role: begin.role, keep_conn: begin.keep_conn }))
    }

    fn stream(&mut self, id: u16, kind: RecordType, content: Bytes) -> Result<Option<Event>, ProtocolError> {
        let type_byte = kind.to_byte();
        // While an id is inactive (never begun, refused, or ended) its records are ignored
        // (FastCGI 1.0, section 3.3): a late or stray record must not cost the requests that
        // are active their connection.
        let Some(index) = self.position(id) else {
            return Ok(None);
        };
        let out_of_order = ProtocolError::OutOfOrder { record_type: type_byte, request_id: id };
        let request = &mut self.active[index];
        match (&mut request.stage, kind) {
            (Stage::Params(decoder), RecordType::Params) => {
                if !content.is_empty() {
                    decoder.feed(&content);
                    return Ok(None);
                }
                let Stage::Params(decoder) =
                    std::mem::replace(&mut request.stage, Stage::Body { stdin_ended: false, data_ended: false })
                else {
                    unreachable!("matched Stage::Params above");
                };
                let (role, keep_conn) = (request.role, request.keep_conn);
                Ok(Some(match decoder.finish() {
                    Ok(params) => Event::Params { id, role, keep_conn, params },
                    Err(error) => Event::ParamsRefused { id, error },
                }))
            }
            (Stage::Body { stdin_ended, .. }, RecordType::Stdin) if !*stdin_ended => {
                if content.is_empty() {
                    *stdin_ended = true;
                    Ok(Some(Event::StdinEnd { id }))
                } else {
                    Ok(Some(Event::Stdin { id, data: content }))
                }
            }
            (Stage::Body { data_ended, .. }, RecordType::Data) if !*data_ended => {
                if content.is_empty() {
                    *data_ended = true;
                    Ok(Some(Event::DataEnd { id }))
                } else {
                    Ok(Some(Event::Data { id, data: content }))
                }
            }
            _ => Err(out_of_order),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::end::EndRequest;
    use crate::protocol::params::encode_pair;
    use crate::protocol::record::{encode_record, encode_stream_end};

    fn begin(id: u16, role: Role, keep_conn: bool, out: &mut BytesMut) {
        encode_record(RecordType::BeginRequest, id, &BeginRequest { role, keep_conn }.encode(), out);
    }

    fn params(id: u16, pairs: &[(&[u8], &[u8])], out: &mut BytesMut) {
        let mut body = BytesMut::new();
        for (n, v) in pairs {
            encode_pair(n, v, &mut body);
        }
        // One byte a record: pairs straddle records everywhere.
        for byte in body.iter() {
            encode_record(RecordType::Params, id, &[*byte], out);
        }
        encode_stream_end(RecordType::Params, id, out);
    }

    fn events(conn: &mut Connection, input: &mut BytesMut) -> Result<Vec<Event>, ProtocolError> {
        let mut all = Vec::new();
        while let Some(event) = conn.poll_event(input)? {
            all.push(event);
        }
        Ok(all)
    }

    fn replies(conn: &mut Connection) -> Vec<Record> {
        let mut out = conn.take_output();
        std::iter::from_fn(|| Record::decode(&mut out).unwrap()).collect()
    }

    /// A connection with request 1 begun (KEEP_CONN) in `role`, its params in: the events.
    fn opened(role: Role) -> (Connection, Vec<Event>) {
        let mut input = BytesMut::new();
        begin(1, role, true, &mut input);
        params(1, &[], &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        let got = events(&mut conn, &mut input).unwrap();
        (conn, got)
    }

    /// The (id, protocol status) of each END_REQUEST the connection owes.
    fn refusals(conn: &mut Connection) -> Vec<(u16, ProtocolStatus)> {
        replies(conn)
            .iter()
            .map(|r| (r.header.request_id, EndRequest::parse(&r.content).unwrap().protocol_status))
            .collect()
    }

    #[test]
    fn a_whole_request() {
        let mut input = BytesMut::new();
        begin(1, Role::Responder, true, &mut input);
        params(1, &[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"3")], &mut input);
        encode_record(RecordType::Stdin, 1, b"abc", &mut input);
        encode_stream_end(RecordType::Stdin, 1, &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        let got = events(&mut conn, &mut input).unwrap();
        assert_eq!(got[0], Event::Begin { id: 1, role: Role::Responder, keep_conn: true });
        let Event::Params { params, .. } = &got[1] else { panic!("{got:?}") };
        assert_eq!(params.get(b"REQUEST_METHOD"), Some(&b"POST"[..]));
        assert_eq!(got[2], Event::Stdin { id: 1, data: Bytes::from_static(b"abc") });
        assert_eq!(got[3], Event::StdinEnd { id: 1 });
        assert!(conn.end_request(1, 0));
        assert_eq!(&conn.take_output()[..], &[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(conn.active_requests(), 0);
    }

    #[test]
    fn the_connection_frames_the_response_and_ends_the_request() {
        let (mut conn, got) = opened(Role::Authorizer);
        let Event::Params { role, keep_conn, .. } = &got[1] else { panic!("{got:?}") };
        assert_eq!((*role, *keep_conn), (Role::Authorizer, true), "Params carries what BEGIN said");
        let mut sent = Vec::new();
        let mut send = |slices: &[IoSlice<'_>]| {
            slices.iter().for_each(|s| sent.extend_from_slice(s));
            Ok(())
        };
        conn.write(1, Output::Stdout, b"Status: 200 OK\r\n\r\nhi", &mut send).unwrap();
        assert!(conn.try_buffer(1, Output::Stderr, b"log"));
        let big = vec![7u8; 100_000];
        conn.write(1, Output::Stdout, &big, &mut send).unwrap();
        assert!(conn.finish_request(1, 0, true));
        conn.flush(&mut send).unwrap();
        assert_eq!(conn.pending_output(), 0);
        let mut wire = BytesMut::from(&sent[..]);
        let records: Vec<Record> = std::iter::from_fn(|| Record::decode(&mut wire).unwrap()).collect();
        let stdout: Vec<u8> = records
            .iter()
            .filter(|r| r.header.record_type == RecordType::Stdout)
            .flat_map(|r| r.content.to_vec())
            .collect();
        assert_eq!(stdout.len(), 20 + big.len());
        let kinds: Vec<RecordType> = records.iter().rev().take(3).map(|r| r.header.record_type).collect();
        assert_eq!(kinds, [RecordType::EndRequest, RecordType::Stdout, RecordType::Stderr], "ends, then END_REQUEST");
        assert!(records.iter().rev().nth(1).unwrap().content.is_empty(), "STDOUT's end");
        assert!(!conn.finish_request(1, 0, false), "an ended id gets nothing");
        assert_eq!(conn.pending_output(), 0);
    }

    #[test]
    fn second_request_without_multiplexing_is_cant_mpx() {
        let mut input = BytesMut::new();
        begin(1, Role::Responder, false, &mut input);
        begin(2, Role::Responder, false, &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        assert_eq!(events(&mut conn, &mut input).unwrap().len(), 1);
        assert_eq!(refusals(&mut conn), [(2, ProtocolStatus::CantMpxConn)]);
    }

    #[test]
    fn multiplexing_up_to_the_limit_then_overloaded() {
        let config = ConnectionConfig { max_requests_per_conn: 2, ..ConnectionConfig::default() };
        let mut input = BytesMut::new();
        for id in 1..=3 {
            begin(id, Role::Responder, true, &mut input);
        }
        let mut conn = Connection::new(config);
        assert_eq!(events(&mut conn, &mut input).unwrap().len(), 2);
        assert_eq!(refusals(&mut conn), [(3, ProtocolStatus::Overloaded)]);
    }

    #[test]
    fn an_overloaded_connection_refuses_every_request() {
        let mut input = BytesMut::new();
        begin(1, Role::Responder, true, &mut input);
        let mut conn = Connection::overloaded(ConnectionConfig::default());
        assert!(events(&mut conn, &mut input).unwrap().is_empty());
        assert!(conn.has_refused_overloaded());
        assert_eq!(refusals(&mut conn), [(1, ProtocolStatus::Overloaded)]);
    }

    #[test]
    fn unknown_and_refused_roles_get_unknown_role_and_their_records_are_ignored() {
        let config = ConnectionConfig { roles: Roles { filter: false, ..Roles::ALL }, ..ConnectionConfig::default() };
        let mut input = BytesMut::new();
        begin(1, Role::Unknown(9), false, &mut input);
        begin(2, Role::Filter, false, &mut input);
        params(2, &[(b"A", b"B")], &mut input);
        let mut conn = Connection::new(config);
        assert!(events(&mut conn, &mut input).unwrap().is_empty());
        assert_eq!(refusals(&mut conn), [(1, ProtocolStatus::UnknownRole), (2, ProtocolStatus::UnknownRole)]);
    }

    #[test]
    fn management_records() {
        let mut input = BytesMut::new();
        let mut query = BytesMut::new();
        encode_pair(b"FCGI_MAX_REQS", b"", &mut query);
        encode_record(RecordType::GetValues, 0, &query, &mut input);
        encode_record(RecordType::Unknown(42), 0, b"??", &mut input);
        encode_record(RecordType::Stdin, 0, b"", &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        assert!(events(&mut conn, &mut input).unwrap().is_empty());
        let replies = replies(&mut conn);
        assert_eq!(replies[0].header.record_type, RecordType::GetValuesResult);
        assert_eq!(&replies[1].content[..], &[42, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&replies[2].content[..], &[5, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn violations_are_errors() {
        type Build = fn(&mut BytesMut);
        let cases: Vec<(&str, Build)> = vec![
            ("duplicate begin", |b| {
                begin(1, Role::Responder, false, b);
                begin(1, Role::Responder, false, b);
            }),
            ("stdin before params end", |b| {
                begin(1, Role::Responder, false, b);
                encode_record(RecordType::Stdin, 1, b"x", b);
            }),
            ("stdout from the server", |b| encode_record(RecordType::Stdout, 1, b"x", b)),
            ("short begin body", |b| encode_record(RecordType::BeginRequest, 1, b"\0\x01", b)),
        ];
        for (name, build) in cases {
            let mut input = BytesMut::new();
            build(&mut input);
            let mut conn = Connection::new(ConnectionConfig::default());
            assert!(events(&mut conn, &mut input).is_err(), "{name}");
        }
    }

    #[test]
    fn records_for_ids_never_begun_are_ignored_and_the_active_request_goes_on() {
        let mut input = BytesMut::new();
        begin(1, Role::Responder, false, &mut input);
        encode_record(RecordType::Stdin, 7, b"stray", &mut input);
        encode_record(RecordType::Params, 9, b"\x01\x01ab", &mut input);
        encode_record(RecordType::Data, 3, b"x", &mut input);
        params(1, &[], &mut input);
        encode_record(RecordType::Stdin, 1, b"body", &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        let events = events(&mut conn, &mut input).unwrap();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[2], Event::Stdin { id: 1, data: Bytes::from_static(b"body") });
    }

    #[test]
    fn records_for_ended_ids_are_ignored() {
        let (mut conn, got) = opened(Role::Responder);
        assert_eq!(got.len(), 2);
        conn.end_request(1, 0);
        let mut input = BytesMut::new();
        conn.take_output();
        encode_record(RecordType::Stdin, 1, b"late", &mut input);
        encode_record(RecordType::AbortRequest, 1, b"", &mut input);
        assert!(events(&mut conn, &mut input).unwrap().is_empty());
    }

    #[test]
    fn oversized_params_refuse_the_request_not_the_connection() {
        let mut input = BytesMut::new();
        begin(1, Role::Responder, true, &mut input);
        encode_record(RecordType::Params, 1, &[0xff, 0xff, 0xff, 0xff, 0x01], &mut input);
        encode_stream_end(RecordType::Params, 1, &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        let got = events(&mut conn, &mut input).unwrap();
        assert!(matches!(got[1], Event::ParamsRefused { id: 1, error: ParamsError::PairTooLarge { .. } }));
    }

    #[test]
    fn abort_is_reported_for_active_requests() {
        let mut input = BytesMut::new();
        begin(7, Role::Responder, false, &mut input);
        encode_record(RecordType::AbortRequest, 7, b"", &mut input);
        let mut conn = Connection::new(ConnectionConfig::default());
        assert_eq!(events(&mut conn, &mut input).unwrap()[1], Event::Abort { id: 7 });
    }
}
