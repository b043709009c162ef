//! `moqt_pull`: pull-mode subscriptions. Frames wait in a bounded queue until the application asks for them,
//! with a level-triggered file descriptor (readable while frames or gap reports are queued, or
//! the track ended) for poll, epoll, a GLib main loop or GStreamer's GstPoll.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int};
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::args::{Out, path_arg, str_arg};
use super::client::moqt_client;
use super::error::{FfiError, FfiResult, guard, guard_void, moqt_status};
use super::follow::{Delivery, Order, TrackEnd, follow_track, moqt_subscribe_options};
use super::frame::moqt_frame;
use super::handle::{Castable, OwnershipBox, opt_ref, racing_ref, take_box, try_ref};
use super::runtime::{runtime, spawn_task};
use crate::coding::Path;
use crate::model::{FrameBounds, OriginProducer, SubscribeOptions};

/// Frames a pull subscription holds before the engine waits for the application (backpressure,
/// never an unbounded queue).
pub const MOQT_PULL_QUEUE_FRAMES: u32 = 256;

/// Gap reports a pull subscription keeps for `moqt_pull_next_gap` before merging them.
pub const MOQT_PULL_QUEUE_GAPS: u32 = 64;

/// A pull-mode subscription.
#[allow(non_camel_case_types)]
pub struct moqt_pull {
    shared: Arc<PullQueue<moqt_frame>>,
    task: tokio::task::AbortHandle,
    /// Live priority and max-age updates for the subscription's task.
    updates: tokio::sync::watch::Sender<SubscribeOptions>,
}

impl Castable for moqt_pull {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "pull";
    const RACES_WITH_FREE: bool = true;
}

struct PullState<T> {
    frames: VecDeque<T>,
    /// Gaps not yet taken: (first group, last group, moq-lite code), oldest first.
    gaps: VecDeque<(u64, u64, u64)>,
    /// Set when the track ended (END) or failed.
    ended: Option<TrackEnd>,
    interrupted: bool,
    /// While set, waiting calls return MOQT_STATUS_ERR_INTERRUPTED at once (`moqt_pull_set_flushing`).
    flushing: bool,
    /// Set by `moqt_pull_free`: a thread still waiting returns MOQT_STATUS_ERR_CLOSED.
    freed: bool,
    /// True while the readiness pipe holds its byte.
    signalled: bool,
    /// Set once C asked for the readiness fd: until then nobody polls it, so the pipe is left
    /// alone and a frame costs no system call.
    fd_in_use: bool,
    /// Threads blocked in `take`: a push wakes them only if there are any (a condvar notify is a
    /// system call even with no waiter).
    waiters: u32,
    /// Slots freed by `take` and not yet given back to the engine: returned in batches of
    /// [`SLOT_BATCH`], or all at once when the queue runs dry, so the engine task is woken once
    /// per batch rather than once per frame.
    freed_slots: usize,
}

/// How many taken frames the engine's slots are handed back in.
const SLOT_BATCH: usize = MOQT_PULL_QUEUE_FRAMES as usize / 8;

impl<T> PullState<T> {
    /// What the readiness fd says: something to take (a frame or a gap report) or the end.
    fn readable(&self) -> bool {
        !self.frames.is_empty() || !self.gaps.is_empty() || self.ended.is_some()
    }
}

/// A bounded queue of items (frames, or a media consumer's catalogs) with gap reports, an end,
/// interrupts, flushing and a readiness fd: what every pull-mode handle is built on.
pub(crate) struct PullQueue<T> {
    state: Mutex<PullState<T>>,
    ready: Condvar,
    /// One permit per free queue slot.
    slots: Arc<Semaphore>,
    /// The readiness pipe: one byte in it while frames or gap reports are queued or the track
    /// ended.
    pipe: [c_int; 2],
}

/// A non-blocking pipe whose descriptors are closed on exec, so a child process started by the
/// application (a GStreamer element spawning a helper, say) does not inherit them.
fn readiness_pipe() -> Option<[c_int; 2]> {
    let mut pipe: [c_int; 2] = [-1, -1];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_os = "netbsd", target_os = "openbsd"))]
    {
        // SAFETY: pipe2() writes two descriptors into the array we own; both flags are atomic.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return None;
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_os = "netbsd", target_os = "openbsd")))]
    {
        // SAFETY: pipe() writes two descriptors into the array we own.
        if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
            return None;
        }
        for fd in pipe {
            // SAFETY: fd is a descriptor we just created: close-on-exec, and non-blocking so a
            // full or empty pipe never blocks a thread.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::fcntl(fd, libc::F_GETFD) | libc::FD_CLOEXEC);
                libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
            }
        }
    }
    Some(pipe)
}

impl<T> PullQueue<T> {
    pub(crate) fn new() -> Option<Self> {
        let pipe = readiness_pipe()?;
        Some(Self {
            state: Mutex::new(PullState {
                frames: VecDeque::new(),
                gaps: VecDeque::new(),
                ended: None,
                interrupted: false,
                flushing: false,
                freed: false,
                signalled: false,
                fd_in_use: false,
                waiters: 0,
                freed_slots: 0,
            }),
            ready: Condvar::new(),
            slots: Arc::new(Semaphore::new(MOQT_PULL_QUEUE_FRAMES as usize)),
            pipe,
        })
    }

    /// Makes the readiness pipe match the state (called with the state locked after each change).
    fn sync_fd(&self, state: &mut PullState<T>) {
        let readable = state.readable();
        if !state.fd_in_use || readable == state.signalled {
            return;
        }
        if readable {
            let byte = 1u8;
            // SAFETY: writes one byte from a local to our own pipe.
            unsafe { libc::write(self.pipe[1], (&byte as *const u8).cast(), 1) };
        } else {
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into a local from our own pipe.
            unsafe { libc::read(self.pipe[0], (&mut byte as *mut u8).cast(), 1) };
        }
        state.signalled = readable;
    }

    fn push(&self, frame: T) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.frames.push_back(frame);
        self.sync_fd(&mut state);
        if state.waiters > 0 {
            self.ready.notify_all();
        }
    }

    /// Gives the engine back the slots of taken frames, in batches (see [`SLOT_BATCH`]).
    fn free_slot(&self, state: &mut PullState<T>) {
        state.freed_slots += 1;
        if state.freed_slots >= SLOT_BATCH || state.frames.is_empty() {
            self.slots.add_permits(std::mem::take(&mut state.freed_slots));
        }
    }

    /// Queues a gap report; past MOQT_PULL_QUEUE_GAPS unread ones, the newest absorbs it (its
    /// range grows to cover both, its code is the latest).
    pub(crate) fn gap(&self, first: u64, last: u64, code: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.gaps.len() >= MOQT_PULL_QUEUE_GAPS as usize
            && let Some(newest) = state.gaps.back_mut()
        {
            *newest = (newest.0.min(first), newest.1.max(last), code);
            return;
        }
        state.gaps.push_back((first, last, code));
        self.sync_fd(&mut state);
    }

    pub(crate) fn end(&self, end: impl Into<TrackEnd>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.ended.is_none() {
            state.ended = Some(end.into());
            self.sync_fd(&mut state);
        }
        self.ready.notify_all();
    }
}

impl<T> PullQueue<T> {
    /// Queues `item` once a slot is free (backpressure on the engine task); false once the
    /// handle was freed.
    pub(crate) async fn send(&self, item: T) -> bool {
        let Ok(permit) = self.slots.clone().acquire_owned().await else { return false };
        // The slot comes back when the application takes the item.
        permit.forget();
        self.push(item);
        true
    }

    /// Takes the next item, waiting up to `timeout_ms` (0: do not wait; negative: forever), as
    /// `moqt_pull_next_frame` documents; `what` names the item in messages.
    pub(crate) fn take(&self, timeout_ms: i64, what: &str) -> FfiResult<T> {
        // Read the clock only if there is something to wait for.
        let mut deadline = None;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.freed {
                return Err(FfiError::new(moqt_status::ErrClosed, "the handle was freed"));
            }
            if state.flushing {
                return Err(FfiError::new(moqt_status::ErrInterrupted, "flushing"));
            }
            if let Some(item) = state.frames.pop_front() {
                self.sync_fd(&mut state);
                self.free_slot(&mut state);
                return Ok(item);
            }
            if std::mem::take(&mut state.interrupted) {
                return Err(FfiError::new(moqt_status::ErrInterrupted, "interrupted"));
            }
            if let Some(end) = state.ended {
                return Err(end.into());
            }
            if timeout_ms >= 0 && deadline.is_none() {
                deadline = Some(Instant::now() + Duration::from_millis(timeout_ms.unsigned_abs()));
            }
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ if timeout_ms == 0 => return Err(FfiError::new(moqt_status::ErrAgain, format!("no {what} queued"))),
                    _ => return Err(FfiError::new(moqt_status::ErrTimeout, format!("no {what} in time"))),
                },
            };
            state.waiters += 1;
            state = self.ready.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
            state.waiters -= 1;
        }
    }

    /// Wakes a waiting `take`, or makes the next one that finds nothing return at once.
    pub(crate) fn interrupt(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).interrupted = true;
        self.ready.notify_all();
    }

    /// Sets or clears flushing (and drops a pending interrupt when cleared).
    pub(crate) fn set_flushing(&self, flushing: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.flushing = flushing;
        if !flushing {
            state.interrupted = false;
        }
        drop(state);
        self.ready.notify_all();
    }

    /// The readiness fd, kept in step with the queue from now on.
    pub(crate) fn fd(&self) -> c_int {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.fd_in_use = true;
        self.sync_fd(&mut state);
        self.pipe[0]
    }

    /// The handle is being freed: a waiting `take` returns MOQT_STATUS_ERR_CLOSED, and the
    /// queued items are dropped (outside the lock).
    pub(crate) fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.freed = true;
        let items = std::mem::take(&mut state.frames);
        drop(state);
        self.ready.notify_all();
        drop(items);
    }
}

impl<T> Drop for PullQueue<T> {
    fn drop(&mut self) {
        for fd in self.pipe {
            // SAFETY: closes the descriptors we created, once.
            unsafe { libc::close(fd) };
        }
    }
}

/// Subscribes in pull mode: frames queue (up to MOQT_PULL_QUEUE_FRAMES, then the engine waits)
/// until `moqt_pull_next_frame` takes them.
///
/// Ownership: on success `*out` is new; free it with `moqt_pull_free`. Thread-safety: any thread.
/// Callbacks: none (frames wait in the queue). Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG, MOQT_STATUS_ERR_NO_MEMORY (no pipe),
/// MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_subscribe_pull(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    track: *const c_char,
    track_len: usize,
    out: *mut *mut moqt_pull,
) -> moqt_status {
    moqt_client_subscribe_pull_with(client, broadcast, broadcast_len, track, track_len, std::ptr::null(), out)
}

/// `moqt_client_subscribe_pull` with options (`NULL` for the defaults), as
/// `moqt_client_subscribe_with` takes them. Everything else is as `moqt_client_subscribe_pull`;
/// a bad `start_group` is MOQT_STATUS_ERR_INVALID_ARG.
///
/// Thread-safety: any thread. Callbacks: none. Returns as `moqt_client_subscribe_pull`.
///
/// Ownership: as `moqt_client_subscribe_pull`; `options` is only read during the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_subscribe_pull_with(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    track: *const c_char,
    track_len: usize,
    options: *const moqt_subscribe_options,
    out: *mut *mut moqt_pull,
) -> moqt_status {
    guard(|| {
        let client = try_ref(client)?;
        let out = Out::new(out)?;
        let broadcast = path_arg(broadcast, broadcast_len)?;
        let track = str_arg(track, track_len)?.to_string();
        let wanted = moqt_subscribe_options::read(options)?;
        let remote = client.remote();
        let pull = start_pull(client, wanted.options, move |queue, options| {
            feed(queue, remote, broadcast, track, options, wanted.frames, wanted.order)
        })?;
        out.set_boxed(pull);
        Ok(())
    })
}

/// A pull handle whose queue the engine task `feeding(queue, live option updates)` fills; the
/// queue ends with MOQT_STATUS_ERR_CLOSED when the client is freed, MOQT_STATUS_ERR_PANIC if
/// the task panics. The task ends the queue itself otherwise.
pub(crate) fn start_pull<F, Fut>(client: &moqt_client, options: SubscribeOptions, feeding: F) -> FfiResult<moqt_pull>
where
    F: FnOnce(Arc<PullQueue<moqt_frame>>, tokio::sync::watch::Receiver<SubscribeOptions>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let queue = PullQueue::new().ok_or_else(|| FfiError::new(moqt_status::ErrNoMemory, "cannot create the readiness pipe"))?;
    let runtime = runtime().ok_or_else(FfiError::no_engine)?;
    let shared = Arc::new(queue);
    let (updates, options) = tokio::sync::watch::channel(options);
    let ending = |status| {
        let queue = shared.clone();
        async move { queue.end(status) }
    };
    let feeding = client.unless_freed(feeding(shared.clone(), options), ending(moqt_status::ErrClosed));
    let task = spawn_task(&runtime, feeding, ending(moqt_status::ErrPanic));
    Ok(moqt_pull { shared, task, updates })
}

async fn feed(
    queue: Arc<PullQueue<moqt_frame>>,
    remote: OriginProducer,
    wanted: Path,
    name: String,
    options: tokio::sync::watch::Receiver<SubscribeOptions>,
    frames: FrameBounds,
    order: Order,
) {
    let status = follow_track(remote, wanted, name, options, frames, order, |delivery| {
        let queue = queue.clone();
        async move {
            match delivery {
                Delivery::Frame(frame) => queue.send(frame).await,
                Delivery::Gap(gap) => {
                    queue.gap(gap.start, gap.end, gap.reason.code().to_u64());
                    true
                }
            }
        }
    })
    .await;
    queue.end(status);
}

/// Takes the next frame, waiting up to `timeout_ms` (0: do not wait; negative: wait forever).
/// On MOQT_STATUS_OK `*out` holds a frame the caller owns: release it with `moqt_frame_unref`.
///
/// Thread-safety: any thread; one waiter at a time is the intended use. A waiting call may be
/// ended from another thread by `moqt_pull_interrupt`, `moqt_pull_set_flushing` or
/// `moqt_pull_free` (which this call may overlap in any way: see there). Callbacks: none.
/// Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_AGAIN (nothing queued and timeout 0), MOQT_STATUS_ERR_TIMEOUT,
/// MOQT_STATUS_ERR_INTERRUPTED (`moqt_pull_interrupt`, or at once while flushing: see
/// `moqt_pull_set_flushing`; `moqt_last_error` says which), once every frame was taken:
/// MOQT_STATUS_END (the publisher finished the track, or the end group was reached: a clean end,
/// not an error), MOQT_STATUS_ERR_ABORTED (the publisher or a relay aborted the track; the code
/// is in `moqt_last_error_code`), MOQT_STATUS_ERR_NOT_FOUND, MOQT_STATUS_ERR_CLOSED (the client
/// was freed or the session carrying the track closed, or the handle was freed while this call
/// waited), MOQT_STATUS_ERR_PANIC (the engine task behind it failed); and
/// MOQT_STATUS_ERR_INVALID_ARG. The end is reported again on every later call, with the same
/// status `on_closed` gets in push mode.
///
/// Ownership: on MOQT_STATUS_OK the frame in `*out` is the caller's reference.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_pull_next_frame(
    pull: *const moqt_pull,
    timeout_ms: i64,
    out: *mut *const moqt_frame,
) -> moqt_status {
    guard(|| {
        // Only our own reference to the queue is used after this, taken while `moqt_pull_free`
        // cannot free the handle: a free from another thread, before or while we wait, frees
        // nothing we touch.
        let queue = racing_ref(pull, |pull| Ok(pull.shared.clone()))?;
        let out = Out::new(out)?;
        let frame = queue.take(timeout_ms, "frame")?;
        out.write(frame.into_handle());
        Ok(())
    })
}

/// Wakes a `moqt_pull_next_frame` that is waiting, which returns MOQT_STATUS_ERR_INTERRUPTED.
/// With no waiter the interrupt stays pending: the next `moqt_pull_next_frame` that finds no
/// frame queued returns MOQT_STATUS_ERR_INTERRUPTED at once (several interrupts count as one;
/// `moqt_pull_set_flushing(pull, false)` clears it). NULL is accepted and does nothing.
///
/// Thread-safety: any thread (typically another one than the waiter). Callbacks: none.
///
/// Ownership: nothing changes hands.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_pull_interrupt(pull: *const moqt_pull) {
    guard_void(|| {
        if let Some(pull) = opt_ref(pull) {
            pull.shared.interrupt();
        }
        Ok(())
    })
}

/// Sets or clears flushing, as a GStreamer source's `unlock` and `unlock_stop` need. While
/// flushing, `moqt_pull_next_frame` returns MOQT_STATUS_ERR_INTERRUPTED at once (a waiting call
/// wakes now), frames queued or not; queued frames, gap reports and the end stay for later.
/// Clearing it also drops a pending `moqt_pull_interrupt`, so the next wait is a real one.
///
/// Thread-safety: any thread (typically another one than the waiter). Callbacks: none.
/// Returns MOQT_STATUS_OK or MOQT_STATUS_ERR_INVALID_ARG (NULL `pull`).
///
/// Ownership: nothing changes hands.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_pull_set_flushing(pull: *const moqt_pull, flushing: bool) -> moqt_status {
    guard(|| {
        try_ref(pull)?.shared.set_flushing(flushing);
        Ok(())
    })
}

/// A file descriptor that is readable while frames or gap reports are queued, or once the track
/// ended (level-triggered); -1 for NULL. Poll it, then take what is there with
/// `moqt_pull_next_frame` (timeout 0) and `moqt_pull_next_gap` until both return
/// MOQT_STATUS_ERR_AGAIN (or the end): it stays readable until then. The descriptor is
/// close-on-exec.
///
/// Lifetime: valid until `moqt_pull_free`; do not read from or close it. Thread-safety: any thread.
/// Callbacks: none. Returns the descriptor, or -1 for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_pull_fd(pull: *const moqt_pull) -> c_int {
    opt_ref(pull).map_or(-1, |pull| pull.shared.fd())
}

/// Stops a pull subscription and frees it, with any frames still queued. NULL is accepted.
///
/// Thread-safety: any thread, also while another thread is in `moqt_pull_next_frame` on it,
/// however the two overlap (it waits, or is just entering, as a streaming loop racing a stop
/// is): that call returns MOQT_STATUS_ERR_CLOSED. Any other call with the handle after the free,
/// and a `moqt_pull_next_frame` the program starts after the free returned, use a freed handle
/// (undefined behaviour, like any use after free). Callbacks: none.
///
/// Ownership: ends the caller's handle; frames already taken stay valid until unreferenced.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_pull_free(pull: *mut moqt_pull) {
    guard_void(|| {
        let Some(pull) = take_box(pull) else { return Ok(()) };
        pull.task.abort();
        pull.shared.close();
        Ok(())
    })
}

/// Changes a pull subscription's priority and max age, as `moqt_subscription_update` does.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK or
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `pull` or `options`).
///
/// Ownership: `options` is only read during the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_pull_update(pull: *const moqt_pull, options: *const moqt_subscribe_options) -> moqt_status {
    guard(|| super::follow::update(&try_ref(pull)?.updates, options))
}

/// Takes the oldest gap report not yet taken: groups `*first..=*last` will not arrive (expired,
/// dropped by the publisher or a relay, skipped), with the moq-lite code why. Frames of groups
/// before `*first` were queued before the gap, frames of later groups after it (in ordered
/// delivery a gap sits in its place in the sequence). Never waits; the readiness fd is readable
/// while a report waits. A group cut short in ordered delivery (late) is reported too, after
/// the frames of it that were delivered. At most MOQT_PULL_QUEUE_GAPS reports wait; beyond that
/// the newest grows to cover the next.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK (the outs are written),
/// MOQT_STATUS_ERR_AGAIN (no gap pending), MOQT_STATUS_ERR_INVALID_ARG (a NULL argument).
///
/// Ownership: the outs are the caller's, written on MOQT_STATUS_OK.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_pull_next_gap(
    pull: *const moqt_pull,
    first: *mut u64,
    last: *mut u64,
    code: *mut u64,
) -> moqt_status {
    guard(|| {
        let pull = try_ref(pull)?;
        let (Some(first), Some(last), Some(code)) = (Out::optional(first), Out::optional(last), Out::optional(code))
        else {
            return Err(FfiError::invalid("first, last and code must not be NULL"));
        };
        let gap = {
            let mut state = pull.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            let gap = state.gaps.pop_front();
            pull.shared.sync_fd(&mut state);
            gap
        };
        let (start, end, why) = gap.ok_or_else(|| FfiError::new(moqt_status::ErrAgain, "no gap pending"))?;
        first.write(start);
        last.write(end);
        code.write(why);
        Ok(())
    })
}

/// Drops every frame queued and not yet taken (a player seeking, or catching up after falling
/// behind) and returns how many; the engine goes on queueing frames that arrive after. Gap
/// reports and the end of the track are kept. 0 for NULL.
///
/// Thread-safety: any thread. Callbacks: none.
///
/// Ownership: the dropped frames are released by moqt; frames already taken are not touched.
/// Returns how many frames were dropped.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_pull_flush(pull: *const moqt_pull) -> usize {
    let mut dropped = 0;
    guard_void(|| {
        let Some(pull) = opt_ref(pull) else { return Ok(()) };
        let queue = &pull.shared;
        let mut state = queue.state.lock().unwrap_or_else(PoisonError::into_inner);
        dropped = state.frames.len();
        state.frames.clear();
        queue.sync_fd(&mut state);
        queue.slots.add_permits(dropped);
        Ok(())
    });
    dropped
}
