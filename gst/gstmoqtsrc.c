/* moqtsrc: plays a hang media broadcast through libmoqt. A live source: it connects without
 * blocking, follows the broadcast's catalog on a thread of its own, and exposes one sometimes-pad
 * per rendition (video_<name>, audio_<name>) with caps from the catalog, added as renditions
 * appear (no-more-pads only once the catalog ends); each pad has a streaming
 * task taking samples from a pull subscription and pushing them as buffers with their PTS,
 * DELTA_UNIT on video frames that are not keyframes, DISCONT after a gap, and EOS at the track's
 * clean end. Received frames become buffers without a copy. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <string.h>

#include <gst/pbutils/pbutils.h>

#include "gstmoqt.h"

#define GST_CAT_DEFAULT gst_moqt_debug

#define DEFAULT_LATENCY_MS 1000

typedef enum { GST_MOQT_START_LATEST = 0, GST_MOQT_START_OLDEST = 1 } GstMoqtStart;

#define GST_TYPE_MOQT_START (gst_moqt_start_get_type())
static GType gst_moqt_start_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_MOQT_START_LATEST, "The live edge: the newest group (the one in progress)", "latest"},
      {GST_MOQT_START_OLDEST, "The oldest group the publisher or relay still keeps, then live", "oldest"},
      {0, NULL, NULL},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstMoqtStart", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

typedef struct {
  GstMoqtSrc *src;
  GstPad *pad;      /* owned reference */
  gchar *rendition; /* the rendition's track name */
  gboolean video;
  moqt_pull *pull;
  GstCaps *caps;         /* the caps in use */
  GstCaps *pending_caps; /* new caps from a catalog update, under the object lock */
  gboolean started;      /* stream-start, caps and segment sent */
  gboolean discont;
  gboolean ended;
  guint64 buffers;
} MoqtSrcStream;

struct _GstMoqtSrc {
  GstElement parent;
  /* Properties, under the object lock. */
  GstMoqtConnection conn;
  guint latency_ms;
  gchar *renditions;
  GstMoqtStart start;
  /* Running (READY->PAUSED until PAUSED->READY). */
  moqt_client *client;
  moqt_media_consumer *consumer;
  GThread *catalog_thread;
  gint stopping; /* atomic */
  GPtrArray *streams; /* MoqtSrcStream*, under the object lock */
  guint group_id;
  gboolean no_more_pads;
  /* Timestamps: the first sample's time maps to the running time it arrived at. */
  GMutex time_lock;
  gboolean have_base;
  guint64 base_us;
  GstClockTime base_rt;
};

G_DEFINE_TYPE(GstMoqtSrc, gst_moqt_src, GST_TYPE_ELEMENT)

enum {
  PROP_URL = GST_MOQT_PROP_URL,
  PROP_BROADCAST = GST_MOQT_PROP_BROADCAST,
  PROP_TLS_FINGERPRINT = GST_MOQT_PROP_TLS_FINGERPRINT,
  PROP_TLS_ROOT = GST_MOQT_PROP_TLS_ROOT,
  PROP_TLS_DISABLE_VERIFY = GST_MOQT_PROP_TLS_DISABLE_VERIFY,
  PROP_IDLE_TIMEOUT = GST_MOQT_PROP_IDLE_TIMEOUT,
  PROP_LATENCY = GST_MOQT_PROP_CONNECTION_END,
  PROP_RENDITIONS,
  PROP_START,
  PROP_STATUS,
  PROP_VERSION,
};

#define VIDEO_CAPS                                                                                                 \
  "video/x-h264, stream-format = (string) { avc, avc3, byte-stream }, alignment = (string) au; "                        \
  "video/x-h265, stream-format = (string) { hvc1, hev1, byte-stream }, alignment = (string) au; "                       \
  "video/x-av1, stream-format = (string) obu-stream, alignment = (string) tu; "                                  \
  "video/x-vp8; video/x-vp9"
#define AUDIO_CAPS "audio/x-opus; audio/mpeg, mpegversion = (int) 4, stream-format = (string) raw"

static GstStaticPadTemplate video_template =
    GST_STATIC_PAD_TEMPLATE("video_%s", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS(VIDEO_CAPS));
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio_%s", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS(AUDIO_CAPS));

/* --- caps from a rendition ------------------------------------------------------------------ */

static GstBuffer *bytes_buffer(const uint8_t *data, size_t len) {
  return gst_buffer_new_memdup(data, len);
}

static gboolean has_prefix(const moqt_rendition *r, const char *prefix) {
  return r->codec != NULL && g_str_has_prefix(r->codec, prefix);
}

/* Caps for a rendition, or NULL for a codec this element does not know. */
static GstCaps *rendition_caps(const moqt_rendition *r) {
  GstCaps *caps = NULL;
  gboolean desc = r->description != NULL && r->description_len > 0;
  if (r->kind == MOQT_MEDIA_KIND_VIDEO) {
    /* Length-prefixed with a record; avc3/hev1 keep parameter sets in band as well. */
    if (has_prefix(r, "avc1") || has_prefix(r, "avc3")) {
      const gchar *format = !desc ? "byte-stream" : has_prefix(r, "avc3") ? "avc3" : "avc";
      caps = gst_caps_new_simple("video/x-h264", "stream-format", G_TYPE_STRING, format, "alignment", G_TYPE_STRING,
                                 "au", NULL);
    } else if (has_prefix(r, "hvc1") || has_prefix(r, "hev1")) {
      const gchar *format = !desc ? "byte-stream" : has_prefix(r, "hev1") ? "hev1" : "hvc1";
      caps = gst_caps_new_simple("video/x-h265", "stream-format", G_TYPE_STRING, format, "alignment", G_TYPE_STRING,
                                 "au", NULL);
    } else if (has_prefix(r, "av01")) {
      caps = gst_caps_new_simple("video/x-av1", "stream-format", G_TYPE_STRING, "obu-stream", "alignment",
                                 G_TYPE_STRING, "tu", NULL);
    } else if (has_prefix(r, "vp8")) {
      caps = gst_caps_new_empty_simple("video/x-vp8");
    } else if (has_prefix(r, "vp09") || has_prefix(r, "vp9")) {
      caps = gst_caps_new_empty_simple("video/x-vp9");
    } else {
      return NULL;
    }
    if (desc) {
      GstBuffer *codec_data = bytes_buffer(r->description, r->description_len);
      gst_caps_set_simple(caps, "codec_data", GST_TYPE_BUFFER, codec_data, NULL);
      gst_buffer_unref(codec_data);
    }
    if (r->coded_width > 0 && r->coded_height > 0 && r->coded_width <= G_MAXINT && r->coded_height <= G_MAXINT)
      gst_caps_set_simple(caps, "width", G_TYPE_INT, (gint)r->coded_width, "height", G_TYPE_INT,
                          (gint)r->coded_height, NULL);
    if (r->framerate > 0 && r->framerate < 1000) {
      gint num, den;
      gst_util_double_to_fraction(r->framerate, &num, &den);
      gst_caps_set_simple(caps, "framerate", GST_TYPE_FRACTION, num, den, NULL);
    }
    return caps;
  }
  if (r->kind != MOQT_MEDIA_KIND_AUDIO)
    return NULL;
  if (has_prefix(r, "opus") || has_prefix(r, "Opus")) {
    if (desc) {
      GstBuffer *head = bytes_buffer(r->description, r->description_len);
      caps = gst_codec_utils_opus_create_caps_from_header(head, NULL);
      gst_buffer_unref(head);
    }
    if (caps == NULL) {
      guint channels = r->channels >= 1 && r->channels <= 2 ? r->channels : 2;
      caps = gst_codec_utils_opus_create_caps(r->sample_rate ? r->sample_rate : 48000, (guint8)channels, 0, 1,
                                              channels == 2 ? 1 : 0, NULL);
    }
    return caps;
  }
  if (has_prefix(r, "mp4a.40") || has_prefix(r, "mp4a.67")) {
    caps = gst_caps_new_simple("audio/mpeg", "mpegversion", G_TYPE_INT, 4, "stream-format", G_TYPE_STRING, "raw",
                               "framed", G_TYPE_BOOLEAN, TRUE, NULL);
    if (desc) {
      GstBuffer *asc = bytes_buffer(r->description, r->description_len);
      gst_caps_set_simple(caps, "codec_data", GST_TYPE_BUFFER, asc, NULL);
      gst_buffer_unref(asc);
      gst_codec_utils_aac_caps_set_level_and_profile(caps, r->description, (guint)r->description_len);
    }
    if (r->sample_rate > 0 && r->sample_rate <= G_MAXINT)
      gst_caps_set_simple(caps, "rate", G_TYPE_INT, (gint)r->sample_rate, NULL);
    if (r->channels > 0 && r->channels <= 64)
      gst_caps_set_simple(caps, "channels", G_TYPE_INT, (gint)r->channels, NULL);
    return caps;
  }
  return NULL;
}

/* video_<name> / audio_<name>: the rendition's name with anything but [A-Za-z0-9_-] as '_'. */
static gchar *pad_name(const moqt_rendition *r) {
  GString *name = g_string_new(r->kind == MOQT_MEDIA_KIND_VIDEO ? "video_" : "audio_");
  for (size_t i = 0; i < r->name_len; i++) {
    char c = r->name[i];
    g_string_append_c(name, g_ascii_isalnum(c) || c == '-' || c == '_' ? c : '_');
  }
  return g_string_free(name, FALSE);
}

/* Whether the renditions property (comma-separated names; empty: all) takes this one. */
static gboolean wanted(const gchar *filter, const moqt_rendition *r) {
  if (filter == NULL || filter[0] == '\0')
    return TRUE;
  gchar **names = g_strsplit(filter, ",", -1);
  gboolean found = FALSE;
  for (gchar **n = names; *n && !found; n++) {
    gchar *name = g_strstrip(*n);
    found = strlen(name) == r->name_len && memcmp(name, r->name, r->name_len) == 0;
  }
  g_strfreev(names);
  return found;
}

/* --- streaming ---------------------------------------------------------------------------------- */

static void frame_unref(gpointer frame) {
  moqt_frame_unref(frame);
}

static GstClockTime pts_of(GstMoqtSrc *self, guint64 ts_us) {
  g_mutex_lock(&self->time_lock);
  if (!self->have_base) {
    self->have_base = TRUE;
    self->base_us = ts_us;
    self->base_rt = 0;
    GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
    if (clock != NULL) {
      GstClockTime now = gst_clock_get_time(clock);
      GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
      if (GST_CLOCK_TIME_IS_VALID(now) && GST_CLOCK_TIME_IS_VALID(base) && now > base)
        self->base_rt = now - base;
      gst_object_unref(clock);
    }
  }
  if (ts_us < self->base_us && (self->base_us - ts_us) * GST_USECOND > self->base_rt) {
    /* Earlier than the running time allows (another pad's group began before the first frame
     * that arrived): move the anchor so it lands at running time base_rt - every pad's later
     * buffers shift forward by the same amount, once, rather than pile up at 0. */
    GST_INFO_OBJECT(self, "re-anchoring timestamps %" G_GUINT64_FORMAT " us earlier", self->base_us - ts_us - self->base_rt / GST_USECOND);
    self->base_us = ts_us + self->base_rt / GST_USECOND;
  }
  GstClockTime pts;
  if (ts_us >= self->base_us)
    pts = self->base_rt + (ts_us - self->base_us) * GST_USECOND;
  else
    pts = self->base_rt - (self->base_us - ts_us) * GST_USECOND;
  g_mutex_unlock(&self->time_lock);
  return pts;
}

static void send_start_events(MoqtSrcStream *s) {
  GstMoqtSrc *self = s->src;
  gchar *stream_id = gst_pad_create_stream_id(s->pad, GST_ELEMENT(self), s->rendition);
  GstEvent *start = gst_event_new_stream_start(stream_id);
  gst_event_set_group_id(start, self->group_id);
  gst_pad_push_event(s->pad, start);
  g_free(stream_id);
  GST_OBJECT_LOCK(self);
  GstCaps *caps = s->pending_caps ? g_steal_pointer(&s->pending_caps) : gst_caps_ref(s->caps);
  gst_caps_replace(&s->caps, caps);
  GST_OBJECT_UNLOCK(self);
  gst_pad_push_event(s->pad, gst_event_new_caps(caps));
  gst_caps_unref(caps);
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(s->pad, gst_event_new_segment(&segment));
  s->started = TRUE;
}

static void end_stream(MoqtSrcStream *s) {
  s->ended = TRUE;
  gst_pad_push_event(s->pad, gst_event_new_eos());
  gst_pad_pause_task(s->pad);
}

static void stream_loop(gpointer data) {
  MoqtSrcStream *s = data;
  GstMoqtSrc *self = s->src;
  if (s->ended) {
    gst_pad_pause_task(s->pad);
    return;
  }
  if (!s->started)
    send_start_events(s);

  const moqt_frame *frame = NULL;
  moqt_status rc = moqt_pull_next_frame(s->pull, -1, &frame);
  switch (rc) {
  case MOQT_STATUS_OK:
    break;
  case MOQT_STATUS_ERR_INTERRUPTED:
    /* Flushing: the element is stopping. */
    gst_pad_pause_task(s->pad);
    return;
  case MOQT_STATUS_END:
    GST_INFO_OBJECT(s->pad, "end of %s after %" G_GUINT64_FORMAT " buffers", s->rendition, s->buffers);
    end_stream(s);
    return;
  default:
    if (g_atomic_int_get(&self->stopping)) {
      gst_pad_pause_task(s->pad);
      return;
    }
    GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Rendition %s ended with an error", s->rendition),
                      ("%s: %s", moqt_status_str(rc), moqt_last_error()));
    end_stream(s);
    return;
  }

  /* Groups that will not arrive before this frame: the stream is discontinuous here. */
  uint64_t first, last, code;
  while (moqt_pull_next_gap(s->pull, &first, &last, &code) == MOQT_STATUS_OK) {
    GST_INFO_OBJECT(s->pad, "groups %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT " lost (code %" G_GUINT64_FORMAT ")",
                    first, last, code);
    s->discont = TRUE;
  }

  /* New caps from a catalog update apply from a keyframe on (the sink updates the catalog just
   * before the keyframe of the new format): the frames of the group in progress still decode
   * with the old ones. Audio frames are all keyframes. */
  GST_OBJECT_LOCK(self);
  GstCaps *caps = s->pending_caps && moqt_frame_is_keyframe(frame) ? g_steal_pointer(&s->pending_caps) : NULL;
  GST_OBJECT_UNLOCK(self);
  if (caps != NULL) {
    GST_INFO_OBJECT(s->pad, "new caps from the catalog: %" GST_PTR_FORMAT, caps);
    gst_caps_replace(&s->caps, caps);
    gst_pad_push_event(s->pad, gst_event_new_caps(caps));
    gst_caps_unref(caps);
  }

  size_t len = 0;
  const uint8_t *bytes = moqt_frame_data(frame, &len);
  GstBuffer *buf;
  if (bytes != NULL && len > 0)
    buf = gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, (gpointer)bytes, len, 0, len, (gpointer)frame,
                                      frame_unref);
  else {
    buf = gst_buffer_new();
    moqt_frame_unref(frame);
    frame = NULL;
  }
  if (frame != NULL) {
    GST_BUFFER_PTS(buf) = pts_of(self, moqt_frame_timestamp_us(frame));
    if (s->video && !moqt_frame_is_keyframe(frame))
      GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
  }
  if (s->discont || s->buffers == 0) {
    GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
    s->discont = FALSE;
  }
  s->buffers++;
  GstFlowReturn ret = gst_pad_push(s->pad, buf);
  if (ret == GST_FLOW_OK || ret == GST_FLOW_NOT_LINKED)
    return; /* an unlinked rendition is drained and dropped */
  if (ret == GST_FLOW_FLUSHING) {
    gst_pad_pause_task(s->pad);
    return;
  }
  if (ret == GST_FLOW_EOS) {
    gst_pad_pause_task(s->pad);
    return;
  }
  GST_ELEMENT_FLOW_ERROR(self, ret);
  end_stream(s);
}

static gboolean src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  GstMoqtSrc *self = GST_MOQT_SRC(parent);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_LATENCY: {
    GST_OBJECT_LOCK(self);
    GstClockTime latency = (GstClockTime)self->latency_ms * GST_MSECOND;
    GST_OBJECT_UNLOCK(self);
    gst_query_set_latency(query, TRUE, latency, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  case GST_QUERY_CAPS: {
    MoqtSrcStream *s = gst_pad_get_element_private(pad);
    GstCaps *filter, *caps = NULL;
    gst_query_parse_caps(query, &filter);
    GST_OBJECT_LOCK(self);
    if (s != NULL && (s->pending_caps || s->caps))
      caps = gst_caps_ref(s->pending_caps ? s->pending_caps : s->caps);
    GST_OBJECT_UNLOCK(self);
    if (caps == NULL)
      caps = gst_pad_get_pad_template_caps(pad);
    if (filter) {
      GstCaps *both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
      gst_caps_unref(caps);
      caps = both;
    }
    gst_query_set_caps_result(query, caps);
    gst_caps_unref(caps);
    return TRUE;
  }
  case GST_QUERY_SCHEDULING:
    gst_query_set_scheduling(query, GST_SCHEDULING_FLAG_SEQUENTIAL, 1, -1, 0);
    gst_query_add_scheduling_mode(query, GST_PAD_MODE_PUSH);
    return TRUE;
  default:
    return gst_pad_query_default(pad, parent, query);
  }
}

static gboolean src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_SEEK:
    /* A live broadcast: no seeking. */
    gst_event_unref(event);
    return FALSE;
  default:
    return gst_pad_event_default(pad, parent, event);
  }
}

/* --- the catalog ------------------------------------------------------------------------------- */

static MoqtSrcStream *find_stream(GstMoqtSrc *self, const moqt_rendition *r) {
  for (guint i = 0; i < self->streams->len; i++) {
    MoqtSrcStream *s = g_ptr_array_index(self->streams, i);
    if (strlen(s->rendition) == r->name_len && memcmp(s->rendition, r->name, r->name_len) == 0)
      return s;
  }
  return NULL;
}

static void stream_free(MoqtSrcStream *s) {
  moqt_pull_free(s->pull);
  g_clear_pointer(&s->caps, gst_caps_unref);
  g_clear_pointer(&s->pending_caps, gst_caps_unref);
  gst_object_unref(s->pad);
  g_free(s->rendition);
  g_free(s);
}

/* One catalog: a pad for each new rendition wanted, new caps for the ones that changed. */
static void handle_catalog(GstMoqtSrc *self, const moqt_catalog *catalog) {
  GST_OBJECT_LOCK(self);
  gchar *filter = g_strdup(self->renditions);
  gchar *broadcast = g_strdup(self->conn.broadcast);
  moqt_subscribe_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.delivery = MOQT_DELIVERY_ORDERED;
  options.max_latency_ms = self->latency_ms;
  options.start_group = self->start == GST_MOQT_START_OLDEST ? MOQT_START_OLDEST : MOQT_START_LATEST;
  GST_OBJECT_UNLOCK(self);
  size_t count = moqt_catalog_rendition_count(catalog);
  GST_INFO_OBJECT(self, "catalog with %zu renditions: %s", count, moqt_catalog_json(catalog, NULL));
  for (size_t i = 0; i < count && !g_atomic_int_get(&self->stopping); i++) {
    moqt_rendition r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    if (moqt_catalog_rendition(catalog, i, &r) != MOQT_STATUS_OK || r.name == NULL || !wanted(filter, &r))
      continue;
    GstCaps *caps = rendition_caps(&r);
    if (caps == NULL) {
      GST_ELEMENT_WARNING(self, STREAM, CODEC_NOT_FOUND, (NULL),
                          ("rendition %s: codec %s is not supported", r.name, r.codec ? r.codec : "(none)"));
      continue;
    }
    GST_OBJECT_LOCK(self);
    MoqtSrcStream *existing = find_stream(self, &r);
    if (existing != NULL) {
      if (!gst_caps_is_equal(caps, existing->pending_caps ? existing->pending_caps : existing->caps))
        gst_caps_replace(&existing->pending_caps, caps);
      GST_OBJECT_UNLOCK(self);
      gst_caps_unref(caps);
      continue;
    }
    GST_OBJECT_UNLOCK(self);
    moqt_pull *pull = NULL;
    moqt_status rc = moqt_media_subscribe(self->client, broadcast, SIZE_MAX, catalog, r.name, r.name_len, &options, &pull);
    if (rc != MOQT_STATUS_OK) {
      GST_ELEMENT_WARNING(self, RESOURCE, READ, (NULL),
                          ("rendition %s: %s: %s", r.name, moqt_status_str(rc), moqt_last_error()));
      gst_caps_unref(caps);
      continue;
    }
    MoqtSrcStream *s = g_new0(MoqtSrcStream, 1);
    s->src = self;
    s->rendition = g_strndup(r.name, r.name_len);
    s->video = r.kind == MOQT_MEDIA_KIND_VIDEO;
    s->pull = pull;
    s->caps = caps;
    gchar *name = pad_name(&r);
    GstPadTemplate *templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), s->video ? "video_%s" : "audio_%s");
    s->pad = gst_object_ref_sink(gst_pad_new_from_template(templ, name));
    g_free(name);
    gst_pad_set_element_private(s->pad, s);
    gst_pad_set_query_function(s->pad, GST_DEBUG_FUNCPTR(src_query));
    gst_pad_set_event_function(s->pad, GST_DEBUG_FUNCPTR(src_event));
    gst_pad_use_fixed_caps(s->pad);
    GST_INFO_OBJECT(self, "rendition %s: pad %s, caps %" GST_PTR_FORMAT, s->rendition, GST_PAD_NAME(s->pad), caps);
    gst_pad_set_active(s->pad, TRUE);
    GST_OBJECT_LOCK(self);
    g_ptr_array_add(self->streams, s);
    /* unblock() flushes every stream it finds under this lock; one added after it ran is
     * flushed here, so no task ever waits once stopping is set. */
    if (g_atomic_int_get(&self->stopping)) {
      moqt_status frc = moqt_pull_set_flushing(s->pull, true);
      (void)frc;
    }
    GST_OBJECT_UNLOCK(self);
    if (!gst_element_add_pad(GST_ELEMENT(self), s->pad)) {
      GST_OBJECT_LOCK(self);
      g_ptr_array_remove(self->streams, s);
      GST_OBJECT_UNLOCK(self);
      stream_free(s);
      continue;
    }
    gst_pad_start_task(s->pad, stream_loop, s, NULL);
  }
  g_free(filter);
  g_free(broadcast);
}

static gpointer catalog_thread(gpointer data) {
  GstMoqtSrc *self = data;
  while (!g_atomic_int_get(&self->stopping)) {
    const moqt_catalog *catalog = NULL;
    moqt_status rc = moqt_media_next_catalog(self->consumer, -1, &catalog);
    if (rc == MOQT_STATUS_OK) {
      handle_catalog(self, catalog);
      moqt_catalog_unref(catalog);
    } else if (rc == MOQT_STATUS_ERR_INTERRUPTED) {
      continue;
    } else if (rc == MOQT_STATUS_END) {
      GST_OBJECT_LOCK(self);
      gboolean playing = self->streams->len > 0;
      GST_OBJECT_UNLOCK(self);
      GST_INFO_OBJECT(self, "the broadcast finished");
      if (!playing)
        GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("The broadcast ended with no rendition to play"), (NULL));
      break;
    } else {
      /* Once renditions play, each one's own end (EOS or an error) decides; the catalog track
       * closing with its broadcast is not an error of its own. Before any, nothing will play. */
      GST_OBJECT_LOCK(self);
      gboolean playing = self->streams->len > 0;
      GST_OBJECT_UNLOCK(self);
      if (g_atomic_int_get(&self->stopping))
        ;
      else if (playing)
        GST_INFO_OBJECT(self, "the catalog ended: %s: %s", moqt_status_str(rc), moqt_last_error());
      else
        GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Cannot read the broadcast's catalog"),
                          ("%s: %s", moqt_status_str(rc), moqt_last_error()));
      break;
    }
  }
  /* A broadcast may add renditions with any catalog update: only its end means no more pads. */
  if (!g_atomic_int_get(&self->stopping) && !self->no_more_pads) {
    self->no_more_pads = TRUE;
    gst_element_no_more_pads(GST_ELEMENT(self));
  }
  return NULL;
}

/* --- state --------------------------------------------------------------------------------------- */

static gboolean start(GstMoqtSrc *self) {
  GstMoqtConnection conn = {0};
  GST_OBJECT_LOCK(self);
  gst_moqt_connection_copy(&conn, &self->conn);
  GST_OBJECT_UNLOCK(self);
  gboolean ok = FALSE;
  moqt_client *client = gst_moqt_connect(GST_ELEMENT(self), &conn);
  if (client == NULL)
    goto done;
  moqt_media_consumer *consumer = NULL;
  moqt_status rc = moqt_client_consume_media(client, conn.broadcast, SIZE_MAX, &consumer);
  if (rc != MOQT_STATUS_OK) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Cannot follow broadcast %s", conn.broadcast),
                      ("%s: %s", moqt_status_str(rc), moqt_last_error()));
    moqt_client_free(client);
    goto done;
  }
  self->client = client;
  self->consumer = consumer;
  g_atomic_int_set(&self->stopping, 0);
  self->no_more_pads = FALSE;
  self->group_id = gst_util_group_id_next();
  g_mutex_lock(&self->time_lock);
  self->have_base = FALSE;
  g_mutex_unlock(&self->time_lock);
  self->catalog_thread = g_thread_new("moqtsrc-catalog", catalog_thread, self);
  ok = TRUE;
done:
  gst_moqt_connection_clear(&conn);
  return ok;
}

/* Wakes every wait (the catalog thread's, each streaming task's) for good. Before the pads are
 * deactivated: deactivating a pad waits for its task's stream lock, which a task holds while it
 * waits for a frame. */
static void unblock(GstMoqtSrc *self) {
  g_atomic_int_set(&self->stopping, 1);
  if (self->consumer)
    moqt_media_consumer_interrupt(self->consumer);
  GST_OBJECT_LOCK(self);
  for (guint i = 0; i < self->streams->len; i++) {
    MoqtSrcStream *s = g_ptr_array_index(self->streams, i);
    moqt_status rc = moqt_pull_set_flushing(s->pull, true);
    (void)rc;
  }
  GST_OBJECT_UNLOCK(self);
}

static void stop(GstMoqtSrc *self) {
  unblock(self);
  if (self->catalog_thread) {
    g_thread_join(self->catalog_thread);
    self->catalog_thread = NULL;
  }
  GST_OBJECT_LOCK(self);
  GPtrArray *streams = self->streams;
  self->streams = g_ptr_array_new();
  GST_OBJECT_UNLOCK(self);
  for (guint i = 0; i < streams->len; i++) {
    MoqtSrcStream *s = g_ptr_array_index(streams, i);
    moqt_status rc = moqt_pull_set_flushing(s->pull, true); /* wakes the task's wait */
    (void)rc;
    gst_pad_set_active(s->pad, FALSE); /* unblocks a push downstream */
    gst_pad_stop_task(s->pad);
    gst_element_remove_pad(GST_ELEMENT(self), s->pad);
    stream_free(s);
  }
  g_ptr_array_unref(streams);
  moqt_media_consumer_free(self->consumer);
  self->consumer = NULL;
  moqt_client_free(self->client);
  self->client = NULL;
}

static GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  GstMoqtSrc *self = GST_MOQT_SRC(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !start(self))
    return GST_STATE_CHANGE_FAILURE;
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    unblock(self);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_moqt_src_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      stop(self);
    return ret;
  }
  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
    return GST_STATE_CHANGE_NO_PREROLL; /* live */
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    stop(self);
    break;
  default:
    break;
  }
  return ret;
}

/* --- properties ---------------------------------------------------------------------------------- */

static void set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  GstMoqtSrc *self = GST_MOQT_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (id) {
  case PROP_LATENCY:
    self->latency_ms = g_value_get_uint(value);
    break;
  case PROP_RENDITIONS:
    g_free(self->renditions);
    self->renditions = g_value_dup_string(value);
    break;
  case PROP_START:
    self->start = g_value_get_enum(value);
    break;
  default:
    if (!gst_moqt_connection_set_property(&self->conn, id, value))
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  GstMoqtSrc *self = GST_MOQT_SRC(object);
  GST_OBJECT_LOCK(self);
  switch (id) {
  case PROP_LATENCY:
    g_value_set_uint(value, self->latency_ms);
    break;
  case PROP_RENDITIONS:
    g_value_set_string(value, self->renditions);
    break;
  case PROP_START:
    g_value_set_enum(value, self->start);
    break;
  case PROP_STATUS:
    g_value_set_string(value, gst_moqt_state_name(self->client));
    break;
  case PROP_VERSION:
    g_value_set_uint(value, gst_moqt_client_version(self->client));
    break;
  default:
    if (!gst_moqt_connection_get_property(&self->conn, id, value))
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void finalize(GObject *object) {
  GstMoqtSrc *self = GST_MOQT_SRC(object);
  gst_moqt_connection_clear(&self->conn);
  g_free(self->renditions);
  g_ptr_array_unref(self->streams);
  g_mutex_clear(&self->time_lock);
  G_OBJECT_CLASS(gst_moqt_src_parent_class)->finalize(object);
}

static void gst_moqt_src_class_init(GstMoqtSrcClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  GST_MOQT_CONNECTION_PROPS(gobject_class, rw);
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency",
                        "Ordered delivery bound (ms): a group still incomplete this long after a newer one arrived is "
                        "skipped (DISCONT); also the latency reported to the pipeline",
                        1, 60000, DEFAULT_LATENCY_MS, rw));
  g_object_class_install_property(
      gobject_class, PROP_RENDITIONS,
      g_param_spec_string("renditions", "Renditions",
                          "Comma-separated rendition names to play (empty: every rendition)", NULL, rw));
  g_object_class_install_property(
      gobject_class, PROP_START,
      g_param_spec_enum("start", "Start", "Where each rendition starts", GST_TYPE_MOQT_START, GST_MOQT_START_LATEST,
                        rw));
  g_object_class_install_property(
      gobject_class, PROP_STATUS,
      g_param_spec_string("status", "Status",
                          "Connection state: idle, connecting, connected, migrating, reconnecting, gave-up, closed",
                          "idle", ro));
  g_object_class_install_property(
      gobject_class, PROP_VERSION,
      g_param_spec_uint("version", "Version", "Negotiated moq-lite version (0 while not connected)", 0, G_MAXUINT, 0,
                        ro));
  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(element_class, "Media over QUIC source", "Source/Network",
                                        "Plays a hang media broadcast (moq-lite) from a relay: a pad per rendition",
                                        "moqt");
  element_class->change_state = GST_DEBUG_FUNCPTR(change_state);
  gst_type_mark_as_plugin_api(GST_TYPE_MOQT_START, 0);
}

static void gst_moqt_src_init(GstMoqtSrc *self) {
  self->latency_ms = DEFAULT_LATENCY_MS;
  self->start = GST_MOQT_START_LATEST;
  self->streams = g_ptr_array_new();
  g_mutex_init(&self->time_lock);
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}
