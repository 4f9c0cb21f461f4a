//! The BEGIN_REQUEST body: the role and the KEEP_CONN flag.

use super::ProtocolError;

/// Bit 0 of the flags: keep the connection open after this request.
pub const FLAG_KEEP_CONN: u8 = 1;

/// What the web server asks the application to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Produce a response (the CGI/1.1 role).
    Responder,
    /// Allow or deny a request; a 200 response allows it.
    Authorizer,
    /// Produce a response from STDIN and a file on the DATA stream.
    Filter,
    /// A role FastCGI 1.0 does not define.
    Unknown(u16),
}

impl Role {
    /// The role from its wire value.
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            other => Self::Unknown(other),
        }
    }

    /// The wire value of this role.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Responder => 1,
            Self::Authorizer => 2,
            Self::Filter => 3,
            Self::Unknown(other) => other,
        }
    }
}

/// A decoded BEGIN_REQUEST body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    pub role: Role,
    pub keep_conn: bool,
}

impl BeginRequest {
    /// Decodes the 8-byte body.
    pub fn parse(content: &[u8]) -> Result<Self, ProtocolError> {
        let raw: &[u8; 8] =
            content.try_into().map_err(|_| ProtocolError::MalformedBody { record_type: 1, len: content.len() })?;
        Ok(Self { role: Role::from_u16(u16::from_be_bytes([raw[0], raw[1]])), keep_conn: raw[2] & FLAG_KEEP_CONN != 0 })
    }

    /// The 8-byte body (test clients send these).
    pub fn encode(&self) -> [u8; 8] {
        let role = self.role.to_u16().to_be_bytes();
        [role[0], role[1], u8::from(self.keep_conn), 0, 0, 0, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for role in [Role::Responder, Role::Authorizer, Role::Filter, Role::Unknown(77)] {
            for keep_conn in [false, true] {
                let begin = BeginRequest { role, keep_conn };
                assert_eq!(BeginRequest::parse(&begin.encode()).unwrap(), begin);
            }
        }
    }

    #[test]
    fn wrong_size_is_malformed() {
        assert!(BeginRequest::parse(&[0, 1, 0]).is_err());
        assert!(BeginRequest::parse(&[0; 9]).is_err());
    }
}
