//! The status page: a snapshot of the scoreboard, written as plain text, JSON, OpenMetrics or
//! an HTML page that refreshes itself (the format chosen by the query, as PHP-FPM's is).

use std::fmt::Write as _;
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
        if let Some(queue) = queue {
            totals.max_listen_queue.fetch_max(queue.waiting, Ordering::Relaxed);
        }
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

    /// The server-wide fields, in the order every format lists them: (name, value).
    fn fields(&self) -> Vec<(&'static str, String)> {
        let queue = |f: fn(&Queue) -> u64| self.listen_queue.as_ref().map_or("-".to_owned(), |q| f(q).to_string());
        let mut fields = vec![
            ("start_time", clock::utc((self.started_unix_ms / 1000) as i64)),
            ("start_since", self.uptime_seconds().to_string()),
            ("accepted_connections", self.connections.to_string()),
            ("requests", self.requests.to_string()),
            ("processes", self.processes.len().to_string()),
            ("workers_per_process", self.workers_per_process.to_string()),
            ("active_workers", self.active.to_string()),
            ("idle_workers", self.idle.to_string()),
            ("max_active_workers", self.max_active.to_string()),
            ("waiting_requests", self.waiting.to_string()),
            ("max_waiting_requests", self.max_waiting.to_string()),
            ("listen_queue", queue(|q| q.waiting)),
            ("max_listen_queue", self.max_listen_queue.to_string()),
            ("listen_queue_len", queue(|q| q.backlog)),
            ("connection_limit_hits", self.limit_hits.to_string()),
            ("slow_requests", self.slow.to_string()),
            ("timed_out_requests", self.timed_out.to_string()),
        ];
        for (class, count) in self.by_class.iter().enumerate() {
            fields.push((
                ["responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx", "responses_5xx"][class],
                count.to_string(),
            ));
        }
        fields.push(("bytes_in", self.bytes_in.to_string()));
        fields.push(("bytes_out", self.bytes_out.to_string()));
        fields
    }

    /// Each worker's fields: (name, value).
    fn worker_fields(&self, worker: &Worker) -> Vec<(&'static str, String)> {
        let running_us = self.running_us(worker);
        let busy = worker.state.is_busy();
        let started =
            busy.then(|| clock::utc(((self.now_unix_ms * 1000).saturating_sub(running_us) / 1_000_000) as i64));
        vec![
            ("pid", worker.pid.to_string()),
            ("thread", worker.tid.to_string()),
            ("state", worker.state.name().to_owned()),
            ("requests", worker.served.to_string()),
            ("request", if busy { worker.line.clone() } else { "-".to_owned() }),
            ("request_start", started.unwrap_or_else(|| "-".to_owned())),
            ("request_duration_us", running_us.to_string()),
            ("request_body_bytes", if busy { worker.body_bytes.to_string() } else { "0".to_owned() }),
            ("last_request_duration_us", worker.last_duration_us.to_string()),
        ]
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (name, value) in self.fields() {
            let _ = writeln!(out, "{:<24}{value}", format!("{}:", name.replace('_', " ")));
        }
        for process in &self.processes {
            let _ = writeln!(
                out,
                "\nprocess {}: started {}, {} requests, {} active, {} waiting{}",
                process.pid,
                clock::utc((process.started_unix_ms / 1000) as i64),
                process.requests,
                process.active,
                process.waiting,
                if process.retiring { ", retiring" } else { "" }
            );
        }
        for worker in self.workers.iter().flatten() {
            out.push_str("\n************************\n");
            for (name, value) in self.worker_fields(worker) {
                let _ = writeln!(out, "{:<28}{value}", format!("{}:", name.replace('_', " ")));
            }
        }
        out
    }

    fn json(&self) -> String {
        let object = |fields: Vec<(&str, String)>, numeric: &dyn Fn(&str) -> bool| {
            let members: Vec<String> = fields
                .into_iter()
                .map(|(name, value)| {
                    let value = if numeric(&value) { value } else { json_string(&value) };
                    format!("{}:{value}", json_string(name))
                })
                .collect();
            format!("{{{}}}", members.join(","))
        };
        let is_number = |value: &str| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        let mut out = object(self.fields(), &is_number);
        out.pop();
        let processes: Vec<String> = self
            .processes
            .iter()
            .map(|p| {
                format!(
                    "{{\"pid\":{},\"start_time\":{},\"requests\":{},\"active\":{},\"waiting\":{},\"retiring\":{}}}",
                    p.pid,
                    json_string(&clock::utc((p.started_unix_ms / 1000) as i64)),
                    p.requests,
                    p.active,
                    p.waiting,
                    p.retiring
                )
            })
            .collect();
        let _ = write!(out, ",\"process_list\":[{}]", processes.join(","));
        if let Some(workers) = &self.workers {
            // A request line may be all digits: only the counts are numbers.
            let numeric = |value: &str| is_number(value);
            let workers: Vec<String> = workers
                .iter()
                .map(|w| {
                    let mut fields = self.worker_fields(w);
                    for (name, value) in &mut fields {
                        if *name == "request" || *name == "request_start" {
                            *value = json_string(value);
                        }
                    }
                    object(fields, &|value| numeric(value) || value.starts_with('"'))
                })
                .collect();
            let _ = write!(out, ",\"workers\":[{}]", workers.join(","));
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

    fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
             <title>FastCGI server status</title><style>body{font:14px system-ui,sans-serif;margin:2em}\
             table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
             th{background:#eee}.running,.writing{background:#fde9b8}</style></head><body>\n\
             <h1>FastCGI server status</h1>\n<table>\n",
        );
        for (name, value) in self.fields() {
            let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", name.replace('_', " "), html_escape(&value));
        }
        out.push_str(
            "</table>\n<table><tr><th>pid</th><th>started</th><th>requests</th><th>active</th><th>waiting</th><th>retiring</th></tr>\n",
        );
        for p in &self.processes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.pid,
                clock::utc((p.started_unix_ms / 1000) as i64),
                p.requests,
                p.active,
                p.waiting,
                if p.retiring { "yes" } else { "no" }
            );
        }
        out.push_str("</table>\n");
        if let Some(workers) = &self.workers {
            out.push_str("<table><tr>");
            for (name, _) in workers.first().map(|w| self.worker_fields(w)).unwrap_or_default() {
                let _ = write!(out, "<th>{}</th>", name.replace('_', " "));
            }
            out.push_str("</tr>\n");
            for worker in workers {
                let _ = write!(out, "<tr class=\"{}\">", worker.state.name());
                for (_, value) in self.worker_fields(worker) {
                    let _ = write!(out, "<td>{}</td>", html_escape(&value));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table>\n");
        } else {
            out.push_str("<p><a href=\"?html&amp;full\">every worker</a></p>\n");
        }
        out.push_str("</body></html>\n");
        out
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
        let snapshot = Snapshot::take(&board, 4, Some(Queue { waiting: 2, backlog: 128 }), true);
        assert_eq!((snapshot.active, snapshot.idle, snapshot.max_listen_queue), (1, 3, 2));
        let text = snapshot.render(Format::Text).1;
        assert!(text.contains("active workers:         1\n"), "{text}");
        let json = snapshot.render(Format::Json).1;
        assert!(json.contains("\"active_workers\":1,"), "{json}");
        assert!(json.contains("\"request\":\"GET /slow?<x>\""), "{json}");
        let metrics = snapshot.render(Format::OpenMetrics).1;
        assert!(metrics.contains("fcgi_workers{state=\"active\"} 1\n") && metrics.ends_with("# EOF\n"), "{metrics}");
        let html = snapshot.render(Format::Html).1;
        assert!(html.contains("GET /slow?&lt;x&gt;"), "{html}");
    }
}
