//! The blocking runtime around the protocol: listener, poller, workers, connections, CGI mode,
//! signals.

mod acceptor;
mod access_log;
pub mod cgi;
mod clock;
mod config;
mod connection;
mod context;
pub mod error;
mod graceful;
mod in_series;
mod inputs;
pub mod lifecycle;
pub mod listener;
pub mod logging;
mod multiplexed;
pub mod pid_file;
mod poller;
mod pool;
mod prefork;
pub mod privileges;
pub mod request;
pub mod server;
pub mod settings;
pub mod signals;
mod slow_log;
mod socket_io;
mod stats;
mod stop;
mod thread_id;

pub use acceptor::{Accepted, Acceptor, Served};
pub use access_log::{AccessFormat, DEFAULT_FORMAT as DEFAULT_ACCESS_FORMAT};
pub use config::ServerConfig;
pub use listener::{Bind, Listener};
pub use request::{is_disconnect, Handler, Input, InputReader, Output, OutputWriter, Request, ServerInfo, Transport};
pub use server::Server;
pub use stats::Stats;
pub use stop::StopHandle;
