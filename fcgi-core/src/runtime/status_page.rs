//! The status page: a snapshot of the scoreboard, written as plain text, JSON, OpenMetrics or
//! an HTML page that refreshes itself (the format chosen by the query, as PHP-FPM's is).

use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering;

use super::clock;
use super::listen_queue::Queue;
use super::scoreboard::{Scoreboard, Worker};

/// How the page is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
    OpenMetrics,
    Html,
}

/// What the query asked for: a format, and whether to list every worker (`full`).
pub(crate) fn parse_query(query: &[u8]) -> (Format, bool) {
    let mut format = Format::Text;
    let mut full = false;
    for word in query.split(|&b| b == b'&') {
        let name = word.split(|&b| b == b'=').next().unwrap_or_default();
        match name {
            b"json" => format = Format::Json,
            b"openmetrics" => format = Format::OpenMetrics,
            b"html" => format = Format::Html,
            b"text" => format = Format::Text,
            b"full" => full = true,
            _ => {}
        }
    }
    (format, full)
}

/// One process, as the page lists it.
#[derive(Debug, Clone)]
pub(crate) struct ProcessRow {
    pub pid: u32,
    pub started_unix_ms: u64,
    pub requests: u64,
    pub active: u64,
    pub waiting: u64,
    /// It is being replaced (recycled, or stuck past the request timeout): it takes no new
    /// requests and ends once its own are done.
    pub retiring: bool,
}

/// The scoreboard at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub started_unix_ms: u64,
    pub now_unix_ms: u64,
    pub now_monotonic_us: u64,
    pub connections: u64,
    pub requests: u64,
    pub by_class: [u64; 5],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub slow: u64,
    pub timed_out: u64,
    pub limit_hits: u64,
    pub workers_per_process: u64,
    pub active: u64,
    pub idle: u64,
    pub max_active: u64,
    pub waiting: u64,
    pub max_waiting: u64,
    pub listen_queue: Option<Queue>,
    pub max_listen_queue: u64,
    pub processes: Vec<ProcessRow>,
    /// Every worker thread, with `full`.
    pub workers: Option<Vec<Worker>>,
}

impl Snapshot {
    /// Takes `board` as it is now; `workers_per_process` threads serve in each process.
    pub(crate) fn take(board: &Scoreboard, workers_per_process: usize, queue: Option<Queue>, full: bool) -> Self {
        let totals = board.totals();
        let load = |count: &std::sync::atomic::AtomicU64| count.load(Ordering::Relaxed);
        let running: Vec<usize> =
            (0..board.processes()).filter(|&i| board.process(i).pid.load(Ordering::Relaxed) != 0).collect();
        let processes: Vec<ProcessRow> = running
            .iter()
            .map(|&i| {
                let block = board.process(i);
                ProcessRow {
                    pid: block.pid.load(Ordering::Relaxed),
                    started_unix_ms: load(&block.started_unix_ms),
                    requests: load(&block.requests),
                    active: load(&block.active),
                    waiting: load(&block.waiting),
                    retiring: block.retiring.load(Ordering::Relaxed) != 0,
                }
            })
            .collect();
        let active: u64 = processes.iter().map(|p| p.active).sum();
        let capacity = workers_per_process as u64 * processes.len() as u64;
        Self {
            started_unix_ms: load(&totals.started_unix_ms),
            now_unix_ms: clock::unix_millis(),
            now_monotonic_us: clock::monotonic_micros(),
            connections: load(&totals.connections),
            requests: load(&totals.requests),
            by_class: std::array::from_fn(|i| load(&totals.by_class[i])),
            bytes_in: load(&totals.bytes_in),
            bytes_out: load(&totals.bytes_out),
            slow: load(&totals.slow),
            timed_out: load(&totals.timed_out),
            limit_hits: load(&totals.limit_hits),
            workers_per_process: workers_per_process as u64,
            active,
            idle: capacity.saturating_sub(active),
            max_active: load(&totals.max_active),
            waiting: processes.iter().map(|p| p.waiting).sum(),
            max_waiting: load(&totals.max_waiting),
            listen_queue: queue,
            max_listen_queue: load(&totals.max_listen_queue),
            workers: full.then(|| running.iter().flat_map(|&i| board.workers(i)).collect()),
            processes,
        }
    }

    fn uptime_seconds(&self) -> u64 {
        self.now_unix_ms.saturating_sub(self.started_unix_ms) / 1000
    }

    /// How long `worker`'s current request has run, in µs (0 when idle).
    fn running_us(&self, worker: &Worker) -> u64 {
        if worker.state.is_busy() {
            self.now_monotonic_us.saturating_sub(worker.started_us)
        } else {
            0
        }
    }

    /// The page in `format`: its Content-Type and body.
    pub(crate) fn render(&self, format: Format) -> (&'static str, String) {
        match format {
            Format::Text => ("text/plain; charset=utf-8", self.text()),
            Format::Json => ("application/json", self.json()),
            Format::OpenMetrics => ("application/openmetrics-text; version=1.0.0; charset=utf-8", self.openmetrics()),
            Format::Html => ("text/html; charset=utf-8", self.html()),
        }
    }

    /// The server-wide fields, in the order every format lists them.
    fn fields(&self) -> Fields {
        let queue = |f: fn(&Queue) -> u64| self.listen_queue.as_ref().map_or(Field::Missing, |q| Field::Number(f(q)));
        let mut fields = vec![
            ("start_time", Field::time(self.started_unix_ms)),
            ("start_since", Field::Number(self.uptime_seconds())),
            ("accepted_connections", Field::Number(self.connections)),
            ("requests", Field::Number(self.requests)),
            ("processes", Field::Number(self.processes.len() as u64)),
            ("workers_per_process", Field::Number(self.workers_per_process)),
            ("active_workers", Field::Number(self.active)),
            ("idle_workers", Field::Number(self.idle)),
            ("max_active_workers", Field::Number(self.max_active)),
            ("waiting_requests", Field::Number(self.waiting)),
            ("max_waiting_requests", Field::Number(self.max_waiting)),
            ("listen_queue", queue(|q| q.waiting)),
            ("max_listen_queue", Field::Number(self.max_listen_queue)),
            ("listen_queue_len", queue(|q| q.backlog)),
            ("connection_limit_hits", Field::Number(self.limit_hits)),
            ("slow_requests", Field::Number(self.slow)),
            ("timed_out_requests", Field::Number(self.timed_out)),
        ];
        let classes = ["responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx", "responses_5xx"];
        fields.extend(classes.into_iter().zip(self.by_class).map(|(name, count)| (name, Field::Number(count))));
        fields.push(("bytes_in", Field::Number(self.bytes_in)));
        fields.push(("bytes_out", Field::Number(self.bytes_out)));
        fields
    }

    /// Each process's fields.
    fn process_fields(process: &ProcessRow) -> Fields {
        vec![
            ("pid", Field::Number(u64::from(process.pid))),
            ("start_time", Field::time(process.started_unix_ms)),
            ("requests", Field::Number(process.requests)),
            ("active", Field::Number(process.active)),
            ("waiting", Field::Number(process.waiting)),
            ("retiring", Field::Flag(process.retiring)),
        ]
    }

    /// Each worker's fields.
    fn worker_fields(&self, worker: &Worker) -> Fields {
        let running_us = self.running_us(worker);
        let busy = worker.state.is_busy();
        let started_ms = (self.now_unix_ms * 1000).saturating_sub(running_us) / 1000;
        let when_busy = |field: Field| if busy { field } else { Field::Missing };
        vec![
            ("pid", Field::Number(u64::from(worker.pid))),
            ("thread", Field::Number(worker.tid)),
            ("state", Field::Text(worker.state.name().to_owned())),
            ("requests", Field::Number(worker.served)),
            ("request", when_busy(Field::Text(worker.line.clone()))),
            ("request_start", when_busy(Field::time(started_ms))),
            ("request_duration_us", Field::Number(running_us)),
            ("request_body_bytes", Field::Number(if busy { worker.body_bytes } else { 0 })),
            ("last_request_duration_us", Field::Number(worker.last_duration_us)),
        ]
    }

    /// The sections of the page, each a list of entries: the server, its processes, and (with
    /// `full`) its workers.
    fn sections(&self) -> Vec<(&'static str, Vec<Fields>)> {
        let mut sections = vec![
            ("server", vec![self.fields()]),
            ("process_list", self.processes.iter().map(Self::process_fields).collect()),
        ];
        if let Some(workers) = &self.workers {
            sections.push(("workers", workers.iter().map(|w| self.worker_fields(w)).collect()));
        }
        sections
    }

    /// PHP-FPM's shape: `name: value` lines, one block per entry.
    fn text(&self) -> String {
        let mut out = String::new();
        for (_, entries) in self.sections() {
            for fields in entries {
                if !out.is_empty() {
                    out.push('\n');
                }
                for (name, value) in fields {
                    let _ = writeln!(out, "{:<28}{value}", format!("{}:", name.replace('_', " ")));
                }
            }
        }
        out
    }

    /// The server's fields as members, then `process_list` and `workers` as arrays of objects.
    fn json(&self) -> String {
        let object = |fields: &Fields| {
            let members: Vec<String> =
                fields.iter().map(|(name, value)| format!("{}:{}", json_string(name), value.json())).collect();
            members.join(",")
        };
        let mut sections = self.sections().into_iter();
        let (_, server) = sections.next().expect("the server's section comes first");
        let mut out = format!("{{{}", object(&server[0]));
        for (name, entries) in sections {
            let entries: Vec<String> = entries.iter().map(|fields| format!("{{{}}}", object(fields))).collect();
            let _ = write!(out, ",{}:[{}]", json_string(name), entries.join(","));
        }
        out.push('}');
        out
    }

    fn openmetrics(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# TYPE fcgi_{name} {kind}\n# HELP fcgi_{name} {help}");
            let suffix = if kind == "counter" { "_total" } else { "" };
            for (labels, value) in samples {
                let _ = writeln!(out, "fcgi_{name}{suffix}{labels} {value}");
            }
        };
        let one = |value: u64| [(String::new(), value)];
        family(
            "start_time_seconds",
            "gauge",
            "When the server started (Unix time).",
            &one(self.started_unix_ms / 1000),
        );
        family("connections", "counter", "Connections accepted.", &one(self.connections));
        family("requests", "counter", "Requests ended.", &one(self.requests));
        let classes: Vec<_> = (0..5).map(|i| (format!("{{class=\"{}xx\"}}", i + 1), self.by_class[i])).collect();
        family("responses", "counter", "Requests ended, by status class.", &classes);
        family("processes", "gauge", "Worker processes running.", &one(self.processes.len() as u64));
        let workers = [("{state=\"active\"}".to_owned(), self.active), ("{state=\"idle\"}".to_owned(), self.idle)];
        family("workers", "gauge", "Worker threads, by state.", &workers);
        family("max_active_workers", "gauge", "The most workers busy at once since the start.", &one(self.max_active));
        family("waiting_requests", "gauge", "Requests read and waiting for a free worker.", &one(self.waiting));
        family("max_waiting_requests", "gauge", "The most requests waiting at once.", &one(self.max_waiting));
        if let Some(queue) = &self.listen_queue {
            family("listen_queue", "gauge", "Connections waiting in the listener's accept queue.", &one(queue.waiting));
            family("listen_queue_length", "gauge", "The accept queue's size (backlog).", &one(queue.backlog));
        }
        family("max_listen_queue", "gauge", "The longest accept queue seen.", &one(self.max_listen_queue));
        family("connection_limit_hits", "counter", "Connections refused at the limit.", &one(self.limit_hits));
        family("slow_requests", "counter", "Requests that ran past the slow-request timeout.", &one(self.slow));
        family("timed_out_requests", "counter", "Requests ended at the request timeout.", &one(self.timed_out));
        family("received_bytes", "counter", "Request body bytes read.", &one(self.bytes_in));
        family("sent_bytes", "counter", "Response bytes written.", &one(self.bytes_out));
        if let Some(workers) = &self.workers {
            let label = |w: &Worker| format!("{{pid=\"{}\",thread=\"{}\"}}", w.pid, w.tid);
            let served: Vec<_> = workers.iter().map(|w| (label(w), w.served)).collect();
            family("worker_requests", "counter", "Requests each worker served.", &served);
            let busy: Vec<_> = workers.iter().map(|w| (label(w), u64::from(w.state.is_busy()))).collect();
            family("worker_busy", "gauge", "1 while the worker serves a request.", &busy);
        }
        out.push_str("# EOF\n");
        out
    }

    /// A page a person reads: a table per section, refreshing itself every 2 s.
    fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
             <title>FastCGI server status</title><style>body{font:14px system-ui,sans-serif;margin:2em}\
             table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
             th{background:#eee}.running,.writing{background:#fde9b8}</style></head><body>\n\
             <h1>FastCGI server status</h1>\n",
        );
        for (section, entries) in self.sections() {
            out.push_str("<table>\n");
            if section == "server" {
                for (name, value) in &entries[0] {
                    let _ = writeln!(
                        out,
                        "<tr><th>{}</th><td>{}</td></tr>",
                        name.replace('_', " "),
                        html_escape(&value.to_string())
                    );
                }
            } else {
                out.push_str("<tr>");
                for (name, _) in entries.first().into_iter().flatten() {
                    let _ = write!(out, "<th>{}</th>", name.replace('_', " "));
                }
                out.push_str("</tr>\n");
                for fields in &entries {
                    // A worker's row is coloured by its state.
                    let state = fields.iter().find(|(name, _)| *name == "state").map(|(_, v)| v.to_string());
                    let _ = write!(out, "<tr class=\"{}\">", state.unwrap_or_default());
                    for (_, value) in fields {
                        let _ = write!(out, "<td>{}</td>", html_escape(&value.to_string()));
                    }
                    out.push_str("</tr>\n");
                }
            }
            out.push_str("</table>\n");
        }
        if self.workers.is_none() {
            out.push_str("<p><a href=\"?html&amp;full\">every worker</a></p>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// A field's value, typed so that each format writes it its way.
#[derive(Debug, Clone)]
enum Field {
    Number(u64),
    Text(String),
    Flag(bool),
    /// Not known, or not applying (an idle worker's request): `-`, JSON's null.
    Missing,
}

type Fields = Vec<(&'static str, Field)>;

impl Field {
    /// A moment given in Unix milliseconds, as the logs print times.
    fn time(unix_ms: u64) -> Self {
        Self::Text(clock::utc((unix_ms / 1000) as i64))
    }

    fn json(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(text) => json_string(text),
            Self::Flag(yes) => yes.to_string(),
            Self::Missing => "null".to_owned(),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(text) => f.write_str(text),
            Self::Flag(yes) => f.write_str(if *yes { "yes" } else { "no" }),
            Self::Missing => f.write_str("-"),
        }
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::scoreboard::Seat;
    use std::sync::Arc;

    #[test]
    fn the_query_chooses_the_format_and_the_full_list() {
        assert_eq!(parse_query(b""), (Format::Text, false));
        assert_eq!(parse_query(b"json&full"), (Format::Json, true));
        assert_eq!(parse_query(b"full&openmetrics"), (Format::OpenMetrics, true));
        assert_eq!(parse_query(b"html"), (Format::Html, false));
    }

    #[test]
    fn every_format_shows_a_busy_worker_and_its_request() {
        let board = Arc::new(Scoreboard::new(1, 4));
        board.enter_process(0);
        let _seat = Seat::new(&board, 0, &[b"GET /slow?<x>"]);
        board.totals().max_listen_queue.fetch_max(2, Ordering::Relaxed);
        let snapshot = Snapshot::take(&board, 4, Some(Queue { waiting: 2, backlog: 128 }), true);
        assert_eq!((snapshot.active, snapshot.idle, snapshot.max_listen_queue), (1, 3, 2));
        let text = snapshot.render(Format::Text).1;
        assert!(text.contains("active workers:             1\n"), "{text}");
        let json = snapshot.render(Format::Json).1;
        assert!(json.contains("\"active_workers\":1,"), "{json}");
        assert!(json.contains("\"request\":\"GET /slow?<x>\""), "{json}");
        let metrics = snapshot.render(Format::OpenMetrics).1;
        assert!(metrics.contains("fcgi_workers{state=\"active\"} 1\n") && metrics.ends_with("# EOF\n"), "{metrics}");
        let html = snapshot.render(Format::Html).1;
        assert!(html.contains("GET /slow?&lt;x&gt;"), "{html}");
    }
}
