//! What went wrong with a request, as one type with a kind (hyper's `Error::is_timeout()`,
//! rustls-ffi's one result enum). The runtime's `Read`/`Write` and `io::Result` APIs carry it
//! inside an `io::Error`; each face turns [`ErrorKind::of`] into its own codes exactly once.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// The kinds of failure a face tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The web server abandoned the request (ABORT_REQUEST).
    Aborted,
    /// The web server went away (closed or reset the connection).
    Disconnected,
    /// A read or write waited past its timeout.
    TimedOut,
    /// The request ran past the server's request timeout (`timeout`): it is being ended.
    RequestTimedOut,
    /// The body passed `max_body_bytes`.
    BodyTooLarge,
    /// The body ended before CONTENT_LENGTH bytes.
    BodyTruncated,
    /// The web server broke the protocol (or sent more of one input stream than is held while
    /// the handler reads the other).
    Protocol,
    /// Anything else the system said.
    Io,
}

impl ErrorKind {
    /// The kind of `e`: the runtime's own errors carry it; a system error is classified by its
    /// `io::ErrorKind`.
    pub fn of(e: &io::Error) -> Self {
        if let Some(error) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            return error.kind;
        }
        match e.kind() {
            io::ErrorKind::ConnectionAborted => Self::Aborted,
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => {
                Self::Disconnected
            }
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Self::TimedOut,
            io::ErrorKind::FileTooLarge => Self::BodyTooLarge,
            io::ErrorKind::InvalidData => Self::Protocol,
            _ => Self::Io,
        }
    }

    /// Whether it only says that the web server left: nothing to log, nobody to answer.
    pub fn is_disconnect(self) -> bool {
        matches!(self, Self::Aborted | Self::Disconnected)
    }

    /// The `io::ErrorKind` that stands for it in an `io::Error`.
    fn io_kind(self) -> io::ErrorKind {
        match self {
            Self::Aborted => io::ErrorKind::ConnectionAborted,
            Self::Disconnected => io::ErrorKind::UnexpectedEof,
            Self::TimedOut | Self::RequestTimedOut => io::ErrorKind::TimedOut,
            Self::BodyTooLarge => io::ErrorKind::FileTooLarge,
            Self::BodyTruncated | Self::Protocol => io::ErrorKind::InvalidData,
            Self::Io => io::ErrorKind::Other,
        }
    }
}

/// A failure of the runtime's own, with its kind and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
}

impl Error {
    /// An `io::Error` carrying a runtime error of `kind`.
    pub fn io(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> io::Error {
        io::Error::new(kind.io_kind(), Self { kind, message: message.into() })
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The web server abandoned the request.
    pub(crate) fn aborted() -> io::Error {
        Self::io(ErrorKind::Aborted, "the web server aborted the request")
    }

    /// The web server broke the protocol: the connection is closed.
    pub(crate) fn protocol(e: crate::protocol::ProtocolError) -> io::Error {
        Self::io(ErrorKind::Protocol, e.to_string())
    }

    /// More of one input stream arrived than is held while the handler reads the other.
    pub(crate) fn other_stream_overflow() -> io::Error {
        Self::io(ErrorKind::Protocol, "over 1 MiB of one input stream arrived while reading the other")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_survives_the_trip_through_io_error() {
        for kind in [
            ErrorKind::Aborted,
            ErrorKind::Disconnected,
            ErrorKind::TimedOut,
            ErrorKind::BodyTooLarge,
            ErrorKind::BodyTruncated,
            ErrorKind::Protocol,
            ErrorKind::Io,
        ] {
            let e = Error::io(kind, "what happened");
            assert_eq!(ErrorKind::of(&e), kind);
            assert_eq!(e.to_string(), "what happened");
        }
        assert_eq!(ErrorKind::of(&io::ErrorKind::BrokenPipe.into()), ErrorKind::Disconnected);
        assert_eq!(ErrorKind::of(&io::Error::from_raw_os_error(libc::ECONNRESET)), ErrorKind::Disconnected);
        assert!(ErrorKind::Aborted.is_disconnect() && !ErrorKind::TimedOut.is_disconnect());
    }
}
