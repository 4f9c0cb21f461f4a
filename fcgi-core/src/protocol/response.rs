//! Encoding what the application sends: STDOUT and STDERR streams and END_REQUEST.
//!
//! Small writes are copied into one buffer, so a typical response (headers, a short body, the
//! stream end and END_REQUEST) leaves in a single write. A large body is never copied: it is
//! handed on as header, body slice and padding for one vectored write, behind whatever was
//! buffered before it.

use std::io::{self, IoSlice};

use bytes::BytesMut;

use super::end::{EndRequest, ProtocolStatus};
use super::header::{RecordType, HEADER_LEN};
use super::record::{encode_record, encode_stream, encode_stream_end, frame, STREAM_CHUNK};

/// Writes up to this size are copied into the buffer; larger ones go out vectored.
pub const COALESCE_MAX: usize = 16 << 10;
/// The buffer asks to be flushed once it holds this much.
pub const FLUSH_AT: usize = 64 << 10;
/// The buffer's capacity: room to reach [`FLUSH_AT`] with a record to spare.
pub const OUTPUT_CAPACITY: usize = FLUSH_AT + 8 * 1024;

/// Buffers and frames one connection's outgoing records.
#[derive(Debug, Default)]
pub struct ResponseEncoder {
    buf: BytesMut,
}

impl ResponseEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::with_buffer(BytesMut::with_capacity(OUTPUT_CAPACITY))
    }

    /// An encoder that buffers into `buf`, emptied: a driver reusing the buffer of a connection
    /// that ended (of [`OUTPUT_CAPACITY`], as [`new`](Self::new) makes it), or an empty one for
    /// an encoder that will not be used.
    pub fn with_buffer(mut buf: BytesMut) -> Self {
        buf.clear();
        Self { buf }
    }

    /// Takes the buffer, leaving none (for a driver to reuse it once the connection is done).
    pub fn take_buffer(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Frames `data` as `kind` records of request `id`. Small data is buffered, and `send` is
    /// called only when the buffer is full; large data is passed to `send` as slices (the
    /// buffered bytes first) without being copied. `send` must write all slices or fail.
    pub fn write<F>(&mut self, kind: RecordType, id: u16, data: &[u8], mut send: F) -> io::Result<()>
    where
        F: FnMut(&[IoSlice<'_>]) -> io::Result<()>,
    {
        if data.len() <= COALESCE_MAX {
            encode_stream(kind, id, data, &mut self.buf);
            if self.buf.len() >= FLUSH_AT {
                return self.flush(send);
            }
            return Ok(());
        }
        for chunk in data.chunks(STREAM_CHUNK) {
            let (header, padding) = frame(kind, id, chunk.len());
            send(&[IoSlice::new(&self.buf), IoSlice::new(&header), IoSlice::new(chunk), IoSlice::new(padding)])?;
            self.buf.clear();
        }
        Ok(())
    }

    /// For a caller that sends without holding the encoder (so that others may buffer
    /// meanwhile): what is buffered, taken, and the header and padding that frame `piece_len`
    /// bytes (at most [`STREAM_CHUNK`]) as a `kind` record of request `id`, to send in that
    /// order around the piece.
    pub fn take_framed(
        &mut self,
        kind: RecordType,
        id: u16,
        piece_len: usize,
    ) -> (BytesMut, [u8; HEADER_LEN], &'static [u8]) {
        debug_assert!(piece_len <= STREAM_CHUNK);
        let (header, padding) = frame(kind, id, piece_len);
        (self.buf.split(), header, padding)
    }

    /// Buffers `data` if it fits without a flush, and says whether it did: a caller that must
    /// not block (one holding an interpreter lock) writes small chunks this way and does the
    /// real write, which may wait for the web server, only when this says no.
    pub fn try_buffer(&mut self, kind: RecordType, id: u16, data: &[u8]) -> bool {
        let framed = data.len() + data.len().div_ceil(STREAM_CHUNK).max(1) * 16;
        if data.len() > COALESCE_MAX || self.buf.len() + framed >= FLUSH_AT {
            return false;
        }
        encode_stream(kind, id, data, &mut self.buf);
        true
    }

    /// Buffers the end of the `kind` stream.
    pub fn end_stream(&mut self, kind: RecordType, id: u16) {
        encode_stream_end(kind, id, &mut self.buf);
    }

    /// Buffers an END_REQUEST.
    pub fn end_request(&mut self, id: u16, app_status: u32, protocol_status: ProtocolStatus) {
        encode_record(RecordType::EndRequest, id, &EndRequest { app_status, protocol_status }.encode(), &mut self.buf);
    }

    /// The buffer, for callers that encode records themselves (the connection's replies).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether anything waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Passes the buffered bytes to `send` and clears the buffer.
    pub fn flush<F>(&mut self, mut send: F) -> io::Result<()>
    where
        F: FnMut(&[IoSlice<'_>]) -> io::Result<()>,
    {
        if self.buf.is_empty() {
            return Ok(());
        }
        send(&[IoSlice::new(&self.buf)])?;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record::Record;

    fn collect(out: &mut Vec<u8>) -> impl FnMut(&[IoSlice<'_>]) -> io::Result<()> + '_ {
        |slices| {
            for s in slices {
                out.extend_from_slice(s);
            }
            Ok(())
        }
    }

    #[test]
    fn small_writes_coalesce_into_one_send() {
        let mut encoder = ResponseEncoder::new();
        let mut sends = 0;
        for _ in 0..10 {
            encoder
                .write(RecordType::Stdout, 1, b"abc", |_| {
                    sends += 1;
                    Ok(())
                })
                .unwrap();
        }
        encoder.end_stream(RecordType::Stdout, 1);
        encoder.end_request(1, 0, ProtocolStatus::RequestComplete);
        assert_eq!(sends, 0);
        let mut wire = Vec::new();
        encoder.flush(collect(&mut wire)).unwrap();
        assert_eq!(wire.len(), 10 * 16 + 8 + 16);
    }

    #[test]
    fn try_buffer_never_needs_a_send() {
        let mut encoder = ResponseEncoder::new();
        assert!(!encoder.try_buffer(RecordType::Stdout, 1, &[0; COALESCE_MAX + 1]));
        let mut buffered = 0;
        while encoder.try_buffer(RecordType::Stdout, 1, &[0; 1000]) {
            buffered += 1;
        }
        let len = encoder.buffer().len();
        assert_eq!(len, buffered * 1008);
        assert!(len < FLUSH_AT && len + 1016 >= FLUSH_AT, "fills the buffer up to the flush mark: {len}");
    }

    #[test]
    fn large_writes_are_framed_without_copying() {
        let body = vec![9u8; 200_000];
        let mut encoder = ResponseEncoder::new();
        encoder.write(RecordType::Stdout, 1, b"Status: 200\r\n\r\n", |_| unreachable!()).unwrap();
        let mut wire = Vec::new();
        let mut slices_seen = Vec::new();
        encoder
            .write(RecordType::Stdout, 1, &body, |slices| {
                slices_seen.push(slices.len());
                for s in slices {
                    wire.extend_from_slice(s);
                }
                Ok(())
            })
            .unwrap();
        assert!(encoder.is_empty());
        assert_eq!(slices_seen, vec![4; 4]);
        let mut buf = BytesMut::from(&wire[..]);
        let mut content = Vec::new();
        while let Some(record) = Record::decode(&mut buf).unwrap() {
            assert_eq!(record.header.padding_len as usize, crate::protocol::header::padding_for(record.content.len()));
            content.extend_from_slice(&record.content);
        }
        assert_eq!(content.len(), 15 + body.len());
    }
}
