//! Name-value pairs: the body of the PARAMS stream and of GET_VALUES records.
//!
//! Each length is one byte when below 128, else four bytes with the high bit set. A pair may
//! straddle records, so the decoder accumulates the stream (within limits) and parses pairs as
//! soon as they are complete. A claimed length is checked against the limits before anything
//! is waited for or stored, so the peer never sizes an allocation.

use bytes::{BufMut, Bytes, BytesMut};

use super::ParamsError;

/// Bounds on what one request's PARAMS may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamsLimits {
    /// Largest PARAMS stream, all pairs with their length bytes.
    pub max_total_bytes: usize,
    /// Largest single pair, name plus value.
    pub max_pair_len: usize,
    /// Most pairs in one request.
    pub max_pairs: usize,
}

impl Default for ParamsLimits {
    /// 1 MiB in all, 256 KiB a pair, 4096 pairs: far above what nginx or Apache send
    /// (their own header limits are tens of KiB), far below what could hurt.
    fn default() -> Self {
        Self { max_total_bytes: 1 << 20, max_pair_len: 256 << 10, max_pairs: 4096 }
    }
}

/// Appends one encoded pair to `out`.
pub fn encode_pair(name: &[u8], value: &[u8], out: &mut BytesMut) {
    out.reserve(name.len() + value.len() + 8);
    encode_len(name.len(), out);
    encode_len(value.len(), out);
    out.put_slice(name);
    out.put_slice(value);
}

fn encode_len(len: usize, out: &mut BytesMut) {
    if len < 0x80 {
        out.put_u8(len as u8);
    } else {
        let len = u32::try_from(len).ok().filter(|l| *l <= 0x7fff_ffff);
        out.put_u32(len.expect("a FastCGI name or value is at most 2^31-1 bytes") | 0x8000_0000);
    }
}

/// Reads one length at `src[0..]`: `Some((len, bytes used))`, or `None` if incomplete.
fn decode_len(src: &[u8]) -> Option<(u64, usize)> {
    let first = *src.first()?;
    if first < 0x80 {
        return Some((first as u64, 1));
    }
    let raw = src.get(..4)?;
    let len = u32::from_be_bytes([raw[0] & 0x7f, raw[1], raw[2], raw[3]]);
    Some((len as u64, 4))
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name_start: usize,
    name_len: usize,
    value_len: usize,
}

/// Pairs room is made for at once: what nginx's `fastcgi_params` and a browser's headers come
/// to, so that a usual request's pairs take one allocation, not five growing ones.
const USUAL_PAIRS: usize = 40;

/// Decodes a PARAMS stream fed in pieces of any size.
#[derive(Debug)]
pub struct ParamsDecoder {
    buf: BytesMut,
    parsed_to: usize,
    entries: Vec<Entry>,
    limits: ParamsLimits,
    error: Option<ParamsError>,
}

impl ParamsDecoder {
    /// A decoder that enforces `limits`.
    pub fn new(limits: ParamsLimits) -> Self {
        let entries = Vec::with_capacity(USUAL_PAIRS.min(limits.max_pairs));
        Self { buf: BytesMut::new(), parsed_to: 0, entries, limits, error: None }
    }

    /// Adds the content of one record. After the first error the rest of the stream is
    /// skipped, and the error is returned by [`finish`](Self::finish).
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.buf.len() + chunk.len() > self.limits.max_total_bytes {
            self.fail(ParamsError::TooManyBytes { limit: self.limits.max_total_bytes });
            return;
        }
        self.buf.extend_from_slice(chunk);
        if let Err(e) = self.parse_complete_pairs() {
            self.fail(e);
        }
    }

    fn fail(&mut self, error: ParamsError) {
        self.error = Some(error);
        self.buf = BytesMut::new();
        self.entries = Vec::new();
    }

    fn parse_complete_pairs(&mut self) -> Result<(), ParamsError> {
        loop {
            let rest = &self.buf[self.parsed_to..];
            let Some((name_len, a)) = decode_len(rest) else {
                return Ok(());
            };
            let Some((value_len, b)) = decode_len(&rest[a..]) else {
                return Ok(());
            };
            let pair_len = name_len + value_len;
            if pair_len > self.limits.max_pair_len as u64 {
                return Err(ParamsError::PairTooLarge { claimed: pair_len, limit: self.limits.max_pair_len });
            }
            // Both lengths are now bounded by max_pair_len, so the casts below are exact.
            if rest.len() < a + b + pair_len as usize {
                return Ok(());
            }
            if self.entries.len() == self.limits.max_pairs {
                return Err(ParamsError::TooManyPairs { limit: self.limits.max_pairs });
            }
            let name_start = self.parsed_to + a + b;
            self.entries.push(Entry { name_start, name_len: name_len as usize, value_len: value_len as usize });
            self.parsed_to = name_start + pair_len as usize;
        }
    }

    /// Ends the stream: the pairs, or why they are refused.
    pub fn finish(self) -> Result<Params, ParamsError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.parsed_to != self.buf.len() {
            return Err(ParamsError::Truncated);
        }
        Ok(Params { buf: self.buf.freeze(), entries: self.entries })
    }
}

/// A request's name-value pairs, in the order the web server sent them, as raw bytes.
#[derive(Debug, Clone, Default)]
pub struct Params {
    buf: Bytes,
    entries: Vec<Entry>,
}

impl Params {
    /// Decodes a complete block of pairs (a GET_VALUES body, a test vector).
    pub fn decode(src: &[u8], limits: ParamsLimits) -> Result<Self, ParamsError> {
        let mut decoder = ParamsDecoder::new(limits);
        decoder.feed(src);
        decoder.finish()
    }

    /// The value of the last pair named `name`: a web server that sends a name twice (nginx
    /// with `include fastcgi_params` and a later `fastcgi_param` of the same name) means the
    /// later one, as PHP-FPM and a WSGI environ read it.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.entries.iter().rev().map(|e| self.pair(e)).find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// All pairs as `(name, value)`, in the order sent (a repeated name appears each time).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().map(|e| self.pair(e))
    }

    fn pair(&self, entry: &Entry) -> (&[u8], &[u8]) {
        let value_start = entry.name_start + entry.name_len;
        (&self.buf[entry.name_start..value_start], &self.buf[value_start..value_start + entry.value_len])
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds params from pairs (CGI mode, tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut out = BytesMut::new();
        for (name, value) in pairs {
            encode_pair(name, value, &mut out);
        }
        let limits = ParamsLimits { max_total_bytes: usize::MAX, max_pair_len: usize::MAX >> 1, max_pairs: usize::MAX };
        Self::decode(&out, limits).expect("pairs we encoded decode")
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Params {}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pairs: &[(&[u8], &[u8])]) -> BytesMut {
        let mut out = BytesMut::new();
        for (n, v) in pairs {
            encode_pair(n, v, &mut out);
        }
        out
    }

    #[test]
    fn short_and_long_lengths() {
        let long = vec![b'v'; 70_000];
        let bytes = encoded(&[(b"A", b"1"), (b"LONG", &long)]);
        assert_eq!(&bytes[..4], &[1, 1, b'A', b'1']);
        assert_eq!(&bytes[4..9], &[4, 0x80, 0x01, 0x11, 0x70]);
        let params = Params::decode(&bytes, ParamsLimits::default()).unwrap();
        assert_eq!(params.len(), 2);
        assert_eq!(params.get(b"A"), Some(&b"1"[..]));
        assert_eq!(params.get(b"LONG").unwrap().len(), 70_000);
        assert_eq!(params.get(b"B"), None);
    }

    #[test]
    fn pairs_split_at_every_byte() {
        let bytes = encoded(&[(b"SCRIPT_NAME", b"/x"), (b"", b""), (&[b'n'; 200], &[b'v'; 300])]);
        for step in 1..bytes.len() {
            let mut decoder = ParamsDecoder::new(ParamsLimits::default());
            for chunk in bytes.chunks(step) {
                decoder.feed(chunk);
            }
            let params = decoder.finish().unwrap();
            let pairs: Vec<_> = params.iter().collect();
            assert_eq!(pairs[0], (&b"SCRIPT_NAME"[..], &b"/x"[..]));
            assert_eq!(pairs[1], (&b""[..], &b""[..]));
            assert_eq!(pairs[2].1.len(), 300);
        }
    }

    #[test]
    fn two_gib_claim_is_refused_before_waiting() {
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        decoder.feed(&[0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(
            decoder.finish().unwrap_err(),
            ParamsError::PairTooLarge { claimed: 0x7fff_ffff + 1, limit: 256 << 10 }
        );
    }

    #[test]
    fn limits_are_enforced_at_their_edge() {
        let limits = ParamsLimits { max_total_bytes: 100, max_pair_len: 10, max_pairs: 2 };
        assert!(Params::decode(&encoded(&[(b"12345", b"67890")]), limits).is_ok());
        assert_eq!(
            Params::decode(&encoded(&[(b"12345", b"678901")]), limits).unwrap_err(),
            ParamsError::PairTooLarge { claimed: 11, limit: 10 }
        );
        assert!(Params::decode(&encoded(&[(b"a", b""), (b"b", b"")]), limits).is_ok());
        assert_eq!(
            Params::decode(&encoded(&[(b"a", b""), (b"b", b""), (b"c", b"")]), limits).unwrap_err(),
            ParamsError::TooManyPairs { limit: 2 }
        );
        let limits = ParamsLimits { max_total_bytes: 8, max_pair_len: 10, max_pairs: 9 };
        assert!(Params::decode(&[0; 8], limits).is_ok());
        assert_eq!(Params::decode(&[0; 9], limits).unwrap_err(), ParamsError::TooManyBytes { limit: 8 });
    }

    #[test]
    fn truncated_stream_is_an_error() {
        assert_eq!(Params::decode(&[3, 1, b'a'], ParamsLimits::default()).unwrap_err(), ParamsError::Truncated);
        assert_eq!(Params::decode(&[0x80, 0], ParamsLimits::default()).unwrap_err(), ParamsError::Truncated);
    }

    #[test]
    fn a_repeated_name_means_its_last_value() {
        let params = Params::from_pairs([(&b"SCRIPT_NAME"[..], &b"/first"[..]), (b"SCRIPT_NAME", b"/last")]);
        assert_eq!(params.get(b"SCRIPT_NAME"), Some(&b"/last"[..]));
        assert_eq!(params.iter().count(), 2);
    }

    #[test]
    fn binary_names_and_values_are_kept() {
        let params = Params::from_pairs([(&b"N\0\xff"[..], &b"\x00\x80v"[..])]);
        assert_eq!(params.get(b"N\0\xff"), Some(&b"\x00\x80v"[..]));
    }
}
