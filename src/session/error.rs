//! Why a session or one of its requests failed, and which moq-lite code that becomes on the wire.

use crate::coding::{DecodeError, EncodeError};
use crate::coding::{SessionCode, StreamCode};
use crate::model;
use crate::transport::{StreamError, TransportError};

/// A session-level failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The connection ended.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The peer sent bytes that do not decode.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// We could not encode a message (a bug or a value the version cannot carry).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    /// The peer broke a protocol rule that is not a decoding error.
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// The peer is not allowed to do this (session rejected).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// An expected message did not arrive in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// A bound was reached.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The model refused or ended something.
    #[error(transparent)]
    Model(#[from] model::Error),
    /// The session was closed by the application.
    #[error("session closed")]
    Closed,
    /// The peer sent GOAWAY: no new requests are opened on this session (spec 3.8); make them on
    /// the next one.
    #[error("the peer sent GOAWAY: no new requests on this session")]
    GoingAway,
    /// The negotiated version (or the peer's SETUP) does not allow this.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

impl SessionError {
    /// The session close code to send when this error ends the session.
    pub fn session_code(&self) -> SessionCode {
        match self {
            SessionError::Decode(_) | SessionError::ProtocolViolation(_) | SessionError::Limit(_) => {
                SessionCode::ProtocolViolation
            }
            SessionError::Unauthorized(_) => SessionCode::Unauthorized,
            SessionError::Timeout(_) => SessionCode::ControlMessageTimeout,
            SessionError::Closed => SessionCode::NoError,
            _ => SessionCode::InternalError,
        }
    }

    /// The code the peer closed the session with, when that is how it ended. UNAUTHORIZED here
    /// means retrying with the same credentials is pointless.
    pub fn peer_code(&self) -> Option<SessionCode> {
        match self {
            SessionError::Transport(TransportError::ClosedByPeer { code, .. })
            | SessionError::Stream(StreamError::Connection(TransportError::ClosedByPeer { code, .. })) => {
                Some(SessionCode::from_peer(*code))
            }
            _ => None,
        }
    }

    /// The stream code to reset a request stream with when this error ends only that request.
    pub fn stream_code(&self) -> StreamCode {
        match self {
            SessionError::Stream(StreamError::Reset(code)) | SessionError::Stream(StreamError::Stopped(code)) => *code,
            SessionError::Model(err) => err.code(),
            SessionError::Timeout(_) => StreamCode::ControlTimeout,
            SessionError::Transport(_) | SessionError::Stream(StreamError::Connection(_)) => StreamCode::SessionClosed,
            SessionError::Decode(_) | SessionError::ProtocolViolation(_) => StreamCode::Cancelled,
            SessionError::Limit(_) => StreamCode::Cancelled,
            SessionError::GoingAway => StreamCode::GoingAway,
            _ => StreamCode::InternalError,
        }
    }
}
