//! How a client ends: what its ended tracks still owe the relay is drained (bounded) before its
//! session closes, then its background task is waited for. `moqt_client_flush` and
//! `moqt_client_free` share it.

use std::time::Duration;

use super::client::moqt_client;
use super::runtime::runtime;
use crate::session::FlushOutcome;

/// How long `moqt_client_free` waits at most, in milliseconds, for what the client's ended tracks
/// still owe the relay (see `moqt_client_flush`) before it closes the session.
pub const MOQT_CLIENT_FREE_DRAIN_MS: u32 = 5000;

/// How long `moqt_client_free` waits for the client's background task to end. It ends as soon as
/// it sees the close (an attempt in progress is dropped, a session closed without waiting for the
/// peer), so this only bounds a stalled engine.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Closes a client and waits (up to [`CLOSE_WAIT`]) for its background task to end, unless the
/// caller's thread is inside a runtime (an engine thread), which must not block on the engine:
/// there the task ends by itself after the close.
pub(crate) fn close_client(client: moqt_client) {
    let moqt_client { client, publish, remote, gone } = client;
    let Some(runtime) = runtime() else {
        client.close();
        return;
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        client.close();
    } else {
        let _ = runtime.block_on(async { tokio::time::timeout(CLOSE_WAIT, client.shutdown()).await });
    }
    // Handles behind the client (subscriptions, watches) end when `gone` goes.
    let _engine = runtime.enter();
    drop((publish, remote, gone));
}

/// Waits up to `timeout` until the client's session owes its peer nothing more (see
/// [`SessionLink::flushed`](crate::session::SessionLink::flushed)); `Err` with how many
/// subscriptions and streams are still owed at the deadline. Without a session, nothing is owed.
pub(crate) fn flush(runtime: &tokio::runtime::Handle, client: &moqt_client, timeout: Duration) -> Result<(), usize> {
    let Some(session) = client.client.session() else { return Ok(()) };
    if session.unflushed() == 0 {
        return Ok(());
    }
    runtime.block_on(async {
        match tokio::time::timeout(timeout, session.flushed()).await {
            Ok(FlushOutcome::Delivered) => Ok(()),
            Ok(FlushOutcome::Undelivered(lost)) => Err(lost),
            Err(_) => Err(session.unflushed()),
        }
    })
}
