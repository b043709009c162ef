/* moqtsink: publishes encoded audio and video as a hang media broadcast (a catalog track plus one
 * track per rendition) through libmoqt. One request pad per rendition (video_%u, audio_%u); the
 * catalog comes from each pad's caps, every buffer becomes one frame with its presentation time,
 * and a video keyframe (a buffer without DELTA_UNIT) starts a new group. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdio.h>
#include <string.h>

#include <gst/pbutils/pbutils.h>

#include "gstmoqt.h"

#define GST_CAT_DEFAULT gst_moqt_debug

/* Audio has no keyframes: every packet stands alone. A group per packet would be a stream per
 * 20 ms, so audio groups are cut every AUDIO_GROUP_US of presentation time. */
#define AUDIO_GROUP_US 500000
/* The catalog is held until every requested pad has its rendition, so that a subscriber taking
 * the first catalog sees them all; a pad whose first buffer comes later than this long after the
 * first written frame (wall-clock) is added by a catalog update of its own. */
#define CATALOG_WAIT_US 2000000
#define DEFAULT_FLUSH_TIMEOUT_MS 10000

typedef enum { GST_MOQT_CONTAINER_LEGACY = 0, GST_MOQT_CONTAINER_CMAF = 1 } GstMoqtContainer;

#define GST_TYPE_MOQT_CONTAINER (gst_moqt_container_get_type())
static GType gst_moqt_container_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_MOQT_CONTAINER_LEGACY, "Legacy: a varint timestamp, then the codec payload", "legacy"},
      {GST_MOQT_CONTAINER_CMAF, "CMAF: one moof+mdat fragment per frame, packed by libmoqt", "cmaf"},
      {0, NULL, NULL},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstMoqtContainer", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

/* One request pad: one rendition. */
typedef struct {
  GstMoqtSink *sink;
  gchar *name; /* the rendition's track name: the pad's name */
  gboolean video;
  /* The configuration from the caps. */
  gboolean configured;
  guint32 codec_id;
  gchar *codec;          /* an explicit codec string (VP9), or NULL to derive it */
  GBytes *description;   /* codec_data, OpusHead, ... */
  gboolean in_band;      /* H.264/H.265 byte-stream: parameter sets in band */
  gboolean from_keyframe; /* the parameter sets come from the first keyframe (no codec_data) */
  guint width, height;
  gdouble framerate;
  guint rate, channels;
  /* Publishing. */
  moqt_media_track *track;
  gboolean update_pending; /* caps changed: update the catalog (at the next keyframe when from_keyframe) */
  gboolean need_keyframe;  /* the next frame must open a group */
  gboolean have_group;
  guint64 group_start_us;
  guint64 last_pts_us;
  gboolean eos;
  GstSegment segment;
} MoqtSinkPad;

struct _GstMoqtSink {
  GstElement parent;
  /* Properties and pads, under the object lock. */
  GstMoqtConnection conn;
  GstMoqtContainer container;
  guint flush_timeout_ms;
  guint video_pads, audio_pads;
  /* Set while PAUSED or PLAYING (created in READY->PAUSED, freed in PAUSED->READY). */
  moqt_client *client;
  moqt_media *media;
  gboolean eos_posted;
  /* The catalog is held (see CATALOG_WAIT_US); when the first frame was written (monotonic). */
  gboolean catalog_held;
  gboolean have_first_write;
  gint64 first_write_us;
};

G_DEFINE_TYPE(GstMoqtSink, gst_moqt_sink, GST_TYPE_ELEMENT)

enum {
  PROP_URL = GST_MOQT_PROP_URL,
  PROP_BROADCAST = GST_MOQT_PROP_BROADCAST,
  PROP_TLS_FINGERPRINT = GST_MOQT_PROP_TLS_FINGERPRINT,
  PROP_TLS_ROOT = GST_MOQT_PROP_TLS_ROOT,
  PROP_TLS_DISABLE_VERIFY = GST_MOQT_PROP_TLS_DISABLE_VERIFY,
  PROP_IDLE_TIMEOUT = GST_MOQT_PROP_IDLE_TIMEOUT,
  PROP_CONTAINER = GST_MOQT_PROP_CONNECTION_END,
  PROP_FLUSH_TIMEOUT,
  PROP_STATUS,
  PROP_VERSION,
  PROP_SEND_BITRATE,
};

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("video/x-h264, stream-format = (string) { avc, avc3, byte-stream }, alignment = (string) au; "
                    "video/x-h265, stream-format = (string) { hvc1, hev1, byte-stream }, alignment = (string) au; "
                    "video/x-av1, stream-format = (string) obu-stream, alignment = (string) tu; "
                    "video/x-vp8; "
                    "video/x-vp9"));

static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("audio/x-opus, channel-mapping-family = (int) [ 0, 255 ]; "
                    "audio/mpeg, mpegversion = (int) 4, stream-format = (string) raw"));

/* --- caps to a rendition configuration ---------------------------------------------------- */

static void pad_config_clear(MoqtSinkPad *p) {
  g_clear_pointer(&p->codec, g_free);
  g_clear_pointer(&p->description, g_bytes_unref);
  p->configured = FALSE;
  p->codec_id = MOQT_CODEC_NONE;
  p->in_band = FALSE;
  p->from_keyframe = FALSE;
  p->width = p->height = 0;
  p->framerate = 0;
  p->rate = p->channels = 0;
}

static GBytes *buffer_bytes(const GValue *value) {
  if (value == NULL || !GST_VALUE_HOLDS_BUFFER(value))
    return NULL;
  GstBuffer *buf = gst_value_get_buffer(value);
  if (buf == NULL)
    return NULL;
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ))
    return NULL;
  GBytes *bytes = map.size ? g_bytes_new(map.data, map.size) : NULL;
  gst_buffer_unmap(buf, &map);
  return bytes;
}

/* A VP9 level (x10) from the luma picture size and rate (VP9 spec, Annex A), for the codec string. */
static guint vp9_level(guint width, guint height, gdouble fps) {
  static const struct {
    guint level;
    guint64 samples;
    guint64 rate;
  } levels[] = {{10, 36864, 829440},          {11, 73728, 2764800},        {20, 122880, 4608000},
                {21, 245760, 9216000},        {30, 552960, 20736000},      {31, 983040, 36864000},
                {40, 2228224, 83558400},      {41, 2228224, 160432128},    {50, 8912896, 311951360},
                {51, 8912896, 588251136},     {52, 8912896, 1176502272},   {60, 35651584, 1176502272},
                {61, 35651584, 2353004544ULL}, {62, 35651584, 4706009088ULL}};
  guint64 samples = (guint64)width * height;
  guint64 rate = (guint64)(samples * (fps > 0 ? fps : 30));
  for (gsize i = 0; i < G_N_ELEMENTS(levels); i++)
    if (samples <= levels[i].samples && rate <= levels[i].rate)
      return levels[i].level;
  return 62;
}

static gboolean caps_to_config(MoqtSinkPad *p, GstCaps *caps) {
  pad_config_clear(p);
  if (caps == NULL || gst_caps_get_size(caps) < 1)
    return FALSE;
  GstStructure *s = gst_caps_get_structure(caps, 0);
  const gchar *media = gst_structure_get_name(s);
  const gchar *format = gst_structure_get_string(s, "stream-format");
  gint i;
  if (gst_structure_get_int(s, "width", &i) && i > 0)
    p->width = (guint)i;
  if (gst_structure_get_int(s, "height", &i) && i > 0)
    p->height = (guint)i;
  gint num, den;
  if (gst_structure_get_fraction(s, "framerate", &num, &den) && num > 0 && den > 0)
    p->framerate = (gdouble)num / den;
  GBytes *codec_data = buffer_bytes(gst_structure_get_value(s, "codec_data"));

  if (g_str_equal(media, "video/x-h264") || g_str_equal(media, "video/x-h265")) {
    gboolean h264 = g_str_equal(media, "video/x-h264");
    p->codec_id = h264 ? MOQT_CODEC_H264 : MOQT_CODEC_H265;
    if (format == NULL || g_str_equal(format, "byte-stream") || codec_data == NULL) {
      /* Annex-B with the parameter sets in band: avc3/hev1, configured from the first keyframe. */
      p->in_band = TRUE;
      p->from_keyframe = TRUE;
      g_clear_pointer(&codec_data, g_bytes_unref);
    } else {
      p->description = g_steal_pointer(&codec_data); /* avcC / hvcC, length-prefixed samples */
    }
  } else if (g_str_equal(media, "video/x-av1")) {
    p->codec_id = MOQT_CODEC_AV1;
    if (codec_data != NULL)
      p->description = g_steal_pointer(&codec_data); /* av1C */
    else
      p->from_keyframe = TRUE; /* the sequence header OBU of the first keyframe */
  } else if (g_str_equal(media, "video/x-vp8")) {
    p->codec_id = MOQT_CODEC_VP8;
  } else if (g_str_equal(media, "video/x-vp9")) {
    p->codec_id = MOQT_CODEC_VP9;
    const gchar *profile = gst_structure_get_string(s, "profile");
    guint prof = profile && profile[0] >= '0' && profile[0] <= '3' ? (guint)(profile[0] - '0') : 0;
    guint depth = 8;
    if (gst_structure_get_uint(s, "bit-depth-luma", (guint *)&i) && i > 0)
      depth = (guint)i;
    p->codec = g_strdup_printf("vp09.%02u.%02u.%02u", prof, vp9_level(p->width, p->height, p->framerate), depth);
  } else if (g_str_equal(media, "audio/x-opus")) {
    p->codec_id = MOQT_CODEC_OPUS;
    guint32 rate = 0;
    guint8 channels = 0, family = 0, streams = 0, coupled = 0, mapping[256];
    const GValue *headers = gst_structure_get_value(s, "streamheader");
    if (headers != NULL && GST_VALUE_HOLDS_ARRAY(headers) && gst_value_array_get_size(headers) > 0)
      p->description = buffer_bytes(gst_value_array_get_value(headers, 0)); /* OpusHead */
    if (gst_codec_utils_opus_parse_caps(caps, &rate, &channels, &family, &streams, &coupled, mapping)) {
      p->rate = rate ? rate : 48000;
      p->channels = channels;
      if (p->description == NULL) {
        GstBuffer *head =
            gst_codec_utils_opus_create_header(p->rate, channels, family, streams, coupled, family ? mapping : NULL, 0, 0);
        if (head != NULL) {
          GstMapInfo map;
          if (gst_buffer_map(head, &map, GST_MAP_READ)) {
            p->description = g_bytes_new(map.data, map.size);
            gst_buffer_unmap(head, &map);
          }
          gst_buffer_unref(head);
        }
      }
    }
    g_clear_pointer(&codec_data, g_bytes_unref);
  } else if (g_str_equal(media, "audio/mpeg")) {
    p->codec_id = MOQT_CODEC_AAC;
    p->description = g_steal_pointer(&codec_data); /* AudioSpecificConfig */
    if (gst_structure_get_int(s, "rate", &i) && i > 0)
      p->rate = (guint)i;
    if (gst_structure_get_int(s, "channels", &i) && i > 0)
      p->channels = (guint)i;
  } else {
    g_clear_pointer(&codec_data, g_bytes_unref);
    return FALSE;
  }
  g_clear_pointer(&codec_data, g_bytes_unref);
  p->configured = TRUE;
  return TRUE;
}

/* The parameter sets of an Annex-B access unit (SPS/PPS, and VPS for H.265) as Annex-B, or the
 * sequence header OBUs of an AV1 temporal unit; NULL when there are none. */
static GBytes *parameter_sets(const MoqtSinkPad *p, const guint8 *data, gsize size) {
  GByteArray *out = g_byte_array_new();
  if (p->codec_id == MOQT_CODEC_AV1) {
    gsize pos = 0;
    while (pos < size) {
      gsize start = pos;
      guint8 header = data[pos++];
      guint type = (header >> 3) & 0xf;
      if (header & 0x4)
        pos++; /* extension header */
      if (!(header & 0x2) || pos > size)
        break; /* no size field: cannot walk on */
      guint64 len = 0;
      guint shift = 0;
      gboolean done = FALSE;
      while (pos < size && shift < 56) {
        guint8 b = data[pos++];
        len |= (guint64)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) {
          done = TRUE;
          break;
        }
      }
      if (!done || len > size - pos)
        break;
      pos += (gsize)len;
      if (type == 1) /* OBU_SEQUENCE_HEADER */
        g_byte_array_append(out, data + start, (guint)(pos - start));
    }
  } else {
    static const guint8 start_code[4] = {0, 0, 0, 1};
    gsize i = 0;
    while (i + 3 <= size) {
      /* Find the next start code. */
      if (!(data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1)) {
        i++;
        continue;
      }
      gsize nal = i + 3;
      gsize end = nal;
      while (end + 3 <= size && !(data[end] == 0 && data[end + 1] == 0 && (data[end + 2] == 1 || (data[end + 2] == 0 && end + 3 < size && data[end + 3] == 1))))
        end++;
      if (end + 3 > size)
        end = size;
      if (nal < end) {
        guint type = p->codec_id == MOQT_CODEC_H264 ? (data[nal] & 0x1f) : ((data[nal] >> 1) & 0x3f);
        gboolean keep = p->codec_id == MOQT_CODEC_H264 ? (type == 7 || type == 8) : (type >= 32 && type <= 34);
        if (keep) {
          g_byte_array_append(out, start_code, 4);
          g_byte_array_append(out, data + nal, (guint)(end - nal));
        }
      }
      i = end;
    }
  }
  if (out->len == 0) {
    g_byte_array_unref(out);
    return NULL;
  }
  return g_byte_array_free_to_bytes(out);
}

/* Adds the rendition to the catalog, or updates it. `sets` are parameter sets from a keyframe. */
static moqt_status publish_config(GstMoqtSink *self, MoqtSinkPad *p, GBytes *sets) {
  gsize dlen = 0, slen = 0;
  const guint8 *desc = p->description ? g_bytes_get_data(p->description, &dlen) : NULL;
  const guint8 *set_data = sets ? g_bytes_get_data(sets, &slen) : NULL;
  moqt_status rc;
  moqt_media_track *added = NULL;
  if (p->video) {
    moqt_video_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.codec = p->codec;
    c.codec_id = p->codec_id;
    c.description = desc;
    c.description_len = dlen;
    c.parameter_sets = set_data;
    c.parameter_sets_len = slen;
    c.in_band = p->in_band ? true : false;
    c.coded_width = p->width;
    c.coded_height = p->height;
    c.framerate = p->framerate;
    c.container = self->container == GST_MOQT_CONTAINER_CMAF ? MOQT_CONTAINER_CMAF : MOQT_CONTAINER_LEGACY;
    if (p->track == NULL)
      rc = moqt_media_add_video(self->media, p->name, SIZE_MAX, &c, &added);
    else
      rc = moqt_media_update_video(self->media, p->name, SIZE_MAX, &c);
  } else {
    moqt_audio_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.codec = p->codec;
    c.codec_id = p->codec_id;
    c.description = desc;
    c.description_len = dlen;
    c.sample_rate = p->rate;
    c.channels = p->channels;
    c.container = self->container == GST_MOQT_CONTAINER_CMAF ? MOQT_CONTAINER_CMAF : MOQT_CONTAINER_LEGACY;
    if (p->track == NULL)
      rc = moqt_media_add_audio(self->media, p->name, SIZE_MAX, &c, &added);
    else
      rc = moqt_media_update_audio(self->media, p->name, SIZE_MAX, &c);
  }
  if (added != NULL) {
    /* Read under the lock by maybe_release_catalog on other pads' threads. */
    GST_OBJECT_LOCK(self);
    p->track = added;
    GST_OBJECT_UNLOCK(self);
  }
  if (rc == MOQT_STATUS_OK) {
    GST_INFO_OBJECT(self, "rendition %s %s in the catalog", p->name, p->update_pending ? "updated" : "added");
    p->update_pending = FALSE;
  }
  return rc;
}

/* --- data ------------------------------------------------------------------------------------ */

typedef struct {
  GstBuffer *buffer;
  GstMapInfo map;
} WriteCtx;

/* libmoqt lets go of a written buffer: exactly once per write, on any thread. */
static void write_done(void *user_data, const uint8_t *data) {
  (void)data;
  WriteCtx *ctx = user_data;
  gst_buffer_unmap(ctx->buffer, &ctx->map);
  gst_buffer_unref(ctx->buffer);
  g_free(ctx);
}

/* Publishes the held catalog once every requested pad has a rendition (or is at EOS), once
 * CATALOG_WAIT_US of wall-clock time passed since the first frame was written, or when `now`
 * says so. Wall-clock, not media time: a source replaying a backlog (moqtsrc start=oldest) runs
 * media time far ahead of the other pads' first buffers. */
static void maybe_release_catalog(GstMoqtSink *self, gboolean now) {
  GST_OBJECT_LOCK(self);
  if (!self->catalog_held || self->media == NULL) {
    GST_OBJECT_UNLOCK(self);
    return;
  }
  gboolean release = now;
  gint64 clock_us = g_get_monotonic_time();
  if (!self->have_first_write) {
    self->have_first_write = TRUE;
    self->first_write_us = clock_us;
  } else if (clock_us - self->first_write_us >= CATALOG_WAIT_US) {
    release = TRUE;
  }
  if (!release) {
    release = TRUE;
    for (GList *l = GST_ELEMENT(self)->sinkpads; l && release; l = l->next) {
      MoqtSinkPad *p = gst_pad_get_element_private(GST_PAD(l->data));
      if (p != NULL && p->track == NULL && !p->eos)
        release = FALSE;
    }
  }
  if (release)
    self->catalog_held = FALSE;
  moqt_media *media = self->media;
  GST_OBJECT_UNLOCK(self);
  if (!release)
    return;
  moqt_status rc = moqt_media_release_catalog(media);
  if (rc == MOQT_STATUS_OK)
    GST_INFO_OBJECT(self, "catalog published");
  else if (rc != MOQT_STATUS_ERR_CLOSED)
    GST_WARNING_OBJECT(self, "publishing the catalog: %s: %s", moqt_status_str(rc), moqt_last_error());
}

/* The buffer's decode time as running time in microseconds, which libmoqt writes as the CMAF
 * fragment's decode time (the presentation time minus it is the composition offset): the
 * presentation time when the buffer has none. A decode time before the segment starts (an encoder
 * with B-frames starts decoding a frame or two before the first one shows) reads as 0: decode
 * times must only not go backwards, and presentation times stay exact. */
static guint64 decode_time_us(const MoqtSinkPad *p, GstBuffer *buf, guint64 pts_us) {
  if (!GST_BUFFER_DTS_IS_VALID(buf))
    return pts_us;
  guint64 rt = 0;
  gint sign = gst_segment_to_running_time_full(&p->segment, GST_FORMAT_TIME, GST_BUFFER_DTS(buf), &rt);
  if (sign < 0)
    return 0;
  return sign > 0 ? rt / GST_USECOND : pts_us;
}

static GstFlowReturn sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buf) {
  GstMoqtSink *self = GST_MOQT_SINK(parent);
  MoqtSinkPad *p = gst_pad_get_element_private(pad);
  if (p == NULL || !p->configured || self->media == NULL) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, (NULL), ("a buffer arrived on %s before its caps", GST_PAD_NAME(pad)));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (p->eos) {
    gst_buffer_unref(buf);
    return GST_FLOW_EOS;
  }
  GstClockTime ts = GST_BUFFER_PTS_IS_VALID(buf) ? GST_BUFFER_PTS(buf) : GST_BUFFER_DTS(buf);
  guint64 pts_us = p->last_pts_us;
  if (GST_CLOCK_TIME_IS_VALID(ts)) {
    GstClockTime rt = gst_segment_to_running_time(&p->segment, GST_FORMAT_TIME, ts);
    if (GST_CLOCK_TIME_IS_VALID(rt))
      pts_us = rt / GST_USECOND;
  }
  p->last_pts_us = pts_us;

  gboolean keyframe;
  if (p->video)
    keyframe = !GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
  else
    keyframe = !p->have_group || pts_us < p->group_start_us || pts_us - p->group_start_us >= AUDIO_GROUP_US;
  if ((p->need_keyframe || p->track == NULL || p->update_pending) && !keyframe && p->video) {
    GST_DEBUG_OBJECT(pad, "dropping a delta frame while waiting for a keyframe");
    gst_buffer_unref(buf);
    return GST_FLOW_OK;
  }
  if (p->need_keyframe)
    keyframe = TRUE;

  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, RESOURCE, READ, (NULL), ("cannot map a buffer"));
    return GST_FLOW_ERROR;
  }
  if (p->track == NULL || p->update_pending) {
    GBytes *sets = p->from_keyframe ? parameter_sets(p, map.data, map.size) : NULL;
    if (p->from_keyframe && sets == NULL && p->track == NULL) {
      GST_WARNING_OBJECT(pad, "a keyframe without parameter sets; waiting for the next");
      gst_buffer_unmap(buf, &map);
      gst_buffer_unref(buf);
      return GST_FLOW_OK;
    }
    moqt_status rc = MOQT_STATUS_OK;
    if (p->from_keyframe && sets == NULL)
      p->update_pending = FALSE; /* a new format without parameter sets here: they stay in band */
    else
      rc = publish_config(self, p, sets);
    if (sets)
      g_bytes_unref(sets);
    if (rc != MOQT_STATUS_OK) {
      gst_buffer_unmap(buf, &map);
      gst_buffer_unref(buf);
      GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Cannot publish rendition %s", p->name),
                        ("%s: %s", moqt_status_str(rc), moqt_last_error()));
      return GST_FLOW_ERROR;
    }
  }

  WriteCtx *ctx = g_new0(WriteCtx, 1);
  ctx->buffer = buf;
  ctx->map = map;
  guint64 dts_us = decode_time_us(p, buf, pts_us);
  moqt_status rc = moqt_media_track_write_dts_zero_copy(p->track, map.data, map.size, pts_us, dts_us,
                                                        keyframe ? MOQT_MEDIA_KEYFRAME : 0, write_done, ctx);
  /* ctx and buf are released by write_done from here on, whatever rc is. */
  switch (rc) {
  case MOQT_STATUS_OK:
    p->need_keyframe = FALSE;
    if (keyframe) {
      p->have_group = TRUE;
      p->group_start_us = pts_us;
    }
    maybe_release_catalog(self, FALSE);
    return GST_FLOW_OK;
  case MOQT_STATUS_ERR_INVALID_ARG:
  case MOQT_STATUS_ERR_NO_MEMORY:
    /* A frame refused (a group past its bounds, a time that does not fit): start again at the
     * next keyframe rather than fail the pipeline. */
    GST_WARNING_OBJECT(pad, "frame refused (%s: %s); waiting for a keyframe", moqt_status_str(rc), moqt_last_error());
    p->need_keyframe = TRUE;
    return GST_FLOW_OK;
  case MOQT_STATUS_ERR_CLOSED:
    return GST_FLOW_EOS;
  default:
    GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Cannot send on %s", p->name), ("%s: %s", moqt_status_str(rc), moqt_last_error()));
    return GST_FLOW_ERROR;
  }
}

/* Every pad at EOS: finish the broadcast, wait (bounded) until the relay has it all, post EOS. */
static void maybe_finish(GstMoqtSink *self, guint32 seqnum) {
  GST_OBJECT_LOCK(self);
  gboolean all = self->eos_posted == FALSE && GST_ELEMENT(self)->sinkpads != NULL;
  for (GList *l = GST_ELEMENT(self)->sinkpads; l && all; l = l->next) {
    MoqtSinkPad *p = gst_pad_get_element_private(GST_PAD(l->data));
    if (p == NULL || !p->eos)
      all = FALSE;
  }
  if (all)
    self->eos_posted = TRUE;
  guint timeout = self->flush_timeout_ms;
  GST_OBJECT_UNLOCK(self);
  if (!all)
    return;
  if (self->media) {
    moqt_status rc = moqt_media_finish(self->media);
    if (rc != MOQT_STATUS_OK && rc != MOQT_STATUS_ERR_CLOSED)
      GST_WARNING_OBJECT(self, "finishing the broadcast: %s: %s", moqt_status_str(rc), moqt_last_error());
  }
  if (self->client) {
    moqt_status rc = moqt_client_flush(self->client, timeout);
    if (rc == MOQT_STATUS_OK)
      GST_INFO_OBJECT(self, "everything reached the relay");
    else
      GST_WARNING_OBJECT(self, "flushing at EOS: %s: %s", moqt_status_str(rc), moqt_last_error());
  }
  GstMessage *msg = gst_message_new_eos(GST_OBJECT(self));
  gst_message_set_seqnum(msg, seqnum);
  gst_element_post_message(GST_ELEMENT(self), msg);
}

static gboolean sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  GstMoqtSink *self = GST_MOQT_SINK(parent);
  MoqtSinkPad *p = gst_pad_get_element_private(pad);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_CAPS: {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    GST_INFO_OBJECT(pad, "caps %" GST_PTR_FORMAT, caps);
    gboolean had_track = p->track != NULL;
    if (!caps_to_config(p, caps)) {
      GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, (NULL), ("unsupported caps %" GST_PTR_FORMAT, caps));
      gst_event_unref(event);
      return FALSE;
    }
    /* A first rendition waits for its first keyframe (with its parameter sets, if needed);
     * a renegotiation updates the catalog before the next keyframe's frame. */
    if (had_track)
      p->update_pending = TRUE;
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_SEGMENT: {
    const GstSegment *segment;
    gst_event_parse_segment(event, &segment);
    if (segment->format == GST_FORMAT_TIME)
      gst_segment_copy_into(segment, &p->segment);
    else
      gst_segment_init(&p->segment, GST_FORMAT_TIME);
    gst_event_unref(event);
    return TRUE;
  }
  case GST_EVENT_EOS: {
    guint32 seqnum = gst_event_get_seqnum(event);
    gst_event_unref(event);
    GST_INFO_OBJECT(pad, "EOS: finishing track %s", p->name);
    GST_OBJECT_LOCK(self);
    moqt_media_track *track = p->track;
    p->track = NULL;
    GST_OBJECT_UNLOCK(self);
    if (track)
      moqt_media_track_free(track); /* finishes it: subscribers get every frame, then the end */
    GST_OBJECT_LOCK(self);
    p->eos = TRUE;
    GST_OBJECT_UNLOCK(self);
    /* A pad that ends before it had a rendition no longer holds the others back. */
    maybe_release_catalog(self, FALSE);
    maybe_finish(self, seqnum);
    return TRUE;
  }
  case GST_EVENT_FLUSH_STOP:
    gst_segment_init(&p->segment, GST_FORMAT_TIME);
    p->need_keyframe = TRUE;
    gst_event_unref(event);
    return TRUE;
  default:
    return gst_pad_event_default(pad, parent, event);
  }
}

static gboolean sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  return gst_pad_query_default(pad, parent, query);
}

/* --- pads -------------------------------------------------------------------------------------- */

static GstPad *request_new_pad(GstElement *element, GstPadTemplate *templ, const gchar *req_name, const GstCaps *caps) {
  (void)caps;
  GstMoqtSink *self = GST_MOQT_SINK(element);
  gboolean video = g_str_equal(GST_PAD_TEMPLATE_NAME_TEMPLATE(templ), "video_%u");
  GST_OBJECT_LOCK(self);
  gchar *name = req_name && req_name[0] ? g_strdup(req_name)
                                        : g_strdup_printf(video ? "video_%u" : "audio_%u",
                                                          video ? self->video_pads : self->audio_pads);
  if (video)
    self->video_pads++;
  else
    self->audio_pads++;
  GST_OBJECT_UNLOCK(self);
  GstPad *pad = gst_pad_new_from_template(templ, name);
  MoqtSinkPad *p = g_new0(MoqtSinkPad, 1);
  p->sink = self;
  p->name = name;
  p->video = video;
  p->need_keyframe = TRUE;
  gst_segment_init(&p->segment, GST_FORMAT_TIME);
  gst_pad_set_element_private(pad, p);
  gst_pad_set_chain_function(pad, GST_DEBUG_FUNCPTR(sink_chain));
  gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(sink_event));
  gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(sink_query));
  GST_PAD_SET_PROXY_CAPS(pad);
  if (!gst_element_add_pad(element, pad)) {
    gst_pad_set_element_private(pad, NULL);
    g_free(p->name);
    g_free(p);
    gst_object_unref(pad);
    return NULL;
  }
  return pad;
}

static void pad_state_free(MoqtSinkPad *p) {
  if (p->track) {
    moqt_media_track_free(p->track);
    p->track = NULL;
  }
  pad_config_clear(p);
  g_free(p->name);
  g_free(p);
}

static void release_pad(GstElement *element, GstPad *pad) {
  MoqtSinkPad *p = gst_pad_get_element_private(pad);
  if (p && p->track) {
    /* The rendition leaves the catalog (ignored when the broadcast is already finished). */
    moqt_status rc = moqt_media_track_remove(p->track);
    (void)rc;
  }
  gst_pad_set_element_private(pad, NULL);
  gst_element_remove_pad(element, pad);
  if (p)
    pad_state_free(p);
}

/* --- state --------------------------------------------------------------------------------------- */

static gboolean start(GstMoqtSink *self) {
  GstMoqtConnection conn = {0};
  GST_OBJECT_LOCK(self);
  gst_moqt_connection_copy(&conn, &self->conn);
  GST_OBJECT_UNLOCK(self);
  gboolean ok = FALSE;
  moqt_client *client = gst_moqt_connect(GST_ELEMENT(self), &conn);
  if (client == NULL)
    goto done;
  moqt_media *media = NULL;
  moqt_status rc = moqt_client_publish_media(client, conn.broadcast, SIZE_MAX, &media);
  if (rc != MOQT_STATUS_OK) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE, ("Cannot publish broadcast %s", conn.broadcast),
                      ("%s: %s", moqt_status_str(rc), moqt_last_error()));
    moqt_client_free(client);
    goto done;
  }
  /* Held until the pads' renditions are known (see CATALOG_WAIT_US). */
  rc = moqt_media_hold_catalog(media);
  if (rc != MOQT_STATUS_OK)
    GST_WARNING_OBJECT(self, "holding the catalog: %s: %s", moqt_status_str(rc), moqt_last_error());
  GST_OBJECT_LOCK(self);
  self->client = client;
  self->media = media;
  self->eos_posted = FALSE;
  self->catalog_held = rc == MOQT_STATUS_OK;
  self->have_first_write = FALSE;
  GST_OBJECT_UNLOCK(self);
  ok = TRUE;
done:
  gst_moqt_connection_clear(&conn);
  return ok;
}

static void stop(GstMoqtSink *self) {
  GST_OBJECT_LOCK(self);
  moqt_client *client = self->client;
  moqt_media *media = self->media;
  self->client = NULL;
  self->media = NULL;
  GList *pads = g_list_copy_deep(GST_ELEMENT(self)->sinkpads, (GCopyFunc)(void (*)(void))gst_object_ref, NULL);
  GST_OBJECT_UNLOCK(self);
  for (GList *l = pads; l; l = l->next) {
    MoqtSinkPad *p = gst_pad_get_element_private(GST_PAD(l->data));
    if (p == NULL)
      continue;
    if (p->track) {
      moqt_media_track_free(p->track);
      p->track = NULL;
    }
    p->eos = FALSE;
    p->need_keyframe = TRUE;
    p->have_group = FALSE;
    p->update_pending = FALSE;
  }
  g_list_free_full(pads, gst_object_unref);
  moqt_media_free(media);
  moqt_client_free(client); /* drains what the finished tracks owe the relay, bounded */
}

static GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  GstMoqtSink *self = GST_MOQT_SINK(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !start(self))
    return GST_STATE_CHANGE_FAILURE;
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_moqt_sink_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      stop(self);
    return ret;
  }
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    stop(self);
  return ret;
}

/* --- properties --------------------------------------------------------------------------------- */

static void set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  GstMoqtSink *self = GST_MOQT_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (id) {
  case PROP_CONTAINER:
    self->container = g_value_get_enum(value);
    break;
  case PROP_FLUSH_TIMEOUT:
    self->flush_timeout_ms = g_value_get_uint(value);
    break;
  default:
    if (!gst_moqt_connection_set_property(&self->conn, id, value))
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  GstMoqtSink *self = GST_MOQT_SINK(object);
  GST_OBJECT_LOCK(self);
  switch (id) {
  case PROP_CONTAINER:
    g_value_set_enum(value, self->container);
    break;
  case PROP_FLUSH_TIMEOUT:
    g_value_set_uint(value, self->flush_timeout_ms);
    break;
  case PROP_STATUS:
    g_value_set_string(value, gst_moqt_state_name(self->client));
    break;
  case PROP_VERSION:
    g_value_set_uint(value, gst_moqt_client_version(self->client));
    break;
  case PROP_SEND_BITRATE:
    g_value_set_uint64(value, gst_moqt_client_send_bitrate(self->client));
    break;
  default:
    if (!gst_moqt_connection_get_property(&self->conn, id, value))
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void finalize(GObject *object) {
  GstMoqtSink *self = GST_MOQT_SINK(object);
  gst_moqt_connection_clear(&self->conn);
  G_OBJECT_CLASS(gst_moqt_sink_parent_class)->finalize(object);
}

static void dispose(GObject *object) {
  GstMoqtSink *self = GST_MOQT_SINK(object);
  /* Pads still requested when the element goes: their state goes with them. */
  GList *pads = g_list_copy_deep(GST_ELEMENT(self)->sinkpads, (GCopyFunc)(void (*)(void))gst_object_ref, NULL);
  for (GList *l = pads; l; l = l->next) {
    MoqtSinkPad *p = gst_pad_get_element_private(GST_PAD(l->data));
    gst_pad_set_element_private(GST_PAD(l->data), NULL);
    if (p)
      pad_state_free(p);
  }
  g_list_free_full(pads, gst_object_unref);
  G_OBJECT_CLASS(gst_moqt_sink_parent_class)->dispose(object);
}

static void gst_moqt_sink_class_init(GstMoqtSinkClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->dispose = dispose;
  gobject_class->finalize = finalize;
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  GST_MOQT_CONNECTION_PROPS(gobject_class, rw);
  g_object_class_install_property(
      gobject_class, PROP_CONTAINER,
      g_param_spec_enum("container", "Container", "How each frame is laid out on the wire", GST_TYPE_MOQT_CONTAINER,
                        GST_MOQT_CONTAINER_LEGACY, rw));
  g_object_class_install_property(
      gobject_class, PROP_FLUSH_TIMEOUT,
      g_param_spec_uint("flush-timeout", "Flush timeout",
                        "At EOS, how long to wait (ms) for the relay to acknowledge everything before posting EOS", 0,
                        G_MAXUINT, DEFAULT_FLUSH_TIMEOUT_MS, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATUS,
      g_param_spec_string("status", "Status",
                          "Connection state: idle, connecting, connected, migrating, reconnecting, gave-up, closed",
                          "idle", ro));
  g_object_class_install_property(
      gobject_class, PROP_VERSION,
      g_param_spec_uint("version", "Version", "Negotiated moq-lite version (0 while not connected)", 0, G_MAXUINT, 0,
                        ro));
  g_object_class_install_property(
      gobject_class, PROP_SEND_BITRATE,
      g_param_spec_uint64("send-bitrate", "Send bitrate", "Estimated send rate, bit/s (0 while unknown)", 0,
                          G_MAXUINT64, 0, ro));
  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(
      element_class, "Media over QUIC sink", "Sink/Network",
      "Publishes audio and video as a hang media broadcast (moq-lite) to a relay", "moqt");
  element_class->request_new_pad = GST_DEBUG_FUNCPTR(request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR(release_pad);
  element_class->change_state = GST_DEBUG_FUNCPTR(change_state);
  gst_type_mark_as_plugin_api(GST_TYPE_MOQT_CONTAINER, 0);
}

static void gst_moqt_sink_init(GstMoqtSink *self) {
  self->container = GST_MOQT_CONTAINER_LEGACY;
  self->flush_timeout_ms = DEFAULT_FLUSH_TIMEOUT_MS;
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SINK);
}
