#![no_main]
use bytes::BytesMut;
use fcgi_core::protocol::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = Record::decode(&mut buf) {}
});
