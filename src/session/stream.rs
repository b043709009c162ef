//! Message I/O on one transport stream: decode whole messages from a receive half, encode them onto a
//! send half. Thin glue between the pure codec and the transport trait.

use bytes::{Bytes, BytesMut};

use super::SessionError;
use crate::coding::DecodeError;
use crate::transport::{RecvStream, SendStream};
use crate::wire::{FrameData, FrameTimestamps, Message, StreamReader, Version};

/// How much one read asks the transport for.
const READ_CHUNK: usize = 64 * 1024;

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

/// Writes messages to a send half.
pub(crate) struct Writer<S> {
    send: S,
    version: Version,
}

impl<S: SendStream> Writer<S> {
    pub(crate) fn new(send: S, version: Version) -> Self {
        Self { send, version }
    }

    /// Encodes and writes one message.
    pub(crate) async fn send<M: Message>(&mut self, message: &M) -> Result<(), SessionError> {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, self.version)?;
        self.send.write(buf.freeze()).await?;
        Ok(())
    }

    /// Writes raw bytes (a stream type, or a frame payload).
    pub(crate) async fn write(&mut self, bytes: Bytes) -> Result<(), SessionError> {
        self.send.write(bytes).await?;
        Ok(())
    }

    /// The send half, for priority, finish and reset.
    pub(crate) fn send_mut(&mut self) -> &mut S {
        &mut self.send
    }
}
