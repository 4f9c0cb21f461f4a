//! What a response's CGI head says (RFC 3875 §6.3), read from the STDOUT bytes as the
//! application writes them: the status the web server will send (`Status: NNN`, else 302 for a
//! `Location`, else 200) and where the body begins. The access log and the status counts need
//! it; the bytes themselves pass on untouched.

/// The longest head looked at: past it, the status is unknown (the web server will likely
/// refuse such a head too).
pub const MAX_HEAD_BYTES: usize = 32 << 10;

/// Most header lines read from a head.
const MAX_HEADERS: usize = 128;

/// Header lines a head is first read with: most have a few, and the array is cleared before
/// each read (4 KiB for all 128).
const FEW_HEADERS: usize = 16;

/// The head of one response, fed the response's first bytes.
#[derive(Debug, Default)]
pub struct ResponseHead {
    /// The head's bytes so far, when it came in pieces or its headers are wanted later.
    buffered: Vec<u8>,
    /// Keep the whole head, for [`header`](Self::header).
    keep: bool,
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Reading,
    /// The head ended `len` bytes into the response; `status` is `None` if it did not parse.
    Read { status: Option<u16>, len: usize },
    /// No head within [`MAX_HEAD_BYTES`].
    TooLong,
}

impl ResponseHead {
    /// A head that keeps its bytes (for [`header`](Self::header)) when `keep`.
    pub fn new(keep: bool) -> Self {
        Self { keep, ..Self::default() }
    }

    /// Takes the next bytes of the response; a no-op once the head has been read.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.state != State::Reading || bytes.is_empty() {
            return;
        }
        if self.buffered.is_empty() {
            // Most heads arrive in one write: read them where they are.
            if let Some((status, len)) = parse(bytes) {
                self.state = State::Read { status, len };
                if self.keep {
                    self.buffered.extend_from_slice(&bytes[..len]);
                }
                return;
            }
        }
        let room = MAX_HEAD_BYTES - self.buffered.len();
        self.buffered.extend_from_slice(&bytes[..bytes.len().min(room)]);
        match parse(&self.buffered) {
            Some((status, len)) => {
                self.state = State::Read { status, len };
                self.buffered.truncate(if self.keep { len } else { 0 });
            }
            None if self.buffered.len() == MAX_HEAD_BYTES => {
                self.state = State::TooLong;
                self.buffered = Vec::new();
            }
            None => {}
        }
    }

    /// The response's status, once the head has been read and says one.
    pub fn status(&self) -> Option<u16> {
        match self.state {
            State::Read { status, .. } => status,
            _ => None,
        }
    }

    /// How many of the response's bytes are head, once it has been read.
    pub fn head_len(&self) -> Option<usize> {
        match self.state {
            State::Read { len, .. } => Some(len),
            _ => None,
        }
    }

    /// Whether the head is still being read (more bytes may finish it).
    pub fn is_reading(&self) -> bool {
        self.state == State::Reading
    }

    /// The value of header `name` (any case), if the head was kept and has it.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(httparse::Status::Complete((_, headers))) = httparse::parse_headers(&self.buffered, &mut headers) else {
            return None;
        };
        headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }
}

/// The status and length of the head at the start of `bytes`, if it is all there: `None` while
/// it is not, a `None` status if it does not parse.
fn parse(bytes: &[u8]) -> Option<(Option<u16>, usize)> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match httparse::parse_headers(bytes, &mut few) {
        Err(httparse::Error::TooManyHeaders) => {}
        parsed => return status_and_len(bytes, parsed),
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = httparse::parse_headers(bytes, &mut headers);
    status_and_len(bytes, parsed)
}

fn status_and_len(
    bytes: &[u8],
    parsed: httparse::Result<(usize, &[httparse::Header<'_>])>,
) -> Option<(Option<u16>, usize)> {
    match parsed {
        Ok(httparse::Status::Complete((len, headers))) => Some((Some(status_of(headers)), len)),
        Ok(httparse::Status::Partial) => None,
        // Not a head a web server takes: it answers 502 itself, so we cannot know the status.
        Err(_) => Some((None, head_end(bytes)?)),
    }
}

/// The status RFC 3875 gives a parsed head.
fn status_of(headers: &[httparse::Header<'_>]) -> u16 {
    if let Some(status) = headers.iter().find(|h| h.name.eq_ignore_ascii_case("Status")) {
        let digits = status.value.trim_ascii_start().get(..3).unwrap_or_default();
        return std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).unwrap_or(0);
    }
    if headers.iter().any(|h| h.name.eq_ignore_ascii_case("Location")) {
        302
    } else {
        200
    }
}

/// Where a head that does not parse ends: after its first empty line.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pieces: &[&[u8]]) -> ResponseHead {
        let mut head = ResponseHead::new(true);
        for piece in pieces {
            head.feed(piece);
        }
        head
    }

    #[test]
    fn the_status_comes_from_status_location_or_neither() {
        assert_eq!(read(&[b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody"]).status(), Some(404));
        assert_eq!(read(&[b"Location: /there\r\n\r\n"]).status(), Some(302));
        assert_eq!(read(&[b"Content-Type: text/plain\n\nbody"]).status(), Some(200));
        assert_eq!(read(&[b"Status:418\r\n\r\n"]).status(), Some(418));
    }

    #[test]
    fn a_head_in_pieces_is_read_once_whole_and_its_length_counts_only_the_head() {
        let head = read(&[b"Status: 201 Cre", b"ated\r\nX-A: 1\r", b"\n\r\nbody bytes"]);
        assert_eq!(head.status(), Some(201));
        assert_eq!(head.head_len(), Some("Status: 201 Created\r\nX-A: 1\r\n\r\n".len()));
        assert_eq!(head.header("x-a"), Some(&b"1"[..]));
        let unfinished = read(&[b"Status: 200 OK\r\n"]);
        assert!(unfinished.is_reading() && unfinished.status().is_none());
    }

    #[test]
    fn a_head_past_the_limit_has_no_status() {
        let mut head = ResponseHead::new(false);
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        for _ in 0..(MAX_HEAD_BYTES / line.len() + 2) {
            head.feed(line);
        }
        assert_eq!(head.status(), None);
        assert!(!head.is_reading(), "it stopped looking");
    }

    #[test]
    fn a_head_of_many_headers_is_read_whole() {
        let mut bytes = b"Status: 204 No Content\r\n".to_vec();
        for i in 0..(FEW_HEADERS * 2) {
            bytes.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\nbody");
        let head = read(&[&bytes]);
        assert_eq!((head.status(), head.head_len()), (Some(204), Some(bytes.len() - 4)));
    }

    #[test]
    fn a_head_that_does_not_parse_ends_at_its_empty_line_without_a_status() {
        let head = read(&[b"no colon here\r\n\r\nbody"]);
        assert_eq!((head.status(), head.head_len()), (None, Some("no colon here\r\n\r\n".len())));
    }
}
