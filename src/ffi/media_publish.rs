//! `moqt_media` and `moqt_media_track`: publishing a hang media broadcast (a `catalog.json`
//! track kept in step with the renditions, one track per rendition) from C. A rendition is
//! described by a config struct, or derived from raw parameter sets by the codec helpers
//! (`media::codec`); its frames are samples with a presentation time, and a keyframe opens a
//! group. Everything here maps onto `media::MediaBroadcast` and `media::MediaTrackWriter`.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::args::{Out, SizedStruct, bytes_arg, optional_cstr, path_arg, read_sized, str_arg};
use super::client::moqt_client;
use super::error::{FfiError, FfiResult, guard, guard_void, moqt_status};
use super::handle::{Castable, OwnershipBox, take_box, try_ref};
use super::publish::{guard_zero_copy, moqt_free_fn};
use super::runtime::{on_dispatcher, runtime};
use crate::media::codec::{self, CodecError, VideoInfo};
use crate::media::{AudioConfig, Container, MediaBroadcast, MediaError, MediaTrackWriter, VideoConfig};
use crate::model::{self, Published, Route};

/// Flag of `moqt_media_track_write`: this sample is a keyframe (a decoder can start here); it
/// opens a new group. The same bit as MOQT_FRAME_NEW_GROUP, which means the same there.
pub const MOQT_MEDIA_KEYFRAME: u32 = 1;

/// A codec, for `codec_id` of `moqt_video_config` and `moqt_audio_config` (a `uint32_t` there,
/// so an unknown value is an error, not undefined behaviour).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moqt_codec {
    /// Not said: `codec` (the RFC 6381 string) is required and nothing is derived.
    None = 0,
    /// H.264/AVC: `avc1.PPCCLL`, or `avc3.` in band.
    H264 = 1,
    /// H.265/HEVC: `hvc1.`, or `hev1.` in band.
    H265 = 2,
    /// AV1: `av01.`.
    Av1 = 3,
    /// VP8: `vp8`.
    Vp8 = 4,
    /// VP9: `vp09.` (the full string is required).
    Vp9 = 5,
    /// Opus: `opus`.
    Opus = 6,
    /// AAC: `mp4a.40.N`.
    Aac = 7,
}

/// How a rendition's frames are laid out (`container` of the configs and of `moqt_rendition`, a
/// `uint32_t` there).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moqt_container {
    /// Each frame: a varint presentation time (µs), then the codec payload. The default (0).
    Legacy = 0,
    /// Each frame: one moof+mdat fragment of the rendition's init segment (ftyp+moov).
    Cmaf = 1,
    /// A kind moqt does not read (only reported by `moqt_catalog_rendition`).
    Unknown = 2,
}

/// A video rendition, for `moqt_media_add_video` and `moqt_media_update_video`. Zero-initialise
/// (every zero is "absent" or the default), set `struct_size = sizeof(...)`, then describe the
/// codec one of three ways:
/// - `parameter_sets` with `codec_id` H264 or H265 (Annex-B SPS and PPS, and VPS for H.265) or
///   AV1 (OBUs holding the sequence header): the library derives the codec string, the coded
///   size and the description (avcC, hvcC, av1C; none for H.264/H.265 with `in_band`);
/// - `description` (avcC, hvcC or av1C) with `codec_id` H264, H265 or AV1: the codec string and
///   the coded size are read from it;
/// - `codec`, the RFC 6381 string, with an optional `description` passed as it is.
///
/// A non-NULL `codec` and non-zero sizes win over derived ones. Pointers are only read during
/// the call.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_video_config {
    /// `sizeof(moqt_video_config)`: lets later versions append fields.
    pub struct_size: u32,
    /// The RFC 6381 codec string, NUL-terminated, or NULL to derive it (see above).
    pub codec: *const c_char,
    /// A `moqt_codec` value; MOQT_CODEC_NONE (0) derives nothing.
    pub codec_id: u32,
    /// The decoder configuration record (avcC, hvcC, av1C, ...), `description_len` bytes; NULL
    /// with 0 for none.
    pub description: *const u8,
    /// Bytes at `description`.
    pub description_len: usize,
    /// Raw parameter sets to derive the rest from (see above), `parameter_sets_len` bytes; NULL
    /// with 0 for none. Not together with `description`.
    pub parameter_sets: *const u8,
    /// Bytes at `parameter_sets`.
    pub parameter_sets_len: usize,
    /// H.264/H.265 frames are Annex-B with their parameter sets in band: `avc3`/`hev1` and no
    /// description. false: `avc1`/`hvc1` with the record, frames length-prefixed (4 bytes).
    pub in_band: bool,
    /// Picture width in pixels; 0: derived, or absent.
    pub coded_width: u32,
    /// Picture height in pixels; 0: derived, or absent.
    pub coded_height: u32,
    /// Frames per second; 0: absent.
    pub framerate: f64,
    /// Bits per second; 0: absent.
    pub bitrate: u64,
    /// A `moqt_container` value: MOQT_CONTAINER_LEGACY (0) or MOQT_CONTAINER_CMAF.
    pub container: u32,
    /// The CMAF init segment (ftyp+moov), `init_len` bytes, with MOQT_CONTAINER_CMAF when the
    /// caller writes whole moof+mdat fragments. NULL with MOQT_CONTAINER_CMAF: moqt packs the
    /// samples itself (the init segment built from the codec fields, each sample written as for
    /// the legacy container wrapped in its own fragment; H.264/H.265 need `parameter_sets` or a
    /// `description` for it, and with `in_band` the samples are Annex-B). NULL with legacy.
    pub init: *const u8,
    /// Bytes at `init`.
    pub init_len: usize,
}

// SAFETY: repr(C), struct_size first, every field an integer, a float, a bool or a pointer.
unsafe impl SizedStruct for moqt_video_config {}

/// An audio rendition, for `moqt_media_add_audio` and `moqt_media_update_audio`. Zero-initialise,
/// set `struct_size = sizeof(...)`. With `codec_id` OPUS the codec string is `opus`, the rate 48000
/// and the channels come from an OpusHead `description` when there is one; with AAC they come from
/// the AudioSpecificConfig `description`, or one is built from `codec` (default `mp4a.40.2`), the
/// rate and the channels. Otherwise `codec` is required. Non-zero values win over derived ones;
/// the rate and the channel count must be known in the end. Pointers are only read during the call.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_audio_config {
    /// `sizeof(moqt_audio_config)`: lets later versions append fields.
    pub struct_size: u32,
    /// The RFC 6381 codec string, NUL-terminated, or NULL to derive it.
    pub codec: *const c_char,
    /// A `moqt_codec` value.
    pub codec_id: u32,
    /// The decoder configuration (AudioSpecificConfig, OpusHead), `description_len` bytes; NULL
    /// with 0 for none.
    pub description: *const u8,
    /// Bytes at `description`.
    pub description_len: usize,
    /// Samples per second; 0: derived.
    pub sample_rate: u32,
    /// Channel count; 0: derived.
    pub channels: u32,
    /// Bits per second; 0: absent.
    pub bitrate: u64,
    /// A `moqt_container` value: MOQT_CONTAINER_LEGACY (0) or MOQT_CONTAINER_CMAF.
    pub container: u32,
    /// The CMAF init segment, as in `moqt_video_config` (NULL with MOQT_CONTAINER_CMAF: moqt
    /// packs the packets itself).
    pub init: *const u8,
    /// Bytes at `init`.
    pub init_len: usize,
}

// SAFETY: repr(C), struct_size first, every field an integer or a pointer.
unsafe impl SizedStruct for moqt_audio_config {}

/// A media broadcast this client publishes. `None` inside once finished.
#[allow(non_camel_case_types)]
pub struct moqt_media {
    media: SharedMedia,
    _published: Published,
}

type SharedMedia = Arc<Mutex<Option<MediaBroadcast>>>;

impl Castable for moqt_media {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "media";
}

/// One rendition's track of a published media broadcast.
#[allow(non_camel_case_types)]
pub struct moqt_media_track {
    /// `None` once removed or finished.
    writer: Mutex<Option<MediaTrackWriter>>,
    name: String,
    media: SharedMedia,
}

impl Castable for moqt_media_track {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "track";
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The status and detail of a media error.
pub(crate) fn media_error(err: MediaError) -> FfiError {
    match err {
        MediaError::KeyframeRequired => FfiError::invalid(
            "a group must start with a keyframe: the track's first sample, and the first after a write failed, \
             needs MOQT_MEDIA_KEYFRAME",
        ),
        MediaError::NoRendition(_) => FfiError::new(moqt_status::ErrNotFound, err.to_string()),
        MediaError::CatalogTooLarge { .. } => FfiError::new(moqt_status::ErrNoMemory, err.to_string()),
        MediaError::Model(model::Error::Closed | model::Error::SequenceOverflow) => {
            FfiError::new(moqt_status::ErrClosed, format!("closed: {err}"))
        }
        MediaError::Model(model::Error::TooManyFrames { .. } | model::Error::TooManyBytes { .. }) => FfiError::new(
            moqt_status::ErrNoMemory,
            format!("{err}: the sample was not written; the next one must be a keyframe"),
        ),
        other => FfiError::invalid(other.to_string()),
    }
}

/// A codec helper's failure on the caller's `what`.
fn codec_error(what: &'static str) -> impl Fn(CodecError) -> FfiError {
    move |err| FfiError::invalid(format!("{what}: {err}"))
}

fn codec_arg(value: u32) -> FfiResult<moqt_codec> {
    Ok(match value {
        0 => moqt_codec::None,
        1 => moqt_codec::H264,
        2 => moqt_codec::H265,
        3 => moqt_codec::Av1,
        4 => moqt_codec::Vp8,
        5 => moqt_codec::Vp9,
        6 => moqt_codec::Opus,
        7 => moqt_codec::Aac,
        other => return Err(FfiError::invalid(format!("codec_id {other} is not a moqt_codec"))),
    })
}

/// An optional NUL-terminated UTF-8 string of a config.
fn optional_text(ptr: *const c_char, what: &str) -> FfiResult<Option<String>> {
    optional_cstr(ptr)
        .map(|text| text.to_str().map(str::to_owned).map_err(|_| FfiError::invalid(format!("{what} is not UTF-8"))))
        .transpose()
}

/// How a C config's samples are laid out: the container, and whether moqt packs them as CMAF.
struct Layout {
    container: Container,
    packed: bool,
}

fn container_arg(kind: u32, init: *const u8, init_len: usize) -> FfiResult<Layout> {
    let init = bytes_arg(init, init_len)?;
    let given = |container| Ok(Layout { container, packed: false });
    match kind {
        0 if init.is_empty() => given(Container::Legacy),
        0 => Err(FfiError::invalid("init is for MOQT_CONTAINER_CMAF")),
        // Packed by moqt: described as for the legacy container until the packer builds the init.
        1 if init.is_empty() => Ok(Layout { container: Container::Legacy, packed: true }),
        1 => {
            let mut reader = crate::media::fmp4::Fmp4Reader::new();
            let events = reader.push(init).map_err(|err| FfiError::invalid(format!("init: {err}")))?;
            let whole = reader.buffered() == 0
                && reader.init().is_some()
                && events.iter().all(|event| matches!(event, crate::media::fmp4::Fmp4Event::Init(_)));
            if !whole {
                return Err(FfiError::invalid("MOQT_CONTAINER_CMAF needs init: one whole ftyp+moov"));
            }
            given(Container::Cmaf { init: Bytes::copy_from_slice(init) })
        }
        other => Err(FfiError::invalid(format!("container {other}: use MOQT_CONTAINER_LEGACY or MOQT_CONTAINER_CMAF"))),
    }
}

/// The catalog fields of an AV1 sequence header in `obus`, with an av1C built around it.
fn av1_from_obus(obus: &[u8]) -> Result<VideoInfo, CodecError> {
    let header = codec::av1::find_sequence_header(obus)?;
    Ok(VideoInfo {
        codec: header.config.codec_string(),
        description: Some(Bytes::from(codec::av1::build_av1c(obus)?)),
        coded_width: header.max_frame_width,
        coded_height: header.max_frame_height,
    })
}

/// The catalog fields of an av1C record (the size from its sequence header, if it has one).
fn av1_from_av1c(record: &[u8]) -> Result<VideoInfo, CodecError> {
    let av1c = codec::av1::parse_av1c(record)?;
    let size = codec::av1::find_sequence_header(&av1c.config_obus)
        .map_or((0, 0), |header| (header.max_frame_width, header.max_frame_height));
    Ok(VideoInfo {
        codec: codec::av1::Av1Config::from_av1c(&av1c).codec_string(),
        description: Some(Bytes::copy_from_slice(record)),
        coded_width: size.0,
        coded_height: size.1,
    })
}

/// A rendition moqt packs as CMAF: whether its samples are Annex-B.
#[derive(Debug)]
struct Packed {
    annexb: bool,
}

/// The catalog entry a C video config describes, and whether moqt packs it as CMAF.
fn video_config(config: *const moqt_video_config) -> FfiResult<(VideoConfig, Option<Packed>)> {
    let config = read_sized(config).ok_or_else(|| FfiError::invalid("config is NULL"))?;
    let codec = optional_text(config.codec, "codec")?;
    let id = codec_arg(config.codec_id)?;
    let description = bytes_arg(config.description, config.description_len)?;
    let sets = bytes_arg(config.parameter_sets, config.parameter_sets_len)?;
    if !description.is_empty() && !sets.is_empty() {
        return Err(FfiError::invalid("give description or parameter_sets, not both"));
    }
    let derived = if !sets.is_empty() {
        let info = match id {
            moqt_codec::H264 => codec::h264::info_from_annexb(sets, config.in_band),
            moqt_codec::H265 => codec::h265::info_from_annexb(sets, config.in_band),
            moqt_codec::Av1 => av1_from_obus(sets),
            _ => return Err(FfiError::invalid("parameter_sets needs codec_id MOQT_CODEC_H264, H265 or AV1")),
        };
        Some(info.map_err(codec_error("parameter_sets"))?)
    } else if !description.is_empty() {
        let info = match id {
            moqt_codec::H264 => Some(codec::h264::info_from_avcc(description, config.in_band)),
            moqt_codec::H265 => Some(codec::h265::info_from_hvcc(description, config.in_band)),
            moqt_codec::Av1 => Some(av1_from_av1c(description)),
            _ => None,
        };
        info.transpose().map_err(codec_error("description"))?
    } else {
        None
    };
    let fallback = match id {
        moqt_codec::Vp8 => Some(codec::vp9::VP8_CODEC.to_string()),
        _ => None,
    };
    let codec = codec.or_else(|| derived.as_ref().map(|info| info.codec.clone())).or(fallback).ok_or_else(|| {
        FfiError::invalid("codec is NULL and cannot be derived: give codec, or codec_id with parameter_sets or a description")
    })?;
    if codec.is_empty() {
        return Err(FfiError::invalid("codec is empty"));
    }
    let given_description = (!description.is_empty()).then(|| Bytes::copy_from_slice(description));
    let mut description = match &derived {
        Some(info) => info.description.clone(),
        None => given_description.clone(),
    };
    let layout = container_arg(config.container, config.init, config.init_len)?;
    let h26x = matches!(id, moqt_codec::H264 | moqt_codec::H265);
    let packed = layout.packed.then_some(Packed { annexb: h26x && config.in_band });
    if packed.is_some() && h26x && description.is_none() {
        // In band: the samples keep their parameter sets, but the init segment needs the record.
        let record = match id {
            _ if !sets.is_empty() && id == moqt_codec::H264 => codec::h264::info_from_annexb(sets, false),
            _ if !sets.is_empty() => codec::h265::info_from_annexb(sets, false),
            _ => {
                return Err(FfiError::invalid(
                    "MOQT_CONTAINER_CMAF packed by moqt needs parameter_sets or a description for H.264/H.265",
                ));
            }
        };
        description = record.map_err(codec_error("parameter_sets"))?.description.or(given_description);
    }
    let size = |given: u32, derived: Option<u32>| match given {
        0 => derived.filter(|value| *value > 0),
        given => Some(given),
    };
    if !(config.framerate >= 0.0 && config.framerate.is_finite()) {
        return Err(FfiError::invalid("framerate must be a finite number, 0 or more"));
    }
    let video = VideoConfig {
        codec,
        description,
        coded_width: size(config.coded_width, derived.as_ref().map(|info| info.coded_width)),
        coded_height: size(config.coded_height, derived.as_ref().map(|info| info.coded_height)),
        framerate: (config.framerate > 0.0).then_some(config.framerate),
        bitrate: (config.bitrate > 0).then_some(config.bitrate),
        container: layout.container,
        other: Default::default(),
    };
    Ok((video, packed))
}

/// The catalog entry a C audio config describes, and whether moqt packs it as CMAF.
fn audio_config(config: *const moqt_audio_config) -> FfiResult<(AudioConfig, bool)> {
    let config = read_sized(config).ok_or_else(|| FfiError::invalid("config is NULL"))?;
    let given = optional_text(config.codec, "codec")?;
    let description = bytes_arg(config.description, config.description_len)?;
    let mut description = (!description.is_empty()).then(|| Bytes::copy_from_slice(description));
    let either = |given: u32, derived: u32| if given > 0 { given } else { derived };
    let (codec, sample_rate, channels) = match codec_arg(config.codec_id)? {
        moqt_codec::Opus => {
            let head_channels = match &description {
                Some(head) => {
                    u32::from(codec::opus::parse_opus_head(head).map_err(codec_error("description"))?.output_channel_count)
                }
                None => 0,
            };
            let codec = given.unwrap_or_else(|| codec::opus::OPUS_CODEC.to_string());
            (codec, either(config.sample_rate, codec::opus::OPUS_SAMPLE_RATE), either(config.channels, head_channels))
        }
        moqt_codec::Aac => match &description {
            Some(asc) => {
                let asc = codec::aac::AudioSpecificConfig::parse(asc).map_err(codec_error("description"))?;
                let codec = given.unwrap_or_else(|| asc.codec_string());
                let rate = either(config.sample_rate, asc.output_sample_rate());
                (codec, rate, either(config.channels, u32::from(asc.channel_count())))
            }
            None => {
                let codec = given.unwrap_or_else(|| "mp4a.40.2".to_string());
                let asc = codec::aac::AudioSpecificConfig::from_codec_string(&codec, config.sample_rate, config.channels)
                    .and_then(|asc| asc.to_bytes())
                    .map_err(codec_error("an AudioSpecificConfig from codec, sample_rate and channels"))?;
                description = Some(Bytes::from(asc));
                (codec, config.sample_rate, config.channels)
            }
        },
        moqt_codec::None => {
            let codec = given.ok_or_else(|| FfiError::invalid("codec is NULL: give codec, or codec_id OPUS or AAC"))?;
            (codec, config.sample_rate, config.channels)
        }
        other => return Err(FfiError::invalid(format!("{other:?} is not an audio codec"))),
    };
    if codec.is_empty() {
        return Err(FfiError::invalid("codec is empty"));
    }
    if sample_rate == 0 || channels == 0 {
        return Err(FfiError::invalid("sample_rate and channels must be given or derivable"));
    }
    let layout = container_arg(config.container, config.init, config.init_len)?;
    let audio = AudioConfig {
        codec,
        sample_rate,
        number_of_channels: channels,
        bitrate: (config.bitrate > 0).then_some(config.bitrate),
        description,
        container: layout.container,
        other: Default::default(),
    };
    Ok((audio, layout.packed))
}

/// Publishes a media broadcast (hang: a `catalog.json` track describing its renditions) at
/// `path`, relative to the client's URL path; `path_len` may be SIZE_MAX for NUL-terminated. The
/// catalog is published with the first rendition added.
///
/// Ownership: on success `*out` is new; free it with `moqt_media_free`, which ends the broadcast.
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG
/// (NULL, a bad path), MOQT_STATUS_ERR_NO_MEMORY (a bound), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_publish_media(
    client: *const moqt_client,
    path: *const c_char,
    path_len: usize,
    out: *mut *mut moqt_media,
) -> moqt_status {
    guard(|| {
        let client = try_ref(client)?;
        let out = Out::new(out)?;
        let path = path_arg(path, path_len)?;
        super::test_panic_point(path.as_str());
        let media = MediaBroadcast::new().map_err(media_error)?;
        let published = client
            .publish
            .publish(path, media.consume(), Route::local())
            .map_err(|err| FfiError::new(moqt_status::ErrNoMemory, err.to_string()))?;
        out.set_boxed(moqt_media { media: Arc::new(Mutex::new(Some(media))), _published: published });
        Ok(())
    })
}

/// Adds a rendition with `add` to the unfinished broadcast and hands its track to C.
fn add_rendition(
    media: *const moqt_media,
    name: *const c_char,
    name_len: usize,
    out: *mut *mut moqt_media_track,
    add: impl FnOnce(&mut MediaBroadcast, &str) -> Result<MediaTrackWriter, MediaError>,
) -> FfiResult {
    let media = try_ref(media)?;
    let out = Out::new(out)?;
    let name = str_arg(name, name_len)?;
    let mut broadcast = lock(&media.media);
    let broadcast =
        broadcast.as_mut().ok_or_else(|| FfiError::new(moqt_status::ErrClosed, "the media broadcast was finished"))?;
    let writer = add(broadcast, name).map_err(media_error)?;
    out.set_boxed(moqt_media_track { writer: Mutex::new(Some(writer)), name: name.to_owned(), media: media.media.clone() });
    Ok(())
}

/// Adds a video rendition on track `name` (`name_len` may be SIZE_MAX for NUL-terminated) and
/// publishes the catalog with it. See `moqt_video_config` for how the codec is described.
///
/// Ownership: on success `*out` is new; free it with `moqt_media_track_free`, which finishes the
/// track. `config` is only read during the call. Thread-safety: any thread. Callbacks: none.
/// Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, bad UTF-8, a name already used or
/// reserved, a config that does not describe a codec, parameter sets or a record that do not
/// parse: `moqt_last_error` says which), MOQT_STATUS_ERR_CLOSED (the broadcast was finished),
/// MOQT_STATUS_ERR_NO_MEMORY (the catalog passed its bound), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_add_video(
    media: *const moqt_media,
    name: *const c_char,
    name_len: usize,
    config: *const moqt_video_config,
    out: *mut *mut moqt_media_track,
) -> moqt_status {
    guard(|| {
        let (config, packed) = video_config(config)?;
        add_rendition(media, name, name_len, out, |media, name| match packed {
            Some(Packed { annexb }) => media.add_packed_cmaf_video(name, config, annexb),
            None => media.add_video(name, config),
        })
    })
}

/// Adds an audio rendition on track `name` and publishes the catalog with it. See
/// `moqt_audio_config`.
///
/// Ownership: on success `*out` is new; free it with `moqt_media_track_free`. `config` is only
/// read during the call. Thread-safety: any thread. Callbacks: none. Returns as
/// `moqt_media_add_video`.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_add_audio(
    media: *const moqt_media,
    name: *const c_char,
    name_len: usize,
    config: *const moqt_audio_config,
    out: *mut *mut moqt_media_track,
) -> moqt_status {
    guard(|| {
        let (config, packed) = audio_config(config)?;
        add_rendition(media, name, name_len, out, |media, name| {
            if packed { media.add_packed_cmaf_audio(name, config) } else { media.add_audio(name, config) }
        })
    })
}

/// Runs `update` on the unfinished broadcast.
fn update_rendition(
    media: *const moqt_media,
    update: impl FnOnce(&mut MediaBroadcast) -> Result<(), MediaError>,
) -> FfiResult {
    let media = try_ref(media)?;
    let mut broadcast = lock(&media.media);
    let broadcast =
        broadcast.as_mut().ok_or_else(|| FfiError::new(moqt_status::ErrClosed, "the media broadcast was finished"))?;
    update(broadcast).map_err(media_error)
}

/// Changes video rendition `name`'s configuration (new parameter sets, a new size, bitrate...)
/// and publishes the catalog again: subscribers of the catalog see the change. The container
/// kind cannot change (that takes a new rendition). On an error nothing changes.
///
/// Ownership: `config` is only read during the call. Thread-safety: any thread. Callbacks: none.
/// Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (as `moqt_media_add_video`, or another
/// container kind), MOQT_STATUS_ERR_NOT_FOUND (no video rendition `name`), MOQT_STATUS_ERR_CLOSED,
/// MOQT_STATUS_ERR_NO_MEMORY, MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_update_video(
    media: *const moqt_media,
    name: *const c_char,
    name_len: usize,
    config: *const moqt_video_config,
) -> moqt_status {
    guard(|| {
        let name = str_arg(name, name_len)?;
        let (config, packed) = video_config(config)?;
        update_rendition(media, |media| {
            if packed.is_some() != media.is_packed(name) {
                return Err(MediaError::Catalog(format!(
                    "rendition {name:?}: packed by moqt or given fragments, as when it was added"
                )));
            }
            media.update_video(name, config)
        })
    })
}

/// Changes audio rendition `name`'s configuration and publishes the catalog again, as
/// `moqt_media_update_video`.
///
/// Ownership: `config` is only read during the call. Thread-safety: any thread. Callbacks: none.
/// Returns as `moqt_media_update_video`.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_update_audio(
    media: *const moqt_media,
    name: *const c_char,
    name_len: usize,
    config: *const moqt_audio_config,
) -> moqt_status {
    guard(|| {
        let name = str_arg(name, name_len)?;
        let (config, packed) = audio_config(config)?;
        update_rendition(media, |media| {
            if packed != media.is_packed(name) {
                return Err(MediaError::Catalog(format!(
                    "rendition {name:?}: packed by moqt or given fragments, as when it was added"
                )));
            }
            media.update_audio(name, config)
        })
    })
}

/// Writes `payload` as the track's next sample, decoded at `dts_us` and presented at `pts_us`.
fn write_sample(track: *const moqt_media_track, payload: Bytes, pts_us: u64, dts_us: u64, flags: u32) -> FfiResult {
    let track = try_ref(track)?;
    let mut writer = lock(&track.writer);
    let writer =
        writer.as_mut().ok_or_else(|| FfiError::new(moqt_status::ErrClosed, "the track was removed or finished"))?;
    let keyframe = flags & MOQT_MEDIA_KEYFRAME != 0;
    writer.write_with_dts(pts_us, dts_us, keyframe, payload).map(|_| ()).map_err(media_error)
}

/// Writes one sample in decode order, copying `len` bytes from `data`, with its presentation
/// time `pts_us` in microseconds. The payload is the codec payload for the legacy container
/// (Annex-B or length-prefixed video as the description says, one audio packet) and for CMAF
/// packed by moqt (added without `init`), or one moof+mdat fragment for CMAF added with its
/// `init`. With MOQT_MEDIA_KEYFRAME in `flags` the sample is a keyframe and
/// opens a new group (the group being written is finished). The track's first sample, and the
/// first after a failed write, must be a keyframe: otherwise MOQT_STATUS_ERR_INVALID_ARG and
/// nothing is written.
///
/// Ownership: `data` is copied during the call. Thread-safety: any thread; calls on one track
/// are ordered by the caller. Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG
/// (NULL `track`, NULL `data` with `len` > 0, a first sample that is not a keyframe, a time
/// that does not fit), MOQT_STATUS_ERR_CLOSED (the track was removed or finished),
/// MOQT_STATUS_ERR_NO_MEMORY (the group passed its bounds: the next sample must be a keyframe),
/// MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_track_write(
    track: *const moqt_media_track,
    data: *const u8,
    len: usize,
    pts_us: u64,
    flags: u32,
) -> moqt_status {
    guard(|| write_sample(track, Bytes::copy_from_slice(bytes_arg(data, len)?), pts_us, pts_us, flags))
}

/// `moqt_media_track_write` without a copy where the container allows: a CMAF fragment is
/// shared with every subscriber and cache that holds it; a legacy sample is copied once behind
/// its timestamp during the call. Either way `free_fn(free_user_data, data)` runs exactly once
/// when the library lets go of `data`, also when this call fails.
///
/// Ownership: `data` stays the caller's memory but must stay valid and unmodified until
/// `free_fn` runs. Thread-safety: any thread. Callbacks: `free_fn`, once, on any thread,
/// including inside this call; it must not call moqt. Returns as `moqt_media_track_write`.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_track_write_zero_copy(
    track: *const moqt_media_track,
    data: *const u8,
    len: usize,
    pts_us: u64,
    flags: u32,
    free_fn: moqt_free_fn,
    free_user_data: *mut c_void,
) -> moqt_status {
    guard_zero_copy(data, len, free_fn, free_user_data, |sample| write_sample(track, sample, pts_us, pts_us, flags))
}

/// `moqt_media_track_write` with the sample's decode time `dts_us` (microseconds), for streams
/// whose decode order differs from presentation order (B-frames); `moqt_media_track_write` is
/// this with `dts_us = pts_us`. Samples still come in decode order. A rendition moqt packs as
/// CMAF (added without `init`) writes `dts_us` as the fragment's decode time (tfdt) and
/// `pts_us - dts_us` as the sample's composition offset, so subscribers read `pts_us` back;
/// there decode times must not go backwards (MOQT_STATUS_ERR_INVALID_ARG, nothing written: a
/// B-frame stream written without its decode times meets this). The legacy container carries
/// presentation times only and CMAF fragments given whole carry their own, so both ignore
/// `dts_us`.
///
/// Ownership: `data` is copied during the call. Thread-safety: any thread; calls on one track
/// are ordered by the caller. Callbacks: none. Returns as `moqt_media_track_write`.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_track_write_dts(
    track: *const moqt_media_track,
    data: *const u8,
    len: usize,
    pts_us: u64,
    dts_us: u64,
    flags: u32,
) -> moqt_status {
    guard(|| write_sample(track, Bytes::copy_from_slice(bytes_arg(data, len)?), pts_us, dts_us, flags))
}

/// `moqt_media_track_write_dts` without a copy, as `moqt_media_track_write_zero_copy` is
/// `moqt_media_track_write` without one: `free_fn(free_user_data, data)` runs exactly once when
/// the library lets go of `data`, also when this call fails.
///
/// Ownership: `data` stays the caller's memory but must stay valid and unmodified until
/// `free_fn` runs. Thread-safety: any thread. Callbacks: `free_fn`, once, on any thread,
/// including inside this call; it must not call moqt. Returns as `moqt_media_track_write`.
#[unsafe(no_mangle)]
#[must_use]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn moqt_media_track_write_dts_zero_copy(
    track: *const moqt_media_track,
    data: *const u8,
    len: usize,
    pts_us: u64,
    dts_us: u64,
    flags: u32,
    free_fn: moqt_free_fn,
    free_user_data: *mut c_void,
) -> moqt_status {
    guard_zero_copy(data, len, free_fn, free_user_data, |sample| write_sample(track, sample, pts_us, dts_us, flags))
}

/// Waits until the track has a subscriber, at most `timeout_ms` milliseconds, as
/// `moqt_track_wait_subscribed` does: the first group written then reaches it whole.
///
/// Thread-safety: any thread; blocks the caller, so not from a callback (refused there with
/// MOQT_STATUS_ERR_UNSUPPORTED). Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_TIMEOUT,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `track`), MOQT_STATUS_ERR_CLOSED (removed or finished),
/// MOQT_STATUS_ERR_PANIC.
///
/// Ownership: borrows `track` for the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_track_wait_subscribed(track: *const moqt_media_track, timeout_ms: u64) -> moqt_status {
    guard(|| {
        let track = try_ref(track)?;
        if on_dispatcher() {
            return Err(FfiError::new(
                moqt_status::ErrUnsupported,
                "moqt_media_track_wait_subscribed blocks: not from a callback",
            ));
        }
        let closed = || FfiError::new(moqt_status::ErrClosed, "the track was removed or finished");
        let until_used = lock(&track.writer).as_ref().and_then(MediaTrackWriter::until_used).ok_or_else(closed)?;
        let runtime = runtime().ok_or_else(FfiError::no_engine)?;
        let wait = async move { tokio::time::timeout(Duration::from_millis(timeout_ms), until_used).await };
        runtime.block_on(wait).map_err(|_| FfiError::new(moqt_status::ErrTimeout, "no subscriber within the timeout"))
    })
}

/// Takes the track's rendition out of the catalog, publishes the catalog again and finishes the
/// track (its subscribers get what was written, then MOQT_STATUS_END). Later writes return
/// MOQT_STATUS_ERR_CLOSED; free the handle as usual.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `track`), MOQT_STATUS_ERR_NOT_FOUND (already removed),
/// MOQT_STATUS_ERR_CLOSED (the broadcast was finished), MOQT_STATUS_ERR_PANIC.
///
/// Ownership: the handle stays the caller's.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_track_remove(track: *const moqt_media_track) -> moqt_status {
    guard(|| {
        let track = try_ref(track)?;
        // The broadcast's lock first, then the track's: the order everywhere both are held.
        let mut media = lock(&track.media);
        let media =
            media.as_mut().ok_or_else(|| FfiError::new(moqt_status::ErrClosed, "the media broadcast was finished"))?;
        media.remove(&track.name).map_err(media_error)?;
        if let Some(writer) = lock(&track.writer).take() {
            let _ = writer.finish();
        }
        Ok(())
    })
}

/// Finishes the track (unless it was removed) and frees it. NULL is accepted. The rendition
/// stays in the catalog: `moqt_media_track_remove` takes it out.
///
/// Thread-safety: any thread. Callbacks: none.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_media_track_free(track: *mut moqt_media_track) {
    guard_void(|| {
        if let Some(track) = take_box(track)
            && let Some(writer) = lock(&track.writer).take()
        {
            let _ = writer.finish();
        }
        Ok(())
    })
}

/// Holds catalog publication: renditions added, updated or removed from now on are checked at
/// once (each call returns what it would) but published together, as one catalog update, by
/// `moqt_media_release_catalog`. For a host whose renditions become known one at a time (a
/// GStreamer element's pads, each configured by its own first buffer): a subscriber that takes
/// the first catalog then sees every rendition, not the video without its audio. Samples may be
/// written meanwhile. `moqt_media_finish` publishes a held catalog first.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `media`), MOQT_STATUS_ERR_CLOSED (the broadcast was
/// finished), MOQT_STATUS_ERR_PANIC.
///
/// Ownership: the handle stays the caller's.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_hold_catalog(media: *const moqt_media) -> moqt_status {
    guard(|| {
        update_rendition(media, |media| {
            media.hold_catalog();
            Ok(())
        })
    })
}

/// Publishes the changes made since `moqt_media_hold_catalog` as one catalog update (nothing if
/// there were none), and each later change at once again.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `media`), MOQT_STATUS_ERR_CLOSED (the broadcast was
/// finished), MOQT_STATUS_ERR_PANIC.
///
/// Ownership: the handle stays the caller's.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_release_catalog(media: *const moqt_media) -> moqt_status {
    guard(|| update_rendition(media, MediaBroadcast::release_catalog))
}

/// Ends the broadcast cleanly: the catalog track is finished, then the broadcast, so
/// subscribers see the catalog's end (MOQT_STATUS_END from `moqt_media_next_catalog`) once they
/// read what was written. Finish (free) or remove the tracks first; later adds, updates and
/// removes return MOQT_STATUS_ERR_CLOSED. Free the handle as usual.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `media`), MOQT_STATUS_ERR_CLOSED (already finished),
/// MOQT_STATUS_ERR_PANIC.
///
/// Ownership: the handle stays the caller's.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_media_finish(media: *const moqt_media) -> moqt_status {
    guard(|| {
        let media = try_ref(media)?;
        let broadcast = lock(&media.media)
            .take()
            .ok_or_else(|| FfiError::new(moqt_status::ErrClosed, "the media broadcast was already finished"))?;
        broadcast.finish().map_err(media_error)
    })
}

/// Ends (as `moqt_media_finish`, unless finished already) and frees a media broadcast. NULL is
/// accepted. Its track handles stay valid until freed; their writes return
/// MOQT_STATUS_ERR_CLOSED or reach no one.
///
/// Thread-safety: any thread. Callbacks: none.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_media_free(media: *mut moqt_media) {
    guard_void(|| {
        if let Some(media) = take_box(media)
            && let Some(broadcast) = lock(&media.media).take()
        {
            let _ = broadcast.finish();
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    fn annexb(nals: &[&str]) -> Vec<u8> {
        nals.iter().flat_map(|nal| [vec![0, 0, 0, 1], unhex(nal)].concat()).collect()
    }

    fn video(codec_id: moqt_codec, sets: &[u8], description: &[u8], in_band: bool) -> moqt_video_config {
        moqt_video_config {
            struct_size: std::mem::size_of::<moqt_video_config>() as u32,
            codec: std::ptr::null(),
            codec_id: codec_id as u32,
            description: description.as_ptr(),
            description_len: description.len(),
            parameter_sets: sets.as_ptr(),
            parameter_sets_len: sets.len(),
            in_band,
            coded_width: 0,
            coded_height: 0,
            framerate: 0.0,
            bitrate: 0,
            container: 0,
            init: std::ptr::null(),
            init_len: 0,
        }
    }

    fn audio(codec_id: moqt_codec, description: &[u8], sample_rate: u32, channels: u32) -> moqt_audio_config {
        moqt_audio_config {
            struct_size: std::mem::size_of::<moqt_audio_config>() as u32,
            codec: std::ptr::null(),
            codec_id: codec_id as u32,
            description: description.as_ptr(),
            description_len: description.len(),
            sample_rate,
            channels,
            bitrate: 0,
            container: 0,
            init: std::ptr::null(),
            init_len: 0,
        }
    }

    // x265's and ffmpeg's parameter sets, as media::codec's tests hold them.
    const H265_VPS: &str = "40010c01ffff01600000030090000003000003003f959809";
    const H265_SPS: &str = "42010101600000030090000003000003003fa00502016965959a4932bc05a020000003002000000303c1";
    const H265_PPS: &str = "4401c172b46240";
    const AV1_OBUS: &str = "12000a0b0000000cc4ff6736be4010";
    const AV1_AV1C: &str = "81010c000a0b0000000cc4ff6736be4010";

    #[test]
    fn cmaf_without_init_is_packed_by_moqt_with_the_record_its_init_segment_needs() {
        let sets = annexb(&[H265_VPS, H265_SPS, H265_PPS]);
        let mut config = video(moqt_codec::H265, &sets, &[], true);
        config.container = moqt_container::Cmaf as u32;
        let (packed_in_band, packed) = video_config(&config).unwrap();
        assert_eq!(packed_in_band.codec, "hev1.1.6.L63.90", "still in band");
        assert!(packed_in_band.description.is_some(), "the hvcC for the init segment");
        assert!(packed.is_some_and(|p| p.annexb), "Annex-B samples, made length-prefixed");
        let mut out_of_band = video(moqt_codec::H265, &sets, &[], false);
        out_of_band.container = moqt_container::Cmaf as u32;
        assert!(video_config(&out_of_band).unwrap().1.is_some_and(|p| !p.annexb));
        // In band from a codec string alone: nothing to build the record from.
        let mut bare = video(moqt_codec::H265, &[], &[], true);
        bare.codec = c"hev1.1.6.L63.90".as_ptr();
        bare.container = moqt_container::Cmaf as u32;
        assert_eq!(video_config(&bare).unwrap_err().report(), moqt_status::ErrInvalidArg);
    }

    #[test]
    fn h265_and_av1_renditions_come_from_their_parameter_sets() {
        let sets = annexb(&[H265_VPS, H265_SPS, H265_PPS]);
        let config = video_config(&video(moqt_codec::H265, &sets, &[], false)).unwrap().0;
        assert_eq!((config.codec.as_str(), config.coded_width, config.coded_height), ("hvc1.1.6.L63.90", Some(640), Some(360)));
        assert!(config.description.is_some());
        let in_band = video_config(&video(moqt_codec::H265, &sets, &[], true)).unwrap().0;
        assert_eq!((in_band.codec.as_str(), in_band.description), ("hev1.1.6.L63.90", None));

        let obus = unhex(AV1_OBUS);
        let config = video_config(&video(moqt_codec::Av1, &obus, &[], false)).unwrap().0;
        assert_eq!((config.codec.as_str(), config.coded_width, config.coded_height), ("av01.0.01M.08", Some(640), Some(360)));
        assert_eq!(config.description.as_deref(), Some(&unhex(AV1_AV1C)[..]), "the av1C ffmpeg wrote");
        let from_record = video_config(&video(moqt_codec::Av1, &[], &unhex(AV1_AV1C), false)).unwrap().0;
        assert_eq!((from_record.codec.as_str(), from_record.coded_width), ("av01.0.01M.08", Some(640)));
        let vp8 = video_config(&video(moqt_codec::Vp8, &[], &[], false)).unwrap().0;
        assert_eq!(vp8.codec, "vp8");
    }

    #[test]
    fn bad_parameter_sets_and_records_are_errors_with_a_reason() {
        for (id, sets) in [
            (moqt_codec::H265, annexb(&[H265_SPS])),
            (moqt_codec::H265, annexb(&["42ff"])),
            (moqt_codec::Av1, vec![0x12, 0x00]),
            (moqt_codec::Av1, vec![0xff; 9]),
            (moqt_codec::H264, vec![0, 0, 1]),
        ] {
            let err = video_config(&video(id, &sets, &[], false)).unwrap_err();
            assert_eq!(err.report(), moqt_status::ErrInvalidArg, "{id:?} {sets:02x?}");
        }
        for (id, record) in [(moqt_codec::H264, vec![1, 2, 3]), (moqt_codec::H265, vec![1]), (moqt_codec::Av1, vec![])] {
            let result = video_config(&video(id, &[], &record, false));
            assert!(result.is_err(), "{id:?} {record:02x?}");
        }
        let mut size = video(moqt_codec::Vp8, &[], &[], false);
        size.struct_size = 8; // an older caller: the fields past its size read as zero
        assert_eq!(video_config(&size).unwrap_err().report(), moqt_status::ErrInvalidArg, "no codec_id: nothing to derive");
    }

    #[test]
    fn aac_and_opus_renditions_come_from_their_records_or_settings() {
        let asc = unhex("119056e500");
        let config = audio_config(&audio(moqt_codec::Aac, &asc, 0, 0)).unwrap().0;
        assert_eq!((config.codec.as_str(), config.sample_rate, config.number_of_channels), ("mp4a.40.2", 48000, 2));
        let built = audio_config(&audio(moqt_codec::Aac, &[], 44100, 1)).unwrap().0;
        assert_eq!((built.codec.as_str(), built.sample_rate, built.number_of_channels), ("mp4a.40.2", 44100, 1));
        let parsed = codec::aac::AudioSpecificConfig::parse(built.description.as_deref().unwrap()).unwrap();
        assert_eq!((parsed.output_sample_rate(), parsed.channel_count()), (44100, 1), "an AudioSpecificConfig was built");
        assert!(audio_config(&audio(moqt_codec::Aac, &[], 0, 2)).is_err(), "no rate to build it from");
        assert!(audio_config(&audio(moqt_codec::Aac, &[0xff], 0, 0)).is_err(), "a broken AudioSpecificConfig");
        let opus = audio_config(&audio(moqt_codec::Opus, &[], 0, 1)).unwrap().0;
        assert_eq!((opus.codec.as_str(), opus.sample_rate, opus.number_of_channels), ("opus", 48000, 1));
        assert!(audio_config(&audio(moqt_codec::Opus, &[], 0, 0)).is_err(), "no channel count");
        assert!(audio_config(&audio(moqt_codec::Vp9, &[], 48000, 2)).is_err(), "a video codec");
    }
}
