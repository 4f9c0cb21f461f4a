//! FastCGI 1.0 for applications.
//!
//! - [`protocol`]: the sans-IO engine: record codec, name-value pairs, the connection state
//!   machine with its management replies, roles, KEEP_CONN, multiplexing and abort.
//! - The runtime around it: a listener (fd 0 as mod_fcgid and spawn-fcgi give it, a Unix or TCP
//!   address, systemd sockets), worker threads, the CGI fallback and graceful shutdown, serving
//!   any [`Handler`].

pub mod protocol;
pub mod runtime;

pub use protocol::{ConnectionConfig, Params, ParamsLimits, Role, Roles};
pub use runtime::error::{Error, ErrorKind};
pub use runtime::lifecycle::{Lifecycle, NoHooks};
pub use runtime::settings;
pub use runtime::{
    Accepted, Acceptor, Bind, Handler, Input, Output, Request, Served, Server, ServerConfig, ServerInfo, Stats,
    StopHandle, Transport,
};
