//! Latin-1, the encoding of WSGI's native strings (PEP 3333): every byte is the code point of
//! the same value, so params decode without fail and headers encode back byte for byte.

use std::os::raw::c_char;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

extern "C" {
    // In the stable ABI from Python 3.10 on (pyo3 declares it for abi3 builds from 3.10 only);
    // every CPython 3 exports it with this signature, 3.9 included.
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
}

/// Decodes `bytes` as latin-1.
pub fn decode<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    let len = ffi::Py_ssize_t::try_from(bytes.len()).expect("a param is shorter than isize::MAX");
    // SAFETY: the GIL is held (`py`); `bytes` is valid for `len` bytes; latin-1 decodes every
    // byte, so the only failure is a failed allocation, which becomes the panic below (as
    // `PyString::new` does).
    unsafe {
        let string = ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Bound::from_owned_ptr_or_err(py, string).expect("decoding latin-1 allocates only").cast_into_unchecked()
    }
}

/// A str encoded as latin-1.
pub enum Encoded<'a> {
    /// An ASCII str's own bytes, borrowed (they are its UTF-8 and its latin-1 alike).
    Ascii(&'a [u8]),
    /// A copy, for a str with characters from U+0080 to U+00FF.
    Copied(Bound<'a, PyBytes>),
}

impl Encoded<'_> {
    /// The latin-1 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Encoded::Ascii(bytes) => bytes,
            Encoded::Copied(bytes) => bytes.as_bytes(),
        }
    }
}

/// `text` encoded as latin-1 without a copy when it is ASCII (a header's usual case). Fails
/// with a `TypeError` for what is not a str, and a `UnicodeEncodeError` for characters above
/// U+00FF.
pub fn encode<'a>(text: &'a Bound<'_, PyAny>) -> PyResult<Encoded<'a>> {
    let py = text.py();
    if !text.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("not a str"));
    }
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: the GIL is held and `text` is a str. The UTF-8 returned belongs to the str (its
    // own data when it is ASCII, else a cache it keeps), so it lives as long as `text` is
    // borrowed; null means an error is set (a lone surrogate), cleared below.
    let utf8 = unsafe { PyUnicode_AsUTF8AndSize(text.as_ptr(), &mut len) };
    if !utf8.is_null() {
        // SAFETY: not null, so `len` bytes at `utf8` are the str's UTF-8, alive for 'a (above).
        let bytes = unsafe { std::slice::from_raw_parts(utf8.cast::<u8>(), len as usize) };
        if bytes.is_ascii() {
            return Ok(Encoded::Ascii(bytes));
        }
    } else {
        drop(PyErr::fetch(py));
    }
    // SAFETY: the GIL is held and `text` is a str; the result is a new reference to a bytes
    // object, or null with an exception set.
    let encoded = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_AsLatin1String(text.as_ptr()))? };
    // SAFETY: PyUnicode_AsLatin1String returns a bytes object.
    Ok(Encoded::Copied(unsafe { encoded.cast_into_unchecked() }))
}
