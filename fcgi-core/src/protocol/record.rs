//! Whole records: framing a byte stream into records, and records into bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header::{padding_for, Header, RecordType, HEADER_LEN, MAX_CONTENT_LEN, PADDING};
use super::ProtocolError;

/// Content length used when a stream is split: the largest multiple of 8 that fits a record,
/// so full records need no padding.
pub const STREAM_CHUNK: usize = MAX_CONTENT_LEN & !7;

/// One record with its padding removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub header: Header,
    pub content: Bytes,
}

impl Record {
    /// Takes the next whole record off the front of `buf`, or `Ok(None)` if it has not all
    /// arrived. The content is split off `buf` without copying.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, ProtocolError> {
        let Some(header) = Header::parse(buf)? else {
            return Ok(None);
        };
        if buf.len() < HEADER_LEN + header.body_len() {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let content = buf.split_to(header.content_len as usize).freeze();
        buf.advance(header.padding_len as usize);
        Ok(Some(Self { header, content }))
    }

    /// Bytes still needed before [`decode`](Self::decode) can return the record at the front
    /// of `buf` (at least 1 when a header is incomplete).
    pub fn bytes_wanted(buf: &[u8]) -> usize {
        match Header::parse(buf) {
            Ok(Some(header)) => (HEADER_LEN + header.body_len()).saturating_sub(buf.len()),
            Ok(None) => HEADER_LEN - buf.len(),
            Err(_) => 0,
        }
    }
}

/// Written where a response is cut short, just before the connection closes: a record header
/// no FastCGI peer accepts (version 0). FastCGI has no way to say that a response failed once
/// it began, and a web server that takes a plain close for the end of the response (nginx
/// without `fastcgi_keep_conn`) would pass a truncated body on as whole; a header it cannot
/// read makes it fail the response instead, so the HTTP client sees the truncation.
pub const CUT_SHORT: [u8; HEADER_LEN] = [0; HEADER_LEN];

/// Appends one record holding `content` (at most 65535 bytes), padded to 8.
pub fn encode_record(record_type: RecordType, request_id: u16, content: &[u8], out: &mut BytesMut) {
    let header = Header::new(record_type, request_id, u16::try_from(content.len()).expect("record content fits a u16"));
    out.reserve(HEADER_LEN + content.len() + 7);
    out.put_slice(&header.encode());
    out.put_slice(content);
    out.put_slice(&PADDING[..header.padding_len as usize]);
}

/// Appends `data` as stream records of `record_type`, split at [`STREAM_CHUNK`]. Empty `data`
/// appends nothing: ending a stream is [`encode_stream_end`]'s job.
pub fn encode_stream(record_type: RecordType, request_id: u16, data: &[u8], out: &mut BytesMut) {
    for chunk in data.chunks(STREAM_CHUNK) {
        encode_record(record_type, request_id, chunk, out);
    }
}

/// Appends the empty record that ends a stream.
pub fn encode_stream_end(record_type: RecordType, request_id: u16, out: &mut BytesMut) {
    encode_record(record_type, request_id, &[], out);
}

/// The header and padding that frame `content_len` bytes sent separately (a vectored write).
pub fn frame(record_type: RecordType, request_id: u16, content_len: usize) -> ([u8; HEADER_LEN], &'static [u8]) {
    let header = Header::new(record_type, request_id, u16::try_from(content_len).expect("record content fits a u16"));
    (header.encode(), &PADDING[..padding_for(content_len)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_whole_records_and_skips_padding() {
        let mut wire = BytesMut::new();
        encode_record(RecordType::Stdin, 1, b"hello", &mut wire);
        encode_record(RecordType::Stdin, 1, b"", &mut wire);
        assert_eq!(wire.len(), 16 + 8);
        let mut buf = BytesMut::new();
        let mut records = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            if let Some(record) = Record::decode(&mut buf).unwrap() {
                records.push(record);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(records.len(), 2);
        assert_eq!(&records[0].content[..], b"hello");
        assert_eq!(records[0].header.padding_len, 3);
        assert!(records[1].content.is_empty());
    }

    #[test]
    fn accepts_any_padding_a_sender_chooses() {
        let mut wire = BytesMut::from(&[1u8, 5, 0, 1, 0, 2, 255, 0][..]);
        wire.extend_from_slice(b"ab");
        wire.extend_from_slice(&[0xee; 255]);
        assert_eq!(Record::bytes_wanted(&wire), 0);
        let record = Record::decode(&mut wire).unwrap().unwrap();
        assert_eq!(&record.content[..], b"ab");
        assert!(wire.is_empty());
    }

    #[test]
    fn streams_split_at_chunk_size() {
        let data = vec![7u8; 5_000_000];
        let mut out = BytesMut::new();
        encode_stream(RecordType::Stdout, 3, &data, &mut out);
        let mut total = 0;
        while let Some(record) = Record::decode(&mut out).unwrap() {
            assert!(record.content.len() <= MAX_CONTENT_LEN);
            assert_eq!(record.header.request_id, 3);
            total += record.content.len();
        }
        assert_eq!(total, data.len());
    }

    #[test]
    fn frame_pads_to_eight() {
        let (header, padding) = frame(RecordType::Stdout, 1, 13);
        assert_eq!(header, [1, 6, 0, 1, 0, 13, 3, 0]);
        assert_eq!(padding.len(), 3);
    }
}
