//! The engine's threads: a tokio runtime for network I/O ("moqt-io") and one dispatcher thread
//! ("moqt-cb") that runs every C callback, so a slow callback never stalls QUIC, and callbacks are
//! serialized and ordered. Both start on first use.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;

use super::callbacks::UserData;
use super::error::{FfiError, guard, guard_void, moqt_status};
use super::frame::moqt_frame;

/// How many callbacks may wait for the dispatcher before the engine waits (backpressure on the
/// network side, never an unbounded queue).
const DISPATCH_QUEUE: usize = 1024;

/// What the dispatcher runs: a callback, or a frame for a subscription's `on_frame`, queued as it
/// is so the busiest path allocates nothing per frame (the channel stores jobs in blocks).
enum Job {
    Run(Box<dyn FnOnce() + Send>),
    Frame(Arc<dyn FrameSink>, moqt_frame),
}

impl Job {
    fn run(self) {
        match self {
            Job::Run(call) => call(),
            Job::Frame(sink, frame) => sink.deliver(frame),
        }
    }
}

/// A receiver of frames on the dispatcher thread: a subscription's callbacks.
pub(crate) trait FrameSink: Send + Sync {
    fn deliver(&self, frame: moqt_frame);
}

struct Engine {
    runtime: Runtime,
    dispatch: mpsc::Sender<Job>,
    dispatcher: JoinHandle<()>,
    dispatcher_id: ThreadId,
}

/// The running engine: started by the first call that needs it, stopped by `moqt_shutdown`
/// (and started afresh by a later call).
static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

fn engine_slot() -> std::sync::MutexGuard<'static, Option<Engine>> {
    ENGINE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A thread hook: `name` is the thread's NUL-terminated name ("moqt-io" or "moqt-cb"), borrowed
/// for the call.
#[allow(non_camel_case_types)]
pub type moqt_thread_fn = Option<extern "C" fn(user_data: *mut c_void, name: *const c_char)>;

/// The hooks the engine's threads run as they start and stop.
#[derive(Clone, Copy)]
struct ThreadHooks {
    on_start: moqt_thread_fn,
    on_stop: moqt_thread_fn,
    user_data: UserData,
}

impl ThreadHooks {
    fn run(hook: moqt_thread_fn, user_data: UserData, name: &'static std::ffi::CStr) {
        if let Some(hook) = hook {
            hook(user_data.0, name.as_ptr());
        }
    }

    fn start(&self, name: &'static std::ffi::CStr) {
        Self::run(self.on_start, self.user_data, name);
    }

    fn stop(&self, name: &'static std::ffi::CStr) {
        Self::run(self.on_stop, self.user_data, name);
    }
}

static HOOKS: Mutex<Option<ThreadHooks>> = Mutex::new(None);

/// Sets the hooks every engine thread runs first and last (a JVM host attaches the thread there,
/// a realtime host sets its priority or affinity). `user_data` is passed to both.
///
/// Call it before any other `moqt_*` function that starts the engine (connect, relay start).
/// Thread-safety: any thread. Callbacks: `on_start` and `on_stop` later, on the engine's threads.
/// Returns MOQT_STATUS_OK, or MOQT_STATUS_ERR_UNSUPPORTED once the engine is running.
///
/// Ownership: `user_data` stays the caller's and must stay valid while the engine runs; moqt never
/// frees it.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_set_thread_hooks(
    on_start: moqt_thread_fn,
    on_stop: moqt_thread_fn,
    user_data: *mut c_void,
) -> moqt_status {
    guard(|| {
        // The engine slot first, then the hooks: the order start_engine takes them in.
        let slot = engine_slot();
        let mut hooks = HOOKS.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Err(FfiError::new(
                moqt_status::ErrUnsupported,
                "the engine is already running: set thread hooks before connecting or starting a relay",
            ));
        }
        *hooks = Some(ThreadHooks { on_start, on_stop, user_data: UserData(user_data) });
        Ok(())
    })
}

/// Starts the engine's threads; `None` if the OS refused them.
fn start_engine() -> Option<Engine> {
    // Held while the engine starts, so hooks set concurrently are either seen or refused.
    let hooks_guard = HOOKS.lock().unwrap_or_else(PoisonError::into_inner);
    let hooks = *hooks_guard;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("moqt-io")
        // Logs of the engine's threads go to the C log callback (a thread default, never
        // a process-wide one). The guard lives as long as the thread.
        .on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(super::log::dispatch()));
            if let Some(hooks) = hooks {
                hooks.start(c"moqt-io");
            }
        })
        .on_thread_stop(move || {
            if let Some(hooks) = hooks {
                hooks.stop(c"moqt-io");
            }
        })
        .enable_all()
        .build()
        .ok()?;
    let (dispatch, mut jobs) = mpsc::channel::<Job>(DISPATCH_QUEUE);
    // The engine counts as started once the dispatcher has run its start hook.
    let (ready, started) = std::sync::mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("moqt-cb".into())
        .spawn(move || {
            let _logs = tracing::dispatcher::set_default(super::log::dispatch());
            if let Some(hooks) = hooks {
                hooks.start(c"moqt-cb");
            }
            let _ = ready.send(());
            // A panic inside our own glue must not kill the dispatcher; C callbacks must not
            // unwind (documented in the header).
            let run = |job: Job| drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run())));
            while let Some(job) = jobs.blocking_recv() {
                run(job);
                // Whatever queued meanwhile runs without parking the thread again.
                while let Ok(job) = jobs.try_recv() {
                    run(job);
                }
            }
            if let Some(hooks) = hooks {
                hooks.stop(c"moqt-cb");
            }
        })
        .ok()?;
    let _ = started.recv();
    drop(hooks_guard);
    let dispatcher_id = thread.thread().id();
    Some(Engine { runtime, dispatch, dispatcher: thread, dispatcher_id })
}

/// The runtime's handle, starting the engine if it is not running; `None` if the OS refused
/// threads. Only entry points called by C use it: tasks of a stopped engine must not start one.
pub(crate) fn runtime() -> Option<Handle> {
    let mut slot = engine_slot();
    if slot.is_none() {
        *slot = start_engine();
    }
    slot.as_ref().map(|engine| engine.runtime.handle().clone())
}

/// Spawns a task behind a C handle on the engine. A panic in it (a moqt bug) must not leave the
/// host waiting for a terminal callback that never comes: `on_panic` runs instead (it ends the
/// handle's callbacks with MOQT_STATUS_ERR_PANIC). Aborting the returned handle aborts the task.
pub(crate) fn spawn_task<T, P>(runtime: &Handle, task: T, on_panic: P) -> tokio::task::AbortHandle
where
    T: std::future::Future<Output = ()> + Send + 'static,
    P: std::future::Future<Output = ()> + Send + 'static,
{
    /// Aborts the inner task when the outer one is aborted (dropped).
    struct AbortInner(tokio::task::AbortHandle);
    impl Drop for AbortInner {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    runtime
        .spawn(async move {
            let inner = tokio::spawn(task);
            let _abort = AbortInner(inner.abort_handle());
            if let Err(err) = inner.await
                && err.is_panic()
            {
                tracing::error!("a moqt task panicked; its handle ends with MOQT_STATUS_ERR_PANIC");
                on_panic.await;
            }
        })
        .abort_handle()
}

/// Queues a callback for the dispatcher thread, waiting while the queue is full. False once the
/// engine stopped.
pub(crate) async fn dispatch(job: impl FnOnce() + Send + 'static) -> bool {
    send_job(Job::Run(Box::new(job))).await
}

/// Queues `frame` for `sink` on the dispatcher thread, as [`dispatch`] queues a callback.
pub(crate) async fn dispatch_frame(sink: Arc<dyn FrameSink>, frame: moqt_frame) -> bool {
    send_job(Job::Frame(sink, frame)).await
}

async fn send_job(job: Job) -> bool {
    let sender = engine_slot().as_ref().map(|engine| engine.dispatch.clone());
    match sender {
        Some(sender) => sender.send(job).await.is_ok(),
        None => false,
    }
}

/// True on the dispatcher thread (inside a callback).
pub(crate) fn on_dispatcher() -> bool {
    let current = std::thread::current().id();
    engine_slot().as_ref().is_some_and(|engine| engine.dispatcher_id == current)
}

/// How long `moqt_shutdown` lets the engine's tasks finish before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Stops the engine: its network threads and its dispatcher thread end and their memory is
/// released (so leak checkers report nothing of ours). Optional: a process may simply exit.
///
/// Call it after freeing every client, relay, subscription, pull, broadcast and track handle:
/// using or freeing a handle after `moqt_shutdown` is undefined. A later `moqt_*` call starts a
/// fresh engine (thread hooks may be set again before it). Thread-safety: any thread except the dispatcher (not from inside
/// a callback: that is refused and does nothing). Blocks up to about 2 s. Callbacks: the
/// `on_stop` thread hooks, on the ending threads.
///
/// Ownership: every handle must have been freed before; the engine's memory is released.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_shutdown() {
    guard_void(|| {
        if on_dispatcher() {
            return Err(FfiError::new(moqt_status::ErrUnsupported, "moqt_shutdown was called from a callback"));
        }
        let Some(engine) = engine_slot().take() else { return Ok(()) };
        let Engine { runtime, dispatch, dispatcher, .. } = engine;
        // Tasks hold senders only while they hand a callback over: once the runtime is gone, the
        // last sender goes with ours and the dispatcher drains its queue and ends.
        drop(dispatch);
        runtime.shutdown_timeout(SHUTDOWN_GRACE);
        let _ = dispatcher.join();
        Ok(())
    })
}
