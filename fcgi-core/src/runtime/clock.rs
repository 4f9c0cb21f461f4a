//! Wall-clock times as log lines print them, in UTC (a local offset cannot be read safely in a
//! threaded process), each formatted once a second per thread; and the monotonic clock that
//! processes share.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Now as the error log prints it: `2026-12-04 18:56:08 +0000`.
pub fn log_time() -> String {
    let mut out = String::new();
    LOG_TIME.with(|cached| cached.borrow_mut().push_to(&mut out, format_log_time));
    out
}

/// A moment given in Unix seconds, as the error log prints times.
pub fn utc(unix_seconds: i64) -> String {
    format_log_time(OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

fn format_log_time(t: OffsetDateTime) -> String {
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} +0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Appends now as the Common Log Format prints it (the access log's `%(t)s` without its
/// brackets): `04/Dec/2026:18:56:08 +0000`.
pub fn push_clf_time(out: &mut String) {
    CLF_TIME.with(|cached| {
        cached.borrow_mut().push_to(out, |t| {
            let month = &format!("{:?}", t.month())[..3];
            format!("{:02}/{month}/{}:{:02}:{:02}:{:02} +0000", t.day(), t.year(), t.hour(), t.minute(), t.second())
        })
    })
}

/// The seconds since the epoch now.
pub fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the epoch now.
pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Microseconds on the monotonic clock, which every process of the machine shares (unlike an
/// `Instant`, it can be compared across the processes of a scoreboard).
pub fn monotonic_micros() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC is always there on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// One formatted second.
#[derive(Default)]
struct Cached {
    second: i64,
    text: String,
}

impl Cached {
    /// Appends this second's text, formatting it with `format` when the second changed.
    fn push_to(&mut self, out: &mut String, format: impl FnOnce(OffsetDateTime) -> String) {
        let now = unix_seconds();
        if now != self.second || self.text.is_empty() {
            let at = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            self.text = format(at);
            self.second = now;
        }
        out.push_str(&self.text);
    }
}

thread_local! {
    static LOG_TIME: RefCell<Cached> = RefCell::default();
    static CLF_TIME: RefCell<Cached> = RefCell::default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_their_formats_shape() {
        let mut clf = String::new();
        push_clf_time(&mut clf);
        let (date, rest) = clf.split_once(':').unwrap();
        assert_eq!(date.len(), "04/Dec/2026".len(), "{clf}");
        assert!(rest.ends_with(" +0000"), "{clf}");
        let log = log_time();
        assert_eq!(log.len(), "2026-12-04 18:56:08 +0000".len(), "{log}");
    }
}
