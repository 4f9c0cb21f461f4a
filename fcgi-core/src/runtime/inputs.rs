//! Body chunks that arrived for the input stream the handler was not reading (a Filter reading
//! DATA before STDIN, or read ahead while looking for an ABORT_REQUEST), and which streams
//! ended: shared by the in-series and the multiplexed exchange.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;

use super::error::Error;
use super::request::Input;
use crate::protocol::Event;

/// Input of one stream held while the handler reads the other, or read ahead of it.
pub(super) const MAX_QUEUED_INPUT: usize = 1 << 20;

/// Body chunks that arrived for the stream the handler was not reading, and which streams ended.
#[derive(Default)]
pub(super) struct Inputs {
    queued: [VecDeque<Bytes>; 2],
    pub(super) queued_bytes: usize,
    pub(super) ended: [bool; 2],
}

impl Inputs {
    /// A queued answer for `input`: `Some(Some(chunk))`, `Some(None)` at its end, `None` if
    /// nothing is known yet.
    pub(super) fn take(&mut self, input: Input) -> Option<Option<Bytes>> {
        if let Some(chunk) = self.queued[input as usize].pop_front() {
            self.queued_bytes -= chunk.len();
            return Some(Some(chunk));
        }
        self.ended[input as usize].then_some(None)
    }

    /// Takes an event of request `id`: the answer if it is for `wanted`, else queued; an error
    /// if it aborts the request.
    pub(super) fn offer(
        &mut self,
        id: u16,
        event: Event,
        wanted: impl Into<Option<Input>>,
    ) -> io::Result<Option<Option<Bytes>>> {
        let (input, chunk) = match event {
            Event::Stdin { id: i, data } if i == id => (Input::Stdin, Some(data)),
            Event::StdinEnd { id: i } if i == id => (Input::Stdin, None),
            Event::Data { id: i, data } if i == id => (Input::Data, Some(data)),
            Event::DataEnd { id: i } if i == id => (Input::Data, None),
            Event::Abort { id: i } if i == id => return Err(Error::aborted()),
            _ => return Ok(None),
        };
        if wanted.into() == Some(input) {
            if chunk.is_none() {
                self.ended[input as usize] = true;
            }
            return Ok(Some(chunk));
        }
        // Never dropped: the caller bounds what it reads ahead.
        match chunk {
            Some(data) => {
                self.queued_bytes += data.len();
                self.queued[input as usize].push_back(data);
            }
            None => self.ended[input as usize] = true,
        }
        Ok(None)
    }
}
