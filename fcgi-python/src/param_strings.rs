//! The params as Python strings, decoded as latin-1 (every byte is the code point of the same
//! value), and kept from one request to the next: a web server sends the same params in the same
//! order every time, most with the same value (the method, the protocol, the host, the server's
//! address and software, the document root), so an environ mostly takes a reference to the
//! strings of the last one instead of decoding, allocating and later freeing twenty new ones.

use std::sync::Mutex;

use fcgi_core::Params;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::latin1;

/// Params kept, by position: a web server's usual twenty to thirty, and room for more headers.
const POSITIONS_KEPT: usize = 64;

/// Values kept at most this long: longer ones (a cookie, a long query) rarely repeat, and
/// comparing them costs as much as decoding.
const VALUE_KEPT_UP_TO: usize = 256;

/// The name and the value of the param at one position in the last request.
struct Kept {
    name: Vec<u8>,
    /// `name`, interned: the app's `environ["REQUEST_METHOD"]` finds it by identity.
    key: Py<PyString>,
    value: Vec<u8>,
    string: Option<Py<PyString>>,
}

/// The strings of the last request's params, by position.
#[derive(Default)]
pub struct ParamStrings {
    kept: Mutex<Vec<Kept>>,
}

impl ParamStrings {
    /// Calls `each((name, value), key, string)` for every param of `params`, in order: its raw
    /// name and value, and its name (interned) and value as Python strings, reusing the strings
    /// of the last request where its param at the same position had the same name or value.
    pub fn each<'py, 'p>(
        &self,
        py: Python<'py>,
        params: &'p Params,
        mut each: impl FnMut((&'p [u8], &'p [u8]), Bound<'py, PyString>, Bound<'py, PyString>) -> PyResult<()>,
    ) -> PyResult<()> {
        // Only taken under the GIL, but a thread could lose the GIL while holding it (to a
        // thread that would then wait here holding the GIL): a busy cache is passed by instead.
        let Ok(mut kept) = self.kept.try_lock() else {
            return params
                .iter()
                .try_for_each(|(name, value)| each((name, value), key(py, name), latin1::decode(py, value)));
        };
        for (position, (name, value)) in params.iter().enumerate() {
            if position >= POSITIONS_KEPT {
                each((name, value), key(py, name), latin1::decode(py, value))?;
                continue;
            }
            if kept.get(position).is_none_or(|kept| kept.name != name) {
                let fresh = Kept { name: name.to_vec(), key: key(py, name).unbind(), value: Vec::new(), string: None };
                if position < kept.len() {
                    kept[position] = fresh;
                } else {
                    kept.push(fresh);
                }
            }
            let slot = &mut kept[position];
            let string = match &slot.string {
                Some(string) if slot.value == value => string.bind(py).clone(),
                _ => {
                    let string = latin1::decode(py, value);
                    if value.len() <= VALUE_KEPT_UP_TO {
                        slot.value.clear();
                        slot.value.extend_from_slice(value);
                        slot.string = Some(string.clone().unbind());
                    } else {
                        slot.string = None;
                    }
                    string
                }
            };
            each((name, value), slot.key.bind(py).clone(), string)?;
        }
        Ok(())
    }
}

/// A param's name as an interned string.
fn key<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
    let mut key = latin1::decode(py, name).into_ptr();
    // SAFETY: the GIL is held; `key` is an owned reference to a str, which interning may swap for
    // an owned reference to the interned one; it is owned again by the Bound made of it.
    unsafe {
        pyo3::ffi::PyUnicode_InternInPlace(&mut key);
        Bound::from_owned_ptr(py, key).cast_into_unchecked()
    }
}
