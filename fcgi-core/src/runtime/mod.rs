//! The blocking runtime around the protocol: listener, poller, workers, connections, CGI mode,
//! signals.

mod acceptor;
mod access_log;
mod allow_list;
pub mod cgi;
mod clock;
mod config;
mod connection;
mod context;
pub mod error;
mod front_desk;
mod graceful;
mod in_series;
mod inputs;
pub mod lifecycle;
mod listen_queue;
pub mod listener;
pub mod logging;
mod multiplexed;
mod poller;
mod pool;
mod pool_size;
mod prefork;
pub mod request;
mod scoreboard;
pub mod server;
pub mod settings;
pub mod signals;
mod slow_log;
mod socket_io;
mod stats;
mod status_page;
mod stop;
mod thread_id;
mod watchdog;

pub use acceptor::{Accepted, Acceptor, Served};
pub use access_log::{AccessFormat, DEFAULT_FORMAT as DEFAULT_ACCESS_FORMAT};
pub use allow_list::{AllowList, AllowListError};
pub use config::ServerConfig;
pub use listener::{Bind, Listener};
pub use request::{is_disconnect, Handler, Input, InputReader, Output, OutputWriter, Request, ServerInfo, Transport};
pub use server::Server;
pub use stats::Stats;
pub use stop::StopHandle;
pub use thread_id::thread_ident;
