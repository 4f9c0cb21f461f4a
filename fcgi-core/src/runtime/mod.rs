//! The blocking runtime around the protocol: listener, poller, workers, connections, CGI mode,
//! signals.

pub mod cgi;
mod connection;
pub mod error;
mod graceful;
mod inputs;
pub mod lifecycle;
pub mod listener;
mod multiplexed;
mod poller;
mod pool;
mod prefork;
pub mod request;
pub mod server;
pub mod settings;
pub mod signals;
mod socket_io;

pub use listener::{Bind, Listener};
pub use request::{is_disconnect, Handler, Input, InputReader, Output, OutputWriter, Request, ServerInfo, Transport};
pub use server::{Acceptor, Served, Server, ServerConfig, Stats, StopHandle};
