//! FastCGI 1.0 on the wire, sans-IO: no sockets, threads or clocks. Bytes go in, records and
//! events come out; replies are encoded into buffers the runtime sends.

pub mod begin;
pub mod connection;
pub mod end;
mod error;
pub mod header;
pub mod management;
pub mod params;
pub mod record;
pub mod response;
pub mod response_head;
pub mod stream;

pub use begin::{BeginRequest, Role};
pub use connection::{Connection, ConnectionConfig, Event, Roles};
pub use end::{EndRequest, ProtocolStatus};
pub use error::{ParamsError, ProtocolError};
pub use header::{Header, RecordType};
pub use management::Capabilities;
pub use params::{Params, ParamsDecoder, ParamsLimits};
pub use record::Record;
pub use response::ResponseEncoder;
pub use response_head::ResponseHead;
pub use stream::{Input, Output};
