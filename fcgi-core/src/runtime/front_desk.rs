//! The server's own pages, answered before any worker is needed: the status page
//! (`status_path`) and ping (`ping_path`), PHP-FPM's names. The pool asks the desk about each
//! request before handing it to a worker, and while every worker of every process is busy a
//! thread of the desk's own listens in their place (`Pool::keep_front_desk`): it answers these
//! pages and queues any other request for the next free worker. So the status page answers
//! exactly when it matters most, which PHP-FPM's in-band page does not (it needed
//! `pm.status_listen`).

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::allow_list::AllowList;
use super::config::ServerConfig;
use super::context::Context;
use super::listen_queue::{ListenQueue, Queue};
use super::request::Request;
use super::scoreboard::Scoreboard;
use super::status_page::{self, Snapshot};

/// The pages the server answers itself, and who may see them.
pub(crate) struct FrontDesk {
    status_path: Option<Vec<u8>>,
    ping_path: Option<Vec<u8>>,
    allow: AllowList,
    /// One measure at a time: a Unix listener's is a netlink exchange on one socket.
    listen_queue: Mutex<ListenQueue>,
}

/// The answer to a client the allow list leaves out: as if there were no such page.
const NOT_FOUND: &[u8] = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNot Found\n";

const PONG: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nContent-Length: 5\r\n\r\npong\n";

impl FrontDesk {
    /// The desk for `config` on the listener `listener_fd`; `None` when it has no page.
    pub(crate) fn new(config: &ServerConfig, listener_fd: i32) -> Option<Self> {
        if config.status_path.is_none() && config.ping_path.is_none() {
            return None;
        }
        Some(Self {
            status_path: config.status_path.as_ref().map(|p| p.as_bytes().to_vec()),
            ping_path: config.ping_path.as_ref().map(|p| p.as_bytes().to_vec()),
            allow: config.status_allow.clone(),
            listen_queue: Mutex::new(ListenQueue::new(listener_fd)),
        })
    }

    /// Answers `request` if it asks for one of the desk's pages, and says whether it did (the
    /// caller then drops it, which ends it).
    pub(crate) fn answers(&self, request: &mut Request<'_>, ctx: &Context) -> bool {
        let path = [request.param("SCRIPT_NAME").unwrap_or_default(), request.param("PATH_INFO").unwrap_or_default()];
        let is = |page: &Option<Vec<u8>>| {
            page.as_ref().is_some_and(|p| {
                p.len() == path[0].len() + path[1].len() && p.starts_with(path[0]) && p.ends_with(path[1])
            })
        };
        let (status, ping) = (is(&self.status_path), is(&self.ping_path));
        if !status && !ping {
            return false;
        }
        let allowed = self.allow.allows(request.param("REMOTE_ADDR").unwrap_or_default());
        let _ = if !allowed {
            request.write_stdout(NOT_FOUND)
        } else if ping {
            request.write_stdout(PONG)
        } else {
            let (format, full) = status_page::parse_query(request.param("QUERY_STRING").unwrap_or_default());
            let workers = ctx.info.workers;
            let board = ctx.stats.scoreboard();
            let snapshot = Snapshot::take(board, workers, self.measure(board), full);
            let (content_type, body) = snapshot.render(format);
            let head = format!(
                "Status: 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            request.write_stdout(head.as_bytes()).and_then(|()| request.write_stdout(body.as_bytes()))
        };
        true
    }

    /// The listener's accept queue now, noted on `board` as the longest seen if it is.
    pub(crate) fn measure(&self, board: &Scoreboard) -> Option<Queue> {
        let queue = self.listen_queue.lock().unwrap_or_else(|p| p.into_inner()).measure();
        if let Some(queue) = queue {
            board.totals().max_listen_queue.fetch_max(queue.waiting, Ordering::Relaxed);
        }
        queue
    }
}
