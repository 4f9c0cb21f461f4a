#![no_main]
use fcgi_core::protocol::{Params, ParamsDecoder, ParamsLimits};
use libfuzzer_sys::fuzz_target;

// The first byte places the split: 0 feeds everything in the second piece, 255 in the first.
fuzz_target!(|data: &[u8]| {
    let Some((&at, stream)) = data.split_first() else { return };
    let (first, second) = stream.split_at(stream.len() * usize::from(at) / 255);
    let mut decoder = ParamsDecoder::new(ParamsLimits::default());
    decoder.feed(first);
    decoder.feed(second);
    assert_eq!(decoder.finish(), Params::decode(stream, ParamsLimits::default()));
});
