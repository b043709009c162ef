//! The lifecycle every C callbacks struct shares: `user_data` passed first to each callback on
//! the dispatcher thread, an optional terminal `on_closed`, and `user_data_free` exactly once,
//! after the last callback, or at once when creating the handle fails. [`CallbackSet`] holds it
//! for any family of event callbacks; [`Feed`] is a set with the engine task that feeds it, and
//! [`FedHandle`] a C handle holding one.

use std::ffi::c_void;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::args::{SizedStruct, read_sized};
use super::error::{FfiError, FfiResult, moqt_status};
use super::follow::TrackEnd;
use super::handle::{Castable, OwnershipBox, take_box};
use super::runtime::{dispatch, on_dispatcher, runtime, spawn_task};

/// C's user data: a pointer the library passes back to C and never dereferences.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: the header documents that user_data is handed to callbacks on the library's threads
// (the dispatcher, or any thread for the log callback and buffer frees); the library only passes
// it through, never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as above; sharing the pointer value is harmless, C synchronises what it points to.
unsafe impl Sync for UserData {}

/// `user_data_free` of a callbacks struct.
pub(crate) type FreeFn = Option<extern "C" fn(user_data: *mut c_void)>;

/// `on_closed` of a callbacks struct.
pub(crate) type ClosedFn = Option<extern "C" fn(user_data: *mut c_void, status: moqt_status)>;

/// A C callbacks struct: the lifecycle members they all have, and its family's events.
pub(crate) trait CallbacksStruct: SizedStruct {
    type Events: Send + Sync + 'static;
    /// `user_data`, `user_data_free`, `on_closed` and the events.
    fn parts(self) -> (*mut c_void, FreeFn, ClosedFn, Self::Events);
}

/// One callbacks struct handed over by C: `events` are its family's own callbacks (plain
/// function pointers, so `E` is Send and Sync by itself).
pub(crate) struct CallbackSet<E> {
    user_data: UserData,
    user_data_free: FreeFn,
    on_closed: ClosedFn,
    events: E,
    /// Held while a callback runs, so a blocking free can wait for it.
    gate: Mutex<()>,
    freed: AtomicBool,
    closed: AtomicBool,
    user_data_freed: AtomicBool,
}

impl<E: Send + Sync + 'static> CallbackSet<E> {
    pub(crate) fn new(user_data: *mut c_void, user_data_free: FreeFn, on_closed: ClosedFn, events: E) -> Arc<Self> {
        Arc::new(CallbackSet {
            user_data: UserData(user_data),
            user_data_free,
            on_closed,
            events,
            gate: Mutex::new(()),
            freed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            user_data_freed: AtomicBool::new(false),
        })
    }

    /// The set of the caller's callbacks struct; NULL is MOQT_STATUS_ERR_INVALID_ARG.
    pub(crate) fn read<C: CallbacksStruct<Events = E>>(callbacks: *const C) -> FfiResult<Arc<Self>> {
        let callbacks = read_sized(callbacks).ok_or_else(|| FfiError::invalid("callbacks is NULL"))?;
        let (user_data, user_data_free, on_closed, events) = callbacks.parts();
        Ok(Self::new(user_data, user_data_free, on_closed, events))
    }

    /// Runs `start`, which creates this set's handle; if it fails, the user data is released
    /// all the same (exactly once on every path) and its error is the call's.
    pub(crate) fn starting<T>(self: &Arc<Self>, start: impl FnOnce(&Arc<Self>) -> FfiResult<T>) -> FfiResult<T> {
        start(self).inspect_err(|_| self.queue_user_data_free())
    }

    /// Runs `call` with the events and the user data on the dispatcher, unless the set was
    /// freed meanwhile.
    pub(crate) async fn callback(self: &Arc<Self>, call: impl FnOnce(&E, *mut c_void) + Send + 'static) {
        let this = self.clone();
        dispatch(move || this.run(call)).await;
    }

    /// Runs `call` with the events and the user data here and now (on the dispatcher), unless
    /// the set was freed.
    pub(crate) fn run(&self, call: impl FnOnce(&E, *mut c_void)) {
        let _gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.freed.load(Ordering::Acquire) {
            call(&self.events, self.user_data.0);
        }
    }

    /// Ends the set: on_closed(status), then user_data_free, exactly once. Both are queued by a
    /// task of their own: the caller may be cancelled (its handle freed, its client gone) while
    /// the dispatcher queue is full, and a flag already set must not leave them unqueued.
    /// Before on_closed, this (dispatcher) thread's last error says how it ended, with the
    /// stream code of an abort for `moqt_last_error_code`.
    pub(crate) async fn close(self: &Arc<Self>, end: impl Into<TrackEnd>) {
        let end = end.into();
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let ending = tokio::spawn(async move {
            let on_closed = this.on_closed;
            this.callback(move |_, user_data| {
                if let Some(on_closed) = on_closed {
                    on_closed(user_data, FfiError::from(end).report());
                }
            })
            .await;
            this.release_user_data().await;
        });
        let _ = ending.await;
    }

    /// [`close`](Self::close) as a future of its own, for a task's other ending.
    pub(crate) fn closing(self: &Arc<Self>, status: moqt_status) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move { this.close(status).await }
    }

    /// No callback of this set starts after this (one running on another thread is waited for
    /// if `wait`); then `user_data_free` is queued, to run after any callback in progress.
    pub(crate) fn finish(self: &Arc<Self>, wait: bool) {
        self.freed.store(true, Ordering::Release);
        if wait && !on_dispatcher() {
            // Wait for a callback that is running right now.
            drop(self.gate.lock().unwrap_or_else(PoisonError::into_inner));
        }
        self.queue_user_data_free();
    }

    /// Releases the user data on the dispatcher, after what is queued; here and now when the
    /// engine cannot start (there is no dispatcher to run it on).
    fn queue_user_data_free(self: &Arc<Self>) {
        match runtime() {
            Some(runtime) => {
                let this = self.clone();
                runtime.spawn(async move { this.release_user_data().await });
            }
            None => {
                if !self.user_data_freed.swap(true, Ordering::AcqRel)
                    && let Some(free) = self.user_data_free
                {
                    free(self.user_data.0);
                }
            }
        }
    }

    /// Queues `user_data_free`, exactly once, after everything already queued (by a task of its
    /// own, so cancelling the caller cannot lose it once the flag is set).
    async fn release_user_data(self: &Arc<Self>) {
        if self.user_data_freed.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let queued = tokio::spawn(dispatch(move || {
            if let Some(free) = this.user_data_free {
                free(this.user_data.0);
            }
        }));
        let _ = queued.await;
    }
}

/// A callback set and the engine task that feeds it: what a callback handle holds.
pub(crate) struct Feed<E> {
    set: Arc<CallbackSet<E>>,
    task: tokio::task::AbortHandle,
}

impl<E: Send + Sync + 'static> Feed<E> {
    /// Spawns `task` feeding `set`; if it panics the set ends with MOQT_STATUS_ERR_PANIC.
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        set: Arc<CallbackSet<E>>,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let task = spawn_task(runtime, task, set.closing(moqt_status::ErrPanic));
        Feed { set, task }
    }

    /// Stops the task: no callback starts after this (one running on another thread is waited
    /// for if `wait`), then `user_data_free` is queued.
    pub(crate) fn stop(&self, wait: bool) {
        self.task.abort();
        self.set.finish(wait);
    }
}

/// A C handle holding a [`Feed`]: its `_free` and `_release` stop it.
pub(crate) trait FedHandle: Castable<Ownership = OwnershipBox> {
    type Events: Send + Sync + 'static;
    fn feed(&self) -> &Feed<Self::Events>;
}

/// Ends the handle behind `ptr` (NULL is accepted): no callback starts after this, one running on
/// another thread is waited for if `wait` (`_free`) and not otherwise (`_release`).
pub(crate) fn end_handle<T: FedHandle>(ptr: *mut T, wait: bool) -> FfiResult {
    if let Some(handle) = take_box(ptr) {
        handle.feed().stop(wait);
    }
    Ok(())
}
