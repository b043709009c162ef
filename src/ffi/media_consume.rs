//! Consuming a hang media broadcast from C: `moqt_media_consumer` follows its catalog (by pull,
//! on the pull queue's machinery, or by callbacks, on a `CallbackSet`), `moqt_catalog` is one
//! catalog, refcounted, read through plain structs; `moqt_media_subscribe` reads a rendition's
//! samples into an ordinary `moqt_pull`, fed by `media::MediaTrackReader`.

use std::ffi::{c_char, c_int, c_void};
use std::future::Future;
use std::sync::Arc;

use super::args::{Out, SizedOut, SizedStruct, path_arg, str_arg};
use super::callbacks::{CallbackSet, CallbacksStruct, ClosedFn, Feed, FreeFn};
use super::client::moqt_client;
use super::error::{FfiError, FfiResult, guard, guard_void, moqt_status};
use super::follow::{Order, TrackEnd, moqt_subscribe_options};
use super::frame::moqt_frame;
use super::handle::{
    Castable, OwnershipArc, OwnershipBox, add_ref, arc_ptr, opt_ref, racing_ref, release, take_box, try_ref,
};
use super::media_publish::moqt_container;
use super::pull::{PullQueue, moqt_pull, start_pull};
use super::runtime::{runtime, spawn_task};
use crate::coding::Path;
use crate::media::{
    Catalog, CatalogReader, CatalogSettings, Container, MediaError, MediaEvent, MediaTrackReader, ReadOptions, Rendition,
};
use crate::model::OriginProducer;

/// The kind of a rendition (`kind` of `moqt_rendition`, a `uint32_t` there).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moqt_media_kind {
    /// A video rendition.
    Video = 0,
    /// An audio rendition.
    Audio = 1,
}

/// One rendition of a catalog, filled by `moqt_catalog_rendition`. Set `struct_size =
/// sizeof(moqt_rendition)` first; the library fills the rest (up to `struct_size`). Every pointer
/// points into the catalog and stays valid while the catalog is referenced; strings are also
/// NUL-terminated. Absent numbers read 0, absent bytes NULL with a length of 0.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_rendition {
    /// `sizeof(moqt_rendition)`, set by the caller.
    pub struct_size: u32,
    /// The rendition's track name (what `moqt_media_subscribe` takes).
    pub name: *const c_char,
    /// Bytes at `name`, without the NUL.
    pub name_len: usize,
    /// A `moqt_media_kind` value.
    pub kind: u32,
    /// The RFC 6381 codec string.
    pub codec: *const c_char,
    /// Bytes at `codec`, without the NUL.
    pub codec_len: usize,
    /// The decoder configuration (avcC, hvcC, av1C, AudioSpecificConfig, OpusHead), or NULL.
    pub description: *const u8,
    /// Bytes at `description`.
    pub description_len: usize,
    /// Video: picture width in pixels; 0 if absent or audio.
    pub coded_width: u32,
    /// Video: picture height in pixels.
    pub coded_height: u32,
    /// Video: frames per second; 0 if absent.
    pub framerate: f64,
    /// Bits per second; 0 if absent.
    pub bitrate: u64,
    /// Audio: samples per second; 0 for video.
    pub sample_rate: u32,
    /// Audio: channel count; 0 for video.
    pub channels: u32,
    /// A `moqt_container` value (MOQT_CONTAINER_UNKNOWN for a kind moqt does not read).
    pub container: u32,
    /// The CMAF init segment (ftyp+moov), or NULL.
    pub init: *const u8,
    /// Bytes at `init`.
    pub init_len: usize,
}

// SAFETY: repr(C), struct_size first, every field an integer, a float or a pointer.
unsafe impl SizedStruct for moqt_rendition {}

/// Text handed to C: the bytes and a NUL after them.
struct CText(Vec<u8>);

impl CText {
    fn new(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        CText(bytes)
    }

    fn ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }

    fn len(&self) -> usize {
        self.0.len() - 1
    }
}

/// A rendition's texts, kept with the catalog so C's pointers stay valid.
struct RenditionText {
    name: CText,
    codec: CText,
}

/// A catalog of a media broadcast: immutable and refcounted (C holds references to an `Arc`).
#[allow(non_camel_case_types)]
pub struct moqt_catalog {
    catalog: Catalog,
    json: CText,
    /// In the order of `catalog.renditions()`: video first, then audio, each by name.
    texts: Vec<RenditionText>,
}

impl Castable for moqt_catalog {
    type Ownership = OwnershipArc;
    const NAME: &'static str = "catalog";
}

impl moqt_catalog {
    fn new(catalog: Catalog) -> Self {
        let json = CText::new(&String::from_utf8_lossy(&catalog.to_json()));
        let texts = catalog
            .renditions()
            .map(|(name, rendition)| RenditionText { name: CText::new(name), codec: CText::new(rendition.codec()) })
            .collect();
        moqt_catalog { catalog, json, texts }
    }
}

/// Bytes for C: NULL with 0 when absent or empty.
fn bytes_out(bytes: Option<&[u8]>) -> (*const u8, usize) {
    match bytes {
        Some(bytes) if !bytes.is_empty() => (bytes.as_ptr(), bytes.len()),
        _ => (std::ptr::null(), 0),
    }
}

/// Keeps `catalog` past the call or callback that lent it; balance with `moqt_catalog_unref`.
///
/// Ownership: returns a new reference to the same catalog (the same pointer). Thread-safety: any
/// thread. Callbacks: none. Returns `catalog`, or NULL for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_catalog_ref(catalog: *const moqt_catalog) -> *const moqt_catalog {
    add_ref(catalog)
}

/// Releases a reference to a catalog (from `moqt_media_next_catalog` or `moqt_catalog_ref`).
/// NULL is accepted.
///
/// Ownership: the caller's reference ends; pointers read from the catalog are invalid after the
/// last one. Thread-safety: any thread. Callbacks: none.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_catalog_unref(catalog: *const moqt_catalog) {
    release(catalog);
}

/// The catalog as JSON (hang's format, compact, NUL-terminated); `len_out` (if not NULL)
/// receives its length without the NUL.
///
/// Lifetime: valid while the catalog is referenced. Thread-safety: any thread. Callbacks: none.
/// Returns NULL for a NULL catalog (and a length of 0).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_catalog_json(catalog: *const moqt_catalog, len_out: *mut usize) -> *const c_char {
    let (ptr, len) = opt_ref(catalog).map_or((std::ptr::null(), 0), |c| (c.json.ptr(), c.json.len()));
    if let Some(len_out) = Out::optional(len_out) {
        len_out.write(len);
    }
    ptr
}

/// How many renditions the catalog has (video first, then audio, each in name order).
///
/// Thread-safety: any thread. Callbacks: none. Returns the count, 0 for NULL.
///
/// Lifetime: `catalog` must be referenced.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_catalog_rendition_count(catalog: *const moqt_catalog) -> usize {
    opt_ref(catalog).map_or(0, |c| c.texts.len())
}

/// Fills `*out` with rendition `index` (below `moqt_catalog_rendition_count`). `out->struct_size`
/// must be set; only that many bytes are written.
///
/// Ownership: `*out` is the caller's; its pointers point into the catalog and stay valid while
/// the catalog is referenced. Thread-safety: any thread. Callbacks: none. Returns
/// MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, an index out of range, a `struct_size`
/// smaller than its first field).
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_catalog_rendition(
    catalog: *const moqt_catalog,
    index: usize,
    out: *mut moqt_rendition,
) -> moqt_status {
    guard(|| {
        let catalog = try_ref(catalog)?;
        let out = SizedOut::new(out).ok_or_else(|| FfiError::invalid("out is NULL"))?;
        if (out.struct_size() as usize) < std::mem::size_of::<u32>() {
            return Err(FfiError::invalid("out->struct_size is not set"));
        }
        let ((_, rendition), text) = catalog
            .catalog
            .renditions()
            .zip(&catalog.texts)
            .nth(index)
            .ok_or_else(|| FfiError::invalid(format!("rendition {index} of {}", catalog.texts.len())))?;
        let container = match rendition.container() {
            Container::Legacy => moqt_container::Legacy,
            Container::Cmaf { .. } => moqt_container::Cmaf,
            Container::Unknown(_) => moqt_container::Unknown,
        };
        let (init, init_len) = bytes_out(match rendition.container() {
            Container::Cmaf { init } => Some(init),
            _ => None,
        });
        let mut value = moqt_rendition {
            struct_size: out.struct_size(),
            name: text.name.ptr(),
            name_len: text.name.len(),
            kind: moqt_media_kind::Video as u32,
            codec: text.codec.ptr(),
            codec_len: text.codec.len(),
            description: std::ptr::null(),
            description_len: 0,
            coded_width: 0,
            coded_height: 0,
            framerate: 0.0,
            bitrate: 0,
            sample_rate: 0,
            channels: 0,
            container: container as u32,
            init,
            init_len,
        };
        match rendition {
            Rendition::Video(video) => {
                (value.description, value.description_len) = bytes_out(video.description.as_deref());
                value.coded_width = video.coded_width.unwrap_or(0);
                value.coded_height = video.coded_height.unwrap_or(0);
                value.framerate = video.framerate.unwrap_or(0.0);
                value.bitrate = video.bitrate.unwrap_or(0);
            }
            Rendition::Audio(audio) => {
                value.kind = moqt_media_kind::Audio as u32;
                (value.description, value.description_len) = bytes_out(audio.description.as_deref());
                value.sample_rate = audio.sample_rate;
                value.channels = audio.number_of_channels;
                value.bitrate = audio.bitrate.unwrap_or(0);
            }
        }
        out.write(value);
        Ok(())
    })
}

/// `on_catalog` of `moqt_media_callbacks`: a new catalog, lent for the call
/// (`moqt_catalog_ref` keeps it).
#[allow(non_camel_case_types)]
pub type moqt_catalog_fn = Option<extern "C" fn(user_data: *mut c_void, catalog: *const moqt_catalog)>;

/// Callbacks of `moqt_client_consume_media_with`. Zero-initialise, then set `struct_size`. They
/// run on the dispatcher thread, one at a time, in order, like a subscription's.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_media_callbacks {
    /// `sizeof(moqt_media_callbacks)`.
    pub struct_size: u32,
    /// Passed first to every callback.
    pub user_data: *mut c_void,
    /// Called exactly once, after the last other callback, even if consuming failed.
    pub user_data_free: Option<extern "C" fn(user_data: *mut c_void)>,
    /// Each complete catalog, the first one and each change.
    pub on_catalog: moqt_catalog_fn,
    /// The catalog track ended (the terminal callback): MOQT_STATUS_END when the publisher
    /// finished the broadcast (`moqt_media_finish`), or an error status as a subscription's
    /// `on_closed` gets (`moqt_last_error` describes it during the call).
    pub on_closed: Option<extern "C" fn(user_data: *mut c_void, status: moqt_status)>,
}

// SAFETY: repr(C), struct_size first, every field a pointer or an optional function pointer.
unsafe impl SizedStruct for moqt_media_callbacks {}

impl CallbacksStruct for moqt_media_callbacks {
    type Events = moqt_catalog_fn;
    fn parts(self) -> (*mut c_void, FreeFn, ClosedFn, moqt_catalog_fn) {
        (self.user_data, self.user_data_free, self.on_closed, self.on_catalog)
    }
}

/// How a consumer hands catalogs over.
enum Delivery {
    Pull { queue: Arc<PullQueue<Arc<moqt_catalog>>>, task: tokio::task::AbortHandle },
    Push(Feed<moqt_catalog_fn>),
}

/// A media broadcast followed by its catalog.
#[allow(non_camel_case_types)]
pub struct moqt_media_consumer {
    delivery: Delivery,
}

impl Castable for moqt_media_consumer {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "consumer";
    const RACES_WITH_FREE: bool = true;
}

impl moqt_media_consumer {
    fn queue(&self) -> FfiResult<&Arc<PullQueue<Arc<moqt_catalog>>>> {
        match &self.delivery {
            Delivery::Pull { queue, .. } => Ok(queue),
            Delivery::Push(_) => Err(FfiError::new(
                moqt_status::ErrUnsupported,
                "this consumer delivers catalogs by callback (moqt_client_consume_media_with)",
            )),
        }
    }
}

/// Follows the catalog of broadcast `path`, handing each catalog to `deliver` (false stops);
/// returns how it ended. A malformed catalog is skipped (the next one may be fine).
async fn follow_catalogs<F, Fut>(remote: OriginProducer, path: Path, mut deliver: F) -> TrackEnd
where
    F: FnMut(Arc<moqt_catalog>) -> Fut,
    Fut: Future<Output = bool>,
{
    let Some(broadcast) = remote.consume().announced(&path).await else { return moqt_status::ErrClosed.into() };
    let mut reader = match CatalogReader::subscribe(&broadcast, CatalogSettings::default()).await {
        Ok(reader) => reader,
        Err(err) => return media_end(err),
    };
    loop {
        match reader.next().await {
            Ok(Some(catalog)) => {
                if !deliver(Arc::new(moqt_catalog::new(catalog))).await {
                    return moqt_status::ErrClosed.into();
                }
            }
            Ok(None) => return moqt_status::End.into(),
            Err(MediaError::Model(err)) => return TrackEnd::of(&Err(err)),
            Err(err) => tracing::warn!("a catalog was skipped: {err}"),
        }
    }
}

/// How a media read that failed ends, as C sees it.
fn media_end(err: MediaError) -> TrackEnd {
    match err {
        MediaError::Model(err) => TrackEnd::of(&Err(err)),
        MediaError::NoRendition(_) => moqt_status::ErrNotFound.into(),
        MediaError::UnsupportedContainer { .. } => moqt_status::ErrUnsupported.into(),
        _ => moqt_status::ErrProtocol.into(),
    }
}

/// Consumes the media broadcast `broadcast` (`broadcast_len` may be SIZE_MAX for NUL-terminated):
/// subscribes to its `catalog.json` once it is announced and queues each complete catalog (the
/// newest first, then each change) for `moqt_media_next_catalog`.
///
/// Ownership: on success `*out` is new; free it with `moqt_media_consumer_free`. Thread-safety:
/// any thread. Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, a bad
/// path), MOQT_STATUS_ERR_NO_MEMORY (no pipe), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_consume_media(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    out: *mut *mut moqt_media_consumer,
) -> moqt_status {
    guard(|| {
        let client = try_ref(client)?;
        let out = Out::new(out)?;
        let path = path_arg(broadcast, broadcast_len)?;
        let queue = Arc::new(
            PullQueue::new().ok_or_else(|| FfiError::new(moqt_status::ErrNoMemory, "cannot create the readiness pipe"))?,
        );
        let runtime = runtime().ok_or_else(FfiError::no_engine)?;
        let ending = |status| {
            let queue = queue.clone();
            async move { queue.end(status) }
        };
        let feeding = {
            let queue = queue.clone();
            let remote = client.remote();
            async move {
                let end = follow_catalogs(remote, path, |catalog| {
                    let queue = queue.clone();
                    async move { queue.send(catalog).await }
                })
                .await;
                queue.end(end);
            }
        };
        let feeding = client.unless_freed(feeding, ending(moqt_status::ErrClosed));
        let task = spawn_task(&runtime, feeding, ending(moqt_status::ErrPanic));
        out.set_boxed(moqt_media_consumer { delivery: Delivery::Pull { queue, task } });
        Ok(())
    })
}

/// Consumes the media broadcast `broadcast` as `moqt_client_consume_media` does, handing each
/// catalog to `on_catalog` instead of a queue.
///
/// Ownership: on success `*out` is new; free it with `moqt_media_consumer_free`. `callbacks` is
/// only read during the call. Thread-safety: any thread. Callbacks: on_catalog, then on_closed
/// (terminal), then user_data_free, on the dispatcher thread; user_data_free also when this call
/// fails. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL client, callbacks or out, a
/// bad path), MOQT_STATUS_ERR_NO_MEMORY, MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_consume_media_with(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    callbacks: *const moqt_media_callbacks,
    out: *mut *mut moqt_media_consumer,
) -> moqt_status {
    guard(|| {
        let set = CallbackSet::read(callbacks)?;
        set.starting(|set| {
            let client = try_ref(client)?;
            let out = Out::new(out)?;
            let path = path_arg(broadcast, broadcast_len)?;
            let runtime = runtime().ok_or_else(FfiError::no_engine)?;
            let feeding = {
                let set = set.clone();
                let remote = client.remote();
                async move {
                    let end = follow_catalogs(remote, path, |catalog| {
                        let set = set.clone();
                        async move {
                            set.callback(move |on_catalog, user_data| {
                                if let Some(on_catalog) = on_catalog {
                                    let lent = arc_ptr(catalog);
                                    on_catalog(user_data, lent);
                                    release(lent);
                                }
                            })
                            .await;
                            true
                        }
                    })
                    .await;
                    set.close(end).await;
                }
            };
            let feeding = client.unless_freed(feeding, set.closing(moqt_status::ErrClosed));
            let feed = Feed::spawn(&runtime, set.clone(), feeding);
            out.set_boxed(moqt_media_consumer { delivery: Delivery::Push(feed) });
            Ok(())
        })
    })
}

/// Takes the next catalog, waiting up to `timeout_ms` (0: do not wait; negative: wait forever),
/// as `moqt_pull_next_frame` takes frames. On MOQT_STATUS_OK `*out` is a catalog the caller
/// owns: release it with `moqt_catalog_unref`.
///
/// Thread-safety: any thread; a waiting call is ended by `moqt_media_consumer_interrupt` or
/// `moqt_media_consumer_free` from another. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_AGAIN (none queued, timeout 0), MOQT_STATUS_ERR_TIMEOUT,
/// MOQT_STATUS_ERR_INTERRUPTED, once every catalog was taken MOQT_STATUS_END (the publisher
/// finished the broadcast) or how the catalog track failed (MOQT_STATUS_ERR_ABORTED,
/// MOQT_STATUS_ERR_NOT_FOUND, MOQT_STATUS_ERR_CLOSED: the client was freed), again on every later
/// call; MOQT_STATUS_ERR_UNSUPPORTED for a consumer with callbacks; MOQT_STATUS_ERR_INVALID_ARG.
///
/// Ownership: on MOQT_STATUS_OK the catalog in `*out` is the caller's reference.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_next_catalog(
    consumer: *const moqt_media_consumer,
    timeout_ms: i64,
    out: *mut *const moqt_catalog,
) -> moqt_status {
    guard(|| {
        // Our own reference to the queue, taken while a free cannot free the handle: a free from
        // another thread, before or while we wait, frees nothing we touch.
        let queue = racing_ref(consumer, |consumer| Ok(consumer.queue()?.clone()))?;
        let out = Out::new(out)?;
        let catalog = queue.take(timeout_ms, "catalog")?;
        out.write(arc_ptr(catalog));
        Ok(())
    })
}

/// A file descriptor readable while catalogs are queued or once the catalog track ended
/// (level-triggered, as `moqt_pull_fd`); -1 for NULL or a consumer with callbacks.
///
/// Lifetime: valid until `moqt_media_consumer_free`; do not read from or close it.
/// Thread-safety: any thread. Callbacks: none. Returns the descriptor, or -1.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_media_consumer_fd(consumer: *const moqt_media_consumer) -> c_int {
    opt_ref(consumer).and_then(|c| c.queue().ok()).map_or(-1, |queue| queue.fd())
}

/// Wakes a `moqt_media_next_catalog` that is waiting (MOQT_STATUS_ERR_INTERRUPTED), or makes
/// the next one that finds nothing queued return so at once. NULL, and a consumer with
/// callbacks, are accepted and do nothing.
///
/// Thread-safety: any thread. Callbacks: none.
///
/// Ownership: nothing changes hands.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_media_consumer_interrupt(consumer: *const moqt_media_consumer) {
    guard_void(|| {
        if let Some(queue) = opt_ref(consumer).and_then(|c| c.queue().ok()) {
            queue.interrupt();
        }
        Ok(())
    })
}

/// Stops following the catalog and frees the consumer, with any catalogs still queued. NULL is
/// accepted. With callbacks: no callback runs after it returns except `user_data_free` (once,
/// later, on the dispatcher); it may be called from inside one of this consumer's callbacks.
///
/// Thread-safety: any thread; blocks until a callback in progress on another thread returns; a
/// `moqt_media_next_catalog` on another thread, waiting or just entering, returns
/// MOQT_STATUS_ERR_CLOSED (as `moqt_pull_free` documents).
/// Callbacks: only `user_data_free`.
///
/// Ownership: ends the caller's handle; catalogs already taken stay valid until unreferenced.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_media_consumer_free(consumer: *mut moqt_media_consumer) {
    guard_void(|| {
        let Some(consumer) = take_box(consumer) else { return Ok(()) };
        match consumer.delivery {
            Delivery::Pull { queue, task } => {
                task.abort();
                queue.close();
            }
            Delivery::Push(feed) => feed.stop(true),
        }
        Ok(())
    })
}

/// Subscribes to rendition `name` of `catalog` (a catalog of broadcast `broadcast`, from
/// `moqt_media_next_catalog` or `on_catalog`), in pull mode: a normal `moqt_pull` whose frames
/// are media samples, in decode order. For each: `moqt_frame_data` is the codec payload (legacy:
/// after the timestamp; CMAF: one sample of the fragment), `moqt_frame_timestamp_us` its
/// presentation time from the container (on every moq-lite version; `moqt_frame_has_timestamp`
/// true), `moqt_frame_is_keyframe` the sample's flag, `moqt_frame_group` its group and
/// `moqt_frame_index` its position among the group's samples. Groups skipped or lost are
/// reported by `moqt_pull_next_gap`; a frame that does not fit its container ends its group,
/// reported there with the MALFORMED_TRACK code 0x12. `moqt_pull_fd`,
/// `moqt_pull_interrupt`, `moqt_pull_set_flushing` and `moqt_pull_flush` work as for any pull;
/// `moqt_pull_update` changes nothing here.
///
/// `options` (NULL: the live edge, ordered, the default latency): `start_group` and
/// `max_latency_ms` apply; `delivery` must be MOQT_DELIVERY_ORDERED; end groups and frame bounds
/// are refused (MOQT_STATUS_ERR_UNSUPPORTED); priority and max age are the rendition's.
///
/// Ownership: on success `*out` is new; free it with `moqt_pull_free`. `catalog` is only read
/// during the call (the subscription keeps what it needs). Thread-safety: any thread. Callbacks:
/// none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, bad UTF-8, bad options),
/// MOQT_STATUS_ERR_NOT_FOUND (no rendition `name` in `catalog`), MOQT_STATUS_ERR_UNSUPPORTED (a
/// container moqt does not read, options as above), MOQT_STATUS_ERR_NO_MEMORY, MOQT_STATUS_ERR_PANIC.
/// How the track ends comes from `moqt_pull_next_frame`: MOQT_STATUS_END once the publisher
/// finished or removed the rendition.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_subscribe(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    catalog: *const moqt_catalog,
    name: *const c_char,
    name_len: usize,
    options: *const moqt_subscribe_options,
    out: *mut *mut moqt_pull,
) -> moqt_status {
    guard(|| {
        let client = try_ref(client)?;
        let catalog = try_ref(catalog)?;
        let out = Out::new(out)?;
        let path = path_arg(broadcast, broadcast_len)?;
        let name = str_arg(name, name_len)?.to_owned();
        let rendition = catalog
            .catalog
            .rendition(&name)
            .ok_or_else(|| FfiError::new(moqt_status::ErrNotFound, format!("no rendition {name:?} in the catalog")))?;
        if let Container::Unknown(_) = rendition.container() {
            return Err(FfiError::new(
                moqt_status::ErrUnsupported,
                format!("rendition {name:?} uses container {:?}, which moqt does not read", rendition.container().kind()),
            ));
        }
        let wanted = moqt_subscribe_options::read(options)?;
        if wanted.options.end.is_some() || wanted.frames.start_frame > 0 || wanted.frames.end.is_some() {
            return Err(FfiError::new(
                moqt_status::ErrUnsupported,
                "a media subscription takes no end group and no frame bounds",
            ));
        }
        let max_latency = match wanted.order {
            Order::Ordered(latency) => latency,
            Order::Arrival => {
                return Err(FfiError::new(
                    moqt_status::ErrUnsupported,
                    "media samples come in decode order: use MOQT_DELIVERY_ORDERED",
                ));
            }
        };
        let read = ReadOptions { start: wanted.options.start, max_latency };
        let (remote, catalog) = (client.remote(), catalog.catalog.clone());
        let pull = start_pull(client, wanted.options, move |queue, _updates| async move {
            let end = read_media(&queue, remote, path, catalog, name, read).await;
            queue.end(end);
        })?;
        out.set_boxed(pull);
        Ok(())
    })
}

/// Reads rendition `name` of the broadcast `path` into `queue` until it ends; returns how.
async fn read_media(
    queue: &PullQueue<moqt_frame>,
    remote: OriginProducer,
    path: Path,
    catalog: Catalog,
    name: String,
    options: ReadOptions,
) -> TrackEnd {
    super::test_panic_point(&name);
    let Some(broadcast) = remote.consume().announced(&path).await else { return moqt_status::ErrClosed.into() };
    let mut reader = match MediaTrackReader::subscribe(&broadcast, &catalog, &name, options).await {
        Ok(reader) => reader,
        Err(err) => return media_end(err),
    };
    // The group of the last sample and the index of the next one in it.
    let mut position = (None, 0u64);
    loop {
        match reader.next().await {
            Ok(Some(MediaEvent::Frame(frame))) => {
                let index = if position.0 == Some(frame.group) { position.1 } else { 0 };
                position = (Some(frame.group), index + 1);
                if !queue.send(moqt_frame::media(frame, index)).await {
                    return moqt_status::ErrClosed.into();
                }
            }
            Ok(Some(MediaEvent::Gap(gap))) => queue.gap(gap.start, gap.end, gap.reason.code().to_u64()),
            Ok(None) => return moqt_status::End.into(),
            Err(err) => return media_end(err),
        }
    }
}
