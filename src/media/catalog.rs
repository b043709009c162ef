//! The hang catalog: the JSON document on a broadcast's `catalog.json` track that says which
//! tracks are video or audio renditions and how to decode them (moq-dev's `hang` crate is the
//! reference). Fields moqt does not model are kept, so a catalog read and published again loses
//! nothing.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::MediaError;

/// The name of the catalog track in a hang broadcast.
pub const CATALOG_TRACK: &str = "catalog.json";

/// Bounds on a catalog read from the network or from C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogSettings {
    /// The most bytes of JSON in one catalog group (the first frame plus its merge patches).
    /// Default 1 MiB: a CMAF catalog carries a base64 init segment per rendition.
    pub max_bytes: usize,
    /// The most video plus audio renditions. Default 64, the reference's `MAX_RENDITIONS`.
    pub max_renditions: usize,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self { max_bytes: 1 << 20, max_renditions: 64 }
    }
}

/// A whole catalog.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// The `video` section: video renditions by track name.
    #[serde(default)]
    pub video: Video,
    /// The `audio` section: audio renditions by track name.
    #[serde(default)]
    pub audio: Audio,
    /// Sections moqt does not model (`archive`, `clock`, `text`, ...), kept as they came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The video section: renditions by track name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Video {
    /// Video renditions by track name (`renditions`).
    #[serde(default)]
    pub renditions: BTreeMap<String, VideoConfig>,
    /// Fields of the video section moqt does not model, kept as they came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The audio section: renditions by track name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Audio {
    /// Audio renditions by track name (`renditions`).
    #[serde(default)]
    pub renditions: BTreeMap<String, AudioConfig>,
    /// Fields of the audio section moqt does not model, kept as they came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// How to decode one video track.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoConfig {
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: String,
    /// The decoder configuration record (avcC, hvcC, av1C, ...), hex in JSON. Absent for H.264
    /// and H.265 in Annex-B with parameter sets in band.
    #[serde(default, with = "hex_bytes", skip_serializing_if = "Option::is_none")]
    pub description: Option<Bytes>,
    /// Coded width in pixels (`codedWidth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coded_width: Option<u32>,
    /// Coded height in pixels (`codedHeight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coded_height: Option<u32>,
    /// Frames per second (`framerate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framerate: Option<f64>,
    /// Bitrate in bits per second (`bitrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// How the track's frames are laid out (`container`); legacy when absent.
    #[serde(default)]
    pub container: Container,
    /// Fields of the rendition moqt does not model, kept as they came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// How to decode one audio track.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioConfig {
    /// RFC 6381 codec string: `opus`, `mp4a.40.2`, ...
    pub codec: String,
    /// Sample rate in Hz (`sampleRate`).
    pub sample_rate: u32,
    /// Channel count (`numberOfChannels`).
    pub number_of_channels: u32,
    /// Bitrate in bits per second (`bitrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// The decoder configuration (AAC AudioSpecificConfig, ...), hex in JSON.
    #[serde(default, with = "hex_bytes", skip_serializing_if = "Option::is_none")]
    pub description: Option<Bytes>,
    /// How the track's frames are laid out (`container`); legacy when absent.
    #[serde(default)]
    pub container: Container,
    /// Fields of the rendition moqt does not model, kept as they came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// How a media track's frames are laid out.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Container {
    /// Each frame: a QUIC varint presentation time in microseconds, then the codec payload.
    #[default]
    Legacy,
    /// Each frame is one moof+mdat fragment of this init segment (ftyp+moov).
    Cmaf {
        /// The init segment (ftyp+moov), base64 in JSON (`init`).
        init: Bytes,
    },
    /// A kind moqt does not know: its track is skipped, not fatal. Kept as it came.
    Unknown(Map<String, Value>),
}

impl Container {
    /// The `kind` text, as in the JSON.
    pub fn kind(&self) -> &str {
        match self {
            Container::Legacy => "legacy",
            Container::Cmaf { .. } => "cmaf",
            Container::Unknown(fields) => fields.get("kind").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

impl Serialize for Container {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = Map::new();
        match self {
            Container::Legacy => {
                fields.insert("kind".into(), "legacy".into());
            }
            Container::Cmaf { init } => {
                fields.insert("kind".into(), "cmaf".into());
                fields.insert("init".into(), base64::engine::general_purpose::STANDARD.encode(init).into());
            }
            Container::Unknown(unknown) => return unknown.serialize(serializer),
        }
        fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Container {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = Map::deserialize(deserializer)?;
        match fields.get("kind").and_then(Value::as_str) {
            Some("legacy") => Ok(Container::Legacy),
            Some("cmaf") => {
                let init = fields.get("init").and_then(Value::as_str).ok_or_else(|| D::Error::missing_field("init"))?;
                let init = base64::engine::general_purpose::STANDARD
                    .decode(init)
                    .map_err(|err| D::Error::custom(format!("cmaf init is not base64: {err}")))?;
                Ok(Container::Cmaf { init: init.into() })
            }
            _ => Ok(Container::Unknown(fields)),
        }
    }
}

/// `Option<Bytes>` as a hex string.
mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Bytes>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_str(&hex::encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Bytes>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| hex::decode(text).map(Bytes::from).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A rendition of either kind, borrowed from a catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rendition<'a> {
    /// A video rendition.
    Video(&'a VideoConfig),
    /// An audio rendition.
    Audio(&'a AudioConfig),
}

impl Rendition<'_> {
    /// The rendition's RFC 6381 codec string.
    pub fn codec(&self) -> &str {
        match self {
            Rendition::Video(config) => &config.codec,
            Rendition::Audio(config) => &config.codec,
        }
    }

    /// How the rendition's frames are laid out.
    pub fn container(&self) -> &Container {
        match self {
            Rendition::Video(config) => &config.container,
            Rendition::Audio(config) => &config.container,
        }
    }
}

impl Catalog {
    /// Parses one catalog (the first frame of a catalog group) and checks it against `settings`.
    pub fn from_json(json: &[u8], settings: &CatalogSettings) -> Result<Self, MediaError> {
        if json.len() > settings.max_bytes {
            return Err(MediaError::CatalogTooLarge { max: settings.max_bytes });
        }
        let catalog: Catalog = serde_json::from_slice(json).map_err(|err| MediaError::Catalog(err.to_string()))?;
        catalog.check(settings)?;
        Ok(catalog)
    }

    /// The catalog as compact JSON, the form published on the catalog track.
    pub fn to_json(&self) -> Bytes {
        // A map of strings, numbers and nested maps always serializes.
        serde_json::to_vec(self).map(Bytes::from).unwrap_or_default()
    }

    /// Every rendition by track name, video first.
    pub fn renditions(&self) -> impl Iterator<Item = (&str, Rendition<'_>)> {
        let video = self.video.renditions.iter().map(|(name, config)| (name.as_str(), Rendition::Video(config)));
        let audio = self.audio.renditions.iter().map(|(name, config)| (name.as_str(), Rendition::Audio(config)));
        video.chain(audio)
    }

    /// The rendition published on track `name`.
    pub fn rendition(&self, name: &str) -> Option<Rendition<'_>> {
        self.video
            .renditions
            .get(name)
            .map(Rendition::Video)
            .or_else(|| self.audio.renditions.get(name).map(Rendition::Audio))
    }

    /// Refuses a catalog past the bounds, or one whose renditions name no usable track.
    pub fn check(&self, settings: &CatalogSettings) -> Result<(), MediaError> {
        let count = self.video.renditions.len() + self.audio.renditions.len();
        if count > settings.max_renditions {
            return Err(MediaError::TooManyRenditions { count, max: settings.max_renditions });
        }
        for (name, rendition) in self.renditions() {
            if name.is_empty() || name == CATALOG_TRACK {
                return Err(MediaError::Catalog(format!("a rendition cannot be named {name:?}")));
            }
            if rendition.codec().is_empty() {
                return Err(MediaError::Catalog(format!("rendition {name:?} has no codec")));
            }
            if self.video.renditions.contains_key(name) && self.audio.renditions.contains_key(name) {
                return Err(MediaError::Catalog(format!("track {name:?} is both a video and an audio rendition")));
            }
        }
        Ok(())
    }
}

/// Rebuilds the catalog of one catalog group: the first frame is the whole catalog, each later
/// frame an RFC 7396 merge patch applied in order. Bounded by [`CatalogSettings::max_bytes`] over
/// the whole group.
#[derive(Debug)]
pub struct CatalogGroupDecoder {
    settings: CatalogSettings,
    current: Option<Value>,
    bytes: usize,
}

impl CatalogGroupDecoder {
    /// A decoder for one catalog group, bounded by `settings`.
    pub fn new(settings: CatalogSettings) -> Self {
        Self { settings, current: None, bytes: 0 }
    }

    /// Applies the group's next frame and returns the catalog as it now stands.
    pub fn push(&mut self, frame: &[u8]) -> Result<Catalog, MediaError> {
        self.bytes = self.bytes.saturating_add(frame.len());
        if self.bytes > self.settings.max_bytes {
            return Err(MediaError::CatalogTooLarge { max: self.settings.max_bytes });
        }
        let value: Value = serde_json::from_slice(frame).map_err(|err| MediaError::Catalog(err.to_string()))?;
        match &mut self.current {
            None if value.is_object() => self.current = Some(value),
            None => return Err(MediaError::Catalog("a catalog must be a JSON object".into())),
            Some(current) => json_patch::merge(current, &value),
        }
        let current = self.current.clone().unwrap_or_default();
        let catalog: Catalog = serde_json::from_value(current).map_err(|err| MediaError::Catalog(err.to_string()))?;
        catalog.check(&self.settings)?;
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/hang-catalog-cmaf-h264-aac.json");

    #[test]
    fn the_reference_cmaf_catalog_parses_and_round_trips_without_loss() {
        let catalog = Catalog::from_json(FIXTURE.as_bytes(), &CatalogSettings::default()).unwrap();
        let video = &catalog.video.renditions["0.m4s"];
        assert_eq!(video.codec, "avc1.64001e");
        assert_eq!((video.coded_width, video.coded_height), (Some(640), Some(360)));
        assert_eq!(video.description.as_deref().map(|d| d[..4].to_vec()), Some(vec![0x01, 0x64, 0x00, 0x1e]));
        let Container::Cmaf { init } = &video.container else { panic!("{:?}", video.container) };
        assert_eq!(&init[4..8], b"ftyp");
        let audio = &catalog.audio.renditions["1.m4s"];
        assert_eq!((audio.codec.as_str(), audio.sample_rate, audio.number_of_channels), ("mp4a.40.2", 48000, 2));
        assert_eq!(audio.description.as_deref(), Some(&[0x11, 0x88, 0x56, 0xe5, 0x00][..]));
        // `archive` and `clock` are not modelled, and come back as they were.
        assert!(catalog.other.contains_key("archive") && catalog.other.contains_key("clock"));
        let original: Value = serde_json::from_str(FIXTURE).unwrap();
        let again: Value = serde_json::from_slice(&catalog.to_json()).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn unknown_fields_and_container_kinds_are_kept_not_fatal() {
        let json = r#"{"video":{"renditions":{"v":{"codec":"vp8","container":{"kind":"future","x":1},"hdr":true}},"display":{"width":1,"height":2}},"audio":{"renditions":{}},"text":{"renditions":{}}}"#;
        let catalog = Catalog::from_json(json.as_bytes(), &CatalogSettings::default()).unwrap();
        let v = &catalog.video.renditions["v"];
        assert_eq!(v.container.kind(), "future");
        assert_eq!(v.other["hdr"], Value::Bool(true));
        assert!(catalog.video.other.contains_key("display"));
        let again: Value = serde_json::from_slice(&catalog.to_json()).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(json).unwrap());
    }

    #[test]
    fn a_legacy_catalog_names_its_container() {
        let mut catalog = Catalog::default();
        catalog.audio.renditions.insert(
            "audio".into(),
            AudioConfig { codec: "opus".into(), sample_rate: 48000, number_of_channels: 2, ..Default::default() },
        );
        let json: Value = serde_json::from_slice(&catalog.to_json()).unwrap();
        assert_eq!(json["audio"]["renditions"]["audio"]["container"]["kind"], "legacy");
        assert_eq!(json["audio"]["renditions"]["audio"]["numberOfChannels"], 2);
        assert!(json["audio"]["renditions"]["audio"].get("description").is_none());
    }

    #[test]
    fn bad_catalogs_are_errors_not_panics() {
        let settings = CatalogSettings::default();
        for bad in [
            &b"["[..],
            b"[]",
            b"{\"video\":{\"renditions\":{\"v\":{}}}}",
            b"{\"video\":{\"renditions\":{\"v\":{\"codec\":\"\"}}}}",
            b"{\"video\":{\"renditions\":{\"v\":{\"codec\":\"vp8\",\"description\":\"zz\"}}}}",
            b"{\"video\":{\"renditions\":{\"v\":{\"codec\":\"vp8\",\"container\":{\"kind\":\"cmaf\"}}}}}",
            b"{\"video\":{\"renditions\":{\"catalog.json\":{\"codec\":\"vp8\"}}}}",
            b"{\"video\":{\"renditions\":{\"a\":{\"codec\":\"vp8\"}}},\"audio\":{\"renditions\":{\"a\":{\"codec\":\"opus\",\"sampleRate\":1,\"numberOfChannels\":1}}}}",
        ] {
            assert!(Catalog::from_json(bad, &settings).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_rendition_and_size_bounds_hold() {
        let settings = CatalogSettings { max_bytes: 200, max_renditions: 2 };
        let rendition = |i: usize| format!("\"v{i}\":{{\"codec\":\"vp8\"}}");
        let catalog = |n: usize| {
            format!("{{\"video\":{{\"renditions\":{{{}}}}}}}", (0..n).map(rendition).collect::<Vec<_>>().join(","))
        };
        assert!(Catalog::from_json(catalog(2).as_bytes(), &settings).is_ok());
        assert!(matches!(
            Catalog::from_json(catalog(3).as_bytes(), &settings),
            Err(MediaError::TooManyRenditions { count: 3, max: 2 })
        ));
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(200));
        assert!(matches!(Catalog::from_json(big.as_bytes(), &settings), Err(MediaError::CatalogTooLarge { max: 200 })));
        // The bound covers a group's patches too.
        let mut group = CatalogGroupDecoder::new(settings);
        group.push(catalog(1).as_bytes()).unwrap();
        let patch = format!("{{\"pad\":\"{}\"}}", "x".repeat(150));
        assert!(matches!(group.push(patch.as_bytes()), Err(MediaError::CatalogTooLarge { max: 200 })));
    }

    #[test]
    fn merge_patches_apply_in_order_on_the_first_frame() {
        let mut group = CatalogGroupDecoder::new(CatalogSettings::default());
        let first = group
            .push(br#"{"video":{"renditions":{"hd":{"codec":"avc1.64001f","codedWidth":1280}}},"audio":{"renditions":{}}}"#)
            .unwrap();
        assert_eq!(first.video.renditions["hd"].coded_width, Some(1280));
        // Add a rendition, change a field.
        let second =
            group.push(br#"{"video":{"renditions":{"sd":{"codec":"avc1.42e01e"},"hd":{"codedWidth":1920}}}}"#).unwrap();
        assert_eq!(second.video.renditions["hd"].coded_width, Some(1920));
        assert_eq!(second.video.renditions["hd"].codec, "avc1.64001f");
        assert_eq!(second.video.renditions["sd"].codec, "avc1.42e01e");
        // null removes.
        let third = group.push(br#"{"video":{"renditions":{"hd":null}}}"#).unwrap();
        assert_eq!(third.video.renditions.keys().collect::<Vec<_>>(), ["sd"]);
        // A patch that breaks the catalog is an error, not a panic.
        assert!(group.push(br#"{"video":{"renditions":{"sd":{"codec":null}}}}"#).is_err());
    }
}
