//! The 8-byte record header that starts every FastCGI record.

use super::ProtocolError;

/// The only protocol version FastCGI 1.0 defines.
pub const VERSION_1: u8 = 1;
/// Length of a record header on the wire.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (`contentLength` is a u16).
pub const MAX_CONTENT_LEN: usize = 0xffff;
/// The request id of management records.
pub const MANAGEMENT_ID: u16 = 0;

/// The record types of FastCGI 1.0, plus any other value as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    BeginRequest,
    AbortRequest,
    EndRequest,
    Params,
    Stdin,
    Stdout,
    Stderr,
    Data,
    GetValues,
    GetValuesResult,
    UnknownType,
    /// A type byte FastCGI 1.0 does not define; kept so it can be echoed in UNKNOWN_TYPE.
    Unknown(u8),
}

impl RecordType {
    /// The type from its wire byte.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            other => Self::Unknown(other),
        }
    }

    /// The wire byte of this type.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::BeginRequest => 1,
            Self::AbortRequest => 2,
            Self::EndRequest => 3,
            Self::Params => 4,
            Self::Stdin => 5,
            Self::Stdout => 6,
            Self::Stderr => 7,
            Self::Data => 8,
            Self::GetValues => 9,
            Self::GetValuesResult => 10,
            Self::UnknownType => 11,
            Self::Unknown(other) => other,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub record_type: RecordType,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// A header for `content_len` bytes of content, padded to a multiple of 8 as the spec recommends.
    pub fn new(record_type: RecordType, request_id: u16, content_len: u16) -> Self {
        Self { record_type, request_id, content_len, padding_len: padding_for(content_len as usize) as u8 }
    }

    /// Decodes a header from the first 8 bytes of `src`; `Ok(None)` when fewer are available.
    pub fn parse(src: &[u8]) -> Result<Option<Self>, ProtocolError> {
        let Some(raw) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if raw[0] != VERSION_1 {
            return Err(ProtocolError::UnsupportedVersion(raw[0]));
        }
        Ok(Some(Self {
            record_type: RecordType::from_byte(raw[1]),
            request_id: u16::from_be_bytes([raw[2], raw[3]]),
            content_len: u16::from_be_bytes([raw[4], raw[5]]),
            padding_len: raw[6],
        }))
    }

    /// The 8 wire bytes of this header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_len.to_be_bytes();
        [VERSION_1, self.record_type.to_byte(), id[0], id[1], len[0], len[1], self.padding_len, 0]
    }

    /// Whether this is a management record (request id 0).
    pub fn is_management(&self) -> bool {
        self.request_id == MANAGEMENT_ID
    }

    /// Content plus padding: the bytes that follow the header.
    pub fn body_len(&self) -> usize {
        self.content_len as usize + self.padding_len as usize
    }
}

/// Padding that brings `content_len` to a multiple of 8.
pub fn padding_for(content_len: usize) -> usize {
    content_len.wrapping_neg() & 7
}

/// Zero bytes to slice padding from.
pub const PADDING: [u8; 8] = [0; 8];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        for byte in 0..=255u8 {
            let header = Header::new(RecordType::from_byte(byte), 0x1234, 0xfffe);
            let parsed = Header::parse(&header.encode()).unwrap().unwrap();
            assert_eq!(parsed, header);
            assert_eq!(parsed.record_type.to_byte(), byte);
        }
    }

    #[test]
    fn partial_header_needs_more() {
        assert_eq!(Header::parse(&[1, 6, 0, 1, 0, 0, 0]).unwrap(), None);
    }

    #[test]
    fn rejects_other_versions() {
        assert_eq!(Header::parse(&[2, 6, 0, 1, 0, 0, 0, 0]), Err(ProtocolError::UnsupportedVersion(2)));
    }

    #[test]
    fn pads_to_eight() {
        assert_eq!(padding_for(0), 0);
        assert_eq!(padding_for(1), 7);
        assert_eq!(padding_for(8), 0);
        assert_eq!(padding_for(65535), 1);
        assert_eq!(Header::new(RecordType::Stdout, 1, 13).encode(), [1, 6, 0, 1, 0, 13, 3, 0]);
    }
}
