//! The END_REQUEST body: the application's exit status and the protocol status.

use super::ProtocolError;

/// How a request ended, as far as the protocol is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// Normal end.
    RequestComplete,
    /// A second request on a connection that does not multiplex.
    CantMpxConn,
    /// The application is out of a resource (connections, requests).
    Overloaded,
    /// A role the application does not know or does not accept.
    UnknownRole,
    /// A value FastCGI 1.0 does not define (only ever decoded).
    Other(u8),
}

impl ProtocolStatus {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(other) => other,
        }
    }

    /// The status from its wire byte.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }
}

/// A decoded END_REQUEST body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    pub app_status: u32,
    pub protocol_status: ProtocolStatus,
}

impl EndRequest {
    /// The 8-byte body.
    pub fn encode(&self) -> [u8; 8] {
        let status = self.app_status.to_be_bytes();
        [status[0], status[1], status[2], status[3], self.protocol_status.to_byte(), 0, 0, 0]
    }

    /// Decodes the 8-byte body (test clients read these).
    pub fn parse(content: &[u8]) -> Result<Self, ProtocolError> {
        let raw: &[u8; 8] =
            content.try_into().map_err(|_| ProtocolError::MalformedBody { record_type: 3, len: content.len() })?;
        Ok(Self {
            app_status: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            protocol_status: ProtocolStatus::from_byte(raw[4]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let end = EndRequest { app_status: 0xdead_beef, protocol_status: ProtocolStatus::UnknownRole };
        assert_eq!(end.encode(), [0xde, 0xad, 0xbe, 0xef, 3, 0, 0, 0]);
        assert_eq!(EndRequest::parse(&end.encode()).unwrap(), end);
    }
}
