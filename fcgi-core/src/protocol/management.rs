//! Management records (request id 0): GET_VALUES and UNKNOWN_TYPE.

use bytes::BytesMut;

use super::header::{RecordType, MANAGEMENT_ID};
use super::params::{encode_pair, Params, ParamsLimits};
use super::record::encode_record;
use super::ProtocolError;

/// The variables a web server may ask for with GET_VALUES, and their true values here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// FCGI_MAX_CONNS: connections served at once.
    pub max_conns: u32,
    /// FCGI_MAX_REQS: requests served at once.
    pub max_reqs: u32,
    /// FCGI_MPXS_CONNS: whether one connection may carry several requests at once.
    pub mpxs_conns: bool,
}

/// Limits for a GET_VALUES body: it names at most three short variables, so anything
/// bigger is hostile.
const GET_VALUES_LIMITS: ParamsLimits = ParamsLimits { max_total_bytes: 4096, max_pair_len: 1024, max_pairs: 64 };

/// Appends the GET_VALUES_RESULT for a GET_VALUES body: only the known names asked for, in the
/// order asked; unknown names are left out, as the spec says.
pub fn answer_get_values(query: &[u8], caps: &Capabilities, out: &mut BytesMut) -> Result<(), ProtocolError> {
    let asked = Params::decode(query, GET_VALUES_LIMITS).map_err(ProtocolError::Params)?;
    let mut body = BytesMut::new();
    for (name, _) in asked.iter() {
        let value = match name {
            b"FCGI_MAX_CONNS" => caps.max_conns.to_string(),
            b"FCGI_MAX_REQS" => caps.max_reqs.to_string(),
            b"FCGI_MPXS_CONNS" => u8::from(caps.mpxs_conns).to_string(),
            _ => continue,
        };
        encode_pair(name, value.as_bytes(), &mut body);
    }
    encode_record(RecordType::GetValuesResult, MANAGEMENT_ID, &body, out);
    Ok(())
}

/// Appends the UNKNOWN_TYPE reply for a management record of type `type_byte`.
pub fn answer_unknown_type(type_byte: u8, out: &mut BytesMut) {
    encode_record(RecordType::UnknownType, MANAGEMENT_ID, &[type_byte, 0, 0, 0, 0, 0, 0, 0], out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record::Record;

    #[test]
    fn answers_only_known_names_asked() {
        let mut query = BytesMut::new();
        for name in [&b"FCGI_MPXS_CONNS"[..], b"NOT_A_VAR", b"FCGI_MAX_CONNS"] {
            encode_pair(name, b"", &mut query);
        }
        let caps = Capabilities { max_conns: 16, max_reqs: 32, mpxs_conns: true };
        let mut out = BytesMut::new();
        answer_get_values(&query, &caps, &mut out).unwrap();
        let record = Record::decode(&mut out).unwrap().unwrap();
        assert_eq!(record.header.record_type, RecordType::GetValuesResult);
        assert_eq!(record.header.request_id, 0);
        let result = Params::decode(&record.content, ParamsLimits::default()).unwrap();
        let pairs: Vec<_> = result.iter().collect();
        assert_eq!(pairs, vec![(&b"FCGI_MPXS_CONNS"[..], &b"1"[..]), (&b"FCGI_MAX_CONNS"[..], &b"16"[..])]);
    }

    #[test]
    fn unknown_type_echoes_the_type() {
        let mut out = BytesMut::new();
        answer_unknown_type(200, &mut out);
        assert_eq!(&out[..], &[1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]);
    }
}
