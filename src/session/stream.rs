//! Message I/O on one transport stream: decode whole messages from a receive half, encode them onto a
//! send half. Thin glue between the pure codec and the transport trait.

use bytes::{Bytes, BytesMut};

use super::SessionError;
use crate::coding::DecodeError;
use crate::coding::StreamCode;
use crate::transport::{RecvStream, SendStream};
use crate::wire::{FrameData, FrameTimestamps, Message, StreamReader, Version};

/// How much one read asks the transport for.
const READ_CHUNK: usize = 64 * 1024;

/// The buffer bound of a Group or Fetch stream: one whole frame of the largest size and one read.
pub(crate) const GROUP_STREAM_BUFFER: usize = crate::coding::MAX_FRAME_LEN as usize + READ_CHUNK + 64;

/// Reads messages from a receive half.
pub(crate) struct Reader<R> {
    recv: R,
    buf: StreamReader,
    fin: bool,
}

impl<R: RecvStream> Reader<R> {
    /// A reader that buffers at most `max_buffered` bytes (one message and what came with it).
    pub(crate) fn new(recv: R, version: Version, max_buffered: usize) -> Self {
        Self { recv, buf: StreamReader::new(version, max_buffered), fin: false }
    }

    async fn fill(&mut self) -> Result<bool, SessionError> {
        if self.fin {
            return Ok(false);
        }
        match self.recv.read(READ_CHUNK).await? {
            Some(chunk) => {
                self.buf.push(&chunk)?;
                Ok(true)
            }
            None => {
                self.fin = true;
                Ok(false)
            }
        }
    }

    /// Changes the buffer bound once the kind of stream is known.
    pub(crate) fn set_max_buffered(&mut self, max_buffered: usize) {
        self.buf.set_max_buffered(max_buffered);
    }

    /// The next message, or `None` when the stream ended cleanly between messages.
    pub(crate) async fn decode<M: Message>(&mut self) -> Result<Option<M>, SessionError> {
        self.read_with(|cursor, version| M::decode(cursor, version)).await
    }

    /// Runs a decoder that consumes nothing until it has a whole value, reading more as needed.
    pub(crate) async fn read_with<T>(
        &mut self,
        mut decode: impl FnMut(&mut &[u8], Version) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, SessionError> {
        loop {
            let version = self.buf.version();
            if let Some(value) = self.buf.read_with(|cursor| decode(cursor, version))? {
                return Ok(Some(value));
            }
            if !self.fill().await? {
                return self.end();
            }
        }
    }

    /// The next FRAME, or `None` at a clean end of stream.
    pub(crate) async fn read_frame(
        &mut self,
        timestamps: &mut FrameTimestamps,
    ) -> Result<Option<FrameData>, SessionError> {
        loop {
            if let Some(frame) = self.buf.read_frame(timestamps)? {
                return Ok(Some(frame));
            }
            if !self.fill().await? {
                return self.end();
            }
        }
    }

    fn end<T>(&self) -> Result<Option<T>, SessionError> {
        self.buf.finish()?;
        Ok(None)
    }

    /// The receive half, to stop it.
    pub(crate) fn recv_mut(&mut self) -> &mut R {
        &mut self.recv
    }
}

/// Writes messages to a send half. A stream left neither finished nor reset is reset when the
/// writer drops (a task aborted mid-group, an error path that returned early): a FIN would make a
/// truncated group or an unanswered request look complete.
pub(crate) struct Writer<S: SendStream> {
    send: S,
    version: Version,
    closed: bool,
}

impl<S: SendStream> Writer<S> {
    pub(crate) fn new(send: S, version: Version) -> Self {
        Self { send, version, closed: false }
    }

    /// Encodes and writes one message.
    pub(crate) async fn send<M: Message>(&mut self, message: &M) -> Result<(), SessionError> {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, self.version)?;
        self.send.write(buf.freeze()).await?;
        Ok(())
    }

    /// The version messages are encoded in.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// Writes raw bytes (a stream type, or a frame payload).
    pub(crate) async fn write(&mut self, bytes: Bytes) -> Result<(), SessionError> {
        self.send.write(bytes).await?;
        Ok(())
    }

    /// Sets the stream's send priority.
    pub(crate) fn set_priority(&mut self, priority: i32) {
        self.send.set_priority(priority);
    }

    /// Ends the stream gracefully (FIN).
    pub(crate) fn finish(&mut self) {
        self.closed = true;
        let _ = self.send.finish();
    }

    /// After [`finish`](Self::finish): waits until the peer has acknowledged everything up to the
    /// FIN (true), or the stream was stopped or the connection lost (false).
    pub(crate) async fn acknowledged(&mut self) -> bool {
        matches!(self.send.stopped().await, Ok(None))
    }

    /// Aborts the stream with `code`.
    pub(crate) fn reset(&mut self, code: StreamCode) {
        self.closed = true;
        self.send.reset(code);
    }
}

impl<S: SendStream> Drop for Writer<S> {
    fn drop(&mut self) {
        if !self.closed {
            self.send.reset(StreamCode::Cancelled);
        }
    }
}
