//! The engine's threads: a tokio runtime for network I/O ("moqt-io") and one dispatcher thread
//! ("moqt-cb") that runs every C callback, so a slow callback never stalls QUIC, and callbacks are
//! serialized and ordered. Both start on first use.

use std::sync::OnceLock;
use std::thread::ThreadId;

use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// How many callbacks may wait for the dispatcher before the engine waits (backpressure on the
/// network side, never an unbounded queue).
const DISPATCH_QUEUE: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

struct Engine {
    runtime: Runtime,
    dispatch: mpsc::Sender<Job>,
    dispatcher: ThreadId,
}

static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();

fn engine() -> Option<&'static Engine> {
    ENGINE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("moqt-io")
                // Logs of the engine's threads go to the C log callback (a thread default, never
                // a process-wide one). The guard lives as long as the thread.
                .on_thread_start(|| std::mem::forget(tracing::dispatcher::set_default(super::log::dispatch())))
                .enable_all()
                .build()
                .ok()?;
            let (dispatch, mut jobs) = mpsc::channel::<Job>(DISPATCH_QUEUE);
            let thread = std::thread::Builder::new()
                .name("moqt-cb".into())
                .spawn(move || {
                    let _logs = tracing::dispatcher::set_default(super::log::dispatch());
                    while let Some(job) = jobs.blocking_recv() {
                        // A panic inside our own glue must not kill the dispatcher; C callbacks
                        // must not unwind (documented in the header).
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .ok()?;
            Some(Engine { runtime, dispatch, dispatcher: thread.thread().id() })
        })
        .as_ref()
}

/// The runtime, or `None` if the OS refused threads.
pub(crate) fn runtime() -> Option<&'static Runtime> {
    engine().map(|engine| &engine.runtime)
}

/// Queues a callback for the dispatcher thread, waiting while the queue is full.
pub(crate) async fn dispatch(job: impl FnOnce() + Send + 'static) -> bool {
    match engine() {
        Some(engine) => engine.dispatch.send(Box::new(job)).await.is_ok(),
        None => false,
    }
}

/// True on the dispatcher thread (inside a callback).
pub(crate) fn on_dispatcher() -> bool {
    engine().is_some_and(|engine| engine.dispatcher == std::thread::current().id())
}
