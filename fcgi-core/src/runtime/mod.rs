//! The blocking runtime around the protocol: listener, poller, workers, connections, CGI mode,
//! signals.

pub mod cgi;
mod connection;
pub mod listener;
mod poller;
mod pool;
mod prefork;
pub mod request;
pub mod server;
pub mod signals;

pub use listener::{Bind, Listener};
pub use request::{is_disconnect, Handler, Input, InputReader, Output, OutputWriter, Request, ServerInfo, Transport};
pub use server::{Acceptor, Served, Server, ServerConfig, Stats, StopHandle};
