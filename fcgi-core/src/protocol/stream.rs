//! The streams of a request: the two the web server sends the application (STDIN, and DATA for
//! a Filter) and the two it sends back (STDOUT, STDERR).

use super::header::RecordType;

/// Which output stream a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The response (headers, then body), CGI style.
    Stdout,
    /// Log text for the web server's error log.
    Stderr,
}

impl Output {
    /// The record type that carries it.
    pub fn record_type(self) -> RecordType {
        match self {
            Self::Stdout => RecordType::Stdout,
            Self::Stderr => RecordType::Stderr,
        }
    }
}

/// Which input stream a read comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The request body.
    Stdin,
    /// The file a Filter filters.
    Data,
}
