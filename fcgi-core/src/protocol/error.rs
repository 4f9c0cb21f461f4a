//! What can be wrong with the bytes a web server sends.

use std::fmt;

/// A violation of FastCGI 1.0 on a connection. The connection cannot continue; the runtime
/// logs it and closes the connection cleanly, and other connections are unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The version byte was not 1.
    UnsupportedVersion(u8),
    /// A record of a type the application side never receives (STDOUT, END_REQUEST, ...).
    UnexpectedRecordType(u8),
    /// A record body with the wrong size for its type.
    MalformedBody { record_type: u8, len: usize },
    /// BEGIN_REQUEST for an id that is already active.
    DuplicateBegin(u16),
    /// A stream record arriving out of order (STDIN before PARAMS ended, STDIN after its end).
    OutOfOrder { record_type: u8, request_id: u16 },
    /// GET_VALUES carried malformed name-value pairs.
    Params(ParamsError),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion(v) => write!(f, "unsupported FastCGI version {v}"),
            Self::UnexpectedRecordType(t) => write!(f, "record type {t} is never sent to an application"),
            Self::MalformedBody { record_type, len } => {
                write!(f, "record type {record_type} with a malformed {len}-byte body")
            }
            Self::DuplicateBegin(id) => write!(f, "BEGIN_REQUEST for active request {id}"),
            Self::OutOfOrder { record_type, request_id } => {
                write!(f, "record type {record_type} out of order for request {request_id}")
            }
            Self::Params(e) => write!(f, "GET_VALUES: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// What can be wrong with a request's name-value pairs. The request is refused with an error
/// response; the connection itself stays usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    /// One pair's name plus value is longer than the configured limit (a 2 GiB claim lands here).
    PairTooLarge { claimed: u64, limit: usize },
    /// The whole PARAMS stream is longer than the configured limit.
    TooManyBytes { limit: usize },
    /// More pairs than the configured limit.
    TooManyPairs { limit: usize },
    /// The stream ended in the middle of a pair.
    Truncated,
}

impl ParamsError {
    /// The HTTP status of the page that refuses such params: 400 for a broken stream, 431 for
    /// one over a limit.
    pub fn http_status(&self) -> (u16, &'static str) {
        match self {
            Self::Truncated => (400, "Bad Request"),
            _ => (431, "Request Header Fields Too Large"),
        }
    }
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PairTooLarge { claimed, limit } => {
                write!(f, "a name-value pair claims {claimed} bytes, over the {limit}-byte limit")
            }
            Self::TooManyBytes { limit } => write!(f, "params exceed {limit} bytes"),
            Self::TooManyPairs { limit } => write!(f, "more than {limit} params"),
            Self::Truncated => write!(f, "params end inside a name-value pair"),
        }
    }
}

impl std::error::Error for ParamsError {}
