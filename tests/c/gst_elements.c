/* GstCheck unit tests of moqtsink and moqtsrc (gst/), run by tests/programs/gst.rs with
 * GST_PLUGIN_PATH at the built plugin and MOQT_TEST_URL at a relay port where nothing listens:
 * properties and their defaults, state changes without a relay (the client connects in the
 * background, so every state is reached at once and left at once), refused settings, a sink pad's
 * caps, buffers and EOS (posted after the bounded flush), caps it refuses, and the source back to NULL while it
 * still waits for its broadcast. */
#include <string.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

static const gchar *url(void) {
  const gchar *u = g_getenv("MOQT_TEST_URL");
  return u ? u : "moql://127.0.0.1:9/test";
}

/* An avcC record (x264 baseline, 320x240) as h264parse gives it in codec_data. */
static const guint8 AVCC[] = {0x01, 0xf4, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x1c, 0x67, 0xf4, 0x00, 0x0d, 0x90,
                              0xd9, 0x68, 0x14, 0x1f, 0xb0, 0x16, 0xa0, 0xc0, 0xc0, 0xc8, 0x00, 0x00, 0x03,
                              0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0xe4, 0x78, 0xa1, 0x55, 0x01, 0x00, 0x04,
                              0x68, 0xce, 0x31, 0x92};

GST_START_TEST(test_sink_properties) {
  GstElement *sink = gst_check_setup_element("moqtsink");
  gchar *s;
  guint container = 99, flush = 0, version = 99;
  guint64 bitrate = 99;
  gboolean verify = TRUE;
  g_object_get(sink, "url", &s, "tls-disable-verify", &verify, "container", &container, "flush-timeout", &flush,
               "version", &version, "send-bitrate", &bitrate, NULL);
  fail_unless(s == NULL);
  fail_unless(!verify && container == 0 && flush == 10000 && version == 0 && bitrate == 0);
  g_object_get(sink, "status", &s, NULL);
  fail_unless_equals_string(s, "idle");
  g_free(s);
  g_object_set(sink, "url", url(), "broadcast", "b", "tls-fingerprint", "00ff", "tls-root", "/nonexistent.pem",
               "tls-disable-verify", TRUE, "flush-timeout", 500, NULL);
  g_object_get(sink, "broadcast", &s, NULL);
  fail_unless_equals_string(s, "b");
  g_free(s);
  g_object_get(sink, "tls-fingerprint", &s, NULL);
  fail_unless_equals_string(s, "00ff");
  g_free(s);
  guint idle = 99;
  g_object_get(sink, "idle-timeout", &idle, NULL);
  fail_unless(idle == 0, "idle-timeout defaults to 0 (the library's 30 s)");
  g_object_set(sink, "idle-timeout", 2500, NULL);
  g_object_get(sink, "idle-timeout", &idle, NULL);
  fail_unless(idle == 2500);
  gst_check_teardown_element(sink);
}
GST_END_TEST;

GST_START_TEST(test_src_properties) {
  GstElement *src = gst_check_setup_element("moqtsrc");
  gchar *s, *r;
  guint latency = 0, start = 99;
  g_object_get(src, "latency", &latency, "start", &start, "renditions", &r, "status", &s, NULL);
  fail_unless(latency == 1000 && start == 0 && r == NULL);
  fail_unless_equals_string(s, "idle");
  g_free(s);
  g_object_set(src, "renditions", "video,audio", "latency", 250, NULL);
  g_object_get(src, "renditions", &r, "latency", &latency, NULL);
  fail_unless_equals_string(r, "video,audio");
  fail_unless(latency == 250);
  g_free(r);
  gst_check_teardown_element(src);
}
GST_END_TEST;

/* Without a url (or a broadcast), READY->PAUSED fails with an error message, no crash. */
GST_START_TEST(test_missing_settings_fail) {
  const gchar *names[] = {"moqtsink", "moqtsrc"};
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    GstElement *e = gst_element_factory_make(names[i], NULL);
    GstBus *bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    fail_unless(gst_element_set_state(e, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
    GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    fail_unless(msg != NULL, "%s: no error message", names[i]);
    gst_message_unref(msg);
    g_object_set(e, "url", url(), NULL);
    fail_unless(gst_element_set_state(e, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
    fail_unless(gst_element_set_state(e, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS);
    gst_element_set_bus(e, NULL);
    gst_object_unref(bus);
    gst_object_unref(e);
  }
}
GST_END_TEST;

/* The sink's whole life with no relay up: PLAYING at once, a video pad with avc caps, a keyframe
 * then a delta frame accepted (queued for the relay), EOS posted after the bounded flush, NULL. */
GST_START_TEST(test_sink_buffers_and_eos_without_a_relay) {
  GstElement *sink = gst_element_factory_make("moqtsink", NULL);
  g_object_set(sink, "url", url(), "broadcast", "b", "tls-disable-verify", TRUE, "flush-timeout", 200, NULL);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(sink, bus);
  GstHarness *h = gst_harness_new_with_element(sink, "video_0", NULL);
  GstBuffer *codec_data = gst_buffer_new_memdup(AVCC, sizeof AVCC);
  gst_harness_play(h);
  GstCaps *caps = gst_caps_new_simple("video/x-h264", "stream-format", G_TYPE_STRING, "avc", "alignment",
                                      G_TYPE_STRING, "au", "codec_data", GST_TYPE_BUFFER, codec_data, "width",
                                      G_TYPE_INT, 320, "height", G_TYPE_INT, 240, NULL);
  gst_buffer_unref(codec_data);
  gst_harness_set_src_caps(h, caps);
  for (int i = 0; i < 3; i++) {
    static const guint8 sample[] = {0, 0, 0, 2, 0x65, 0x88};
    GstBuffer *buf = gst_buffer_new_memdup(sample, sizeof sample);
    GST_BUFFER_PTS(buf) = i * 33 * GST_MSECOND;
    if (i > 0)
      GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
    fail_unless_equals_int(gst_harness_push(h, buf), GST_FLOW_OK);
  }
  gchar *status;
  g_object_get(sink, "status", &status, NULL);
  fail_unless(g_strcmp0(status, "connecting") == 0 || g_strcmp0(status, "reconnecting") == 0, "status %s", status);
  g_free(status);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  GstMessage *msg = gst_bus_timed_pop_filtered(bus, 30 * GST_SECOND, GST_MESSAGE_EOS);
  fail_unless(msg != NULL, "no EOS message");
  gst_message_unref(msg);
  gst_harness_teardown(h);
  gst_element_set_bus(sink, NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
}
GST_END_TEST;

/* Caps the sink cannot take are refused (raw audio, video caps on an audio pad). */
GST_START_TEST(test_sink_refuses_bad_input) {
  GstElement *sink = gst_element_factory_make("moqtsink", NULL);
  g_object_set(sink, "url", url(), "broadcast", "b", "tls-disable-verify", TRUE, NULL);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(sink, bus);
  GstHarness *h = gst_harness_new_with_element(sink, "audio_0", NULL);
  gst_harness_play(h);
  const gchar *refused[] = {"audio/x-raw, rate=48000", "video/x-h264", "audio/mpeg, mpegversion=1"};
  for (gsize i = 0; i < G_N_ELEMENTS(refused); i++) {
    GstCaps *caps = gst_caps_from_string(refused[i]);
    fail_unless(!gst_pad_peer_query_accept_caps(h->srcpad, caps), "%s accepted", refused[i]);
    gst_caps_unref(caps);
  }
  GstCaps *opus = gst_caps_from_string("audio/x-opus, channel-mapping-family=0, rate=48000, channels=2");
  fail_unless(gst_pad_peer_query_accept_caps(h->srcpad, opus));
  gst_caps_unref(opus);
  gst_harness_teardown(h);
  gst_element_set_bus(sink, NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
}
GST_END_TEST;

/* The source is live: PLAYING at once while it connects and waits, and back to NULL at once,
 * several times over (no pad yet, the catalog wait interrupted). */
GST_START_TEST(test_src_states_without_a_relay) {
  GstElement *pipeline = gst_pipeline_new(NULL);
  GstElement *src = gst_element_factory_make("moqtsrc", NULL);
  g_object_set(src, "url", url(), "broadcast", "b", "tls-disable-verify", TRUE, NULL);
  gst_bin_add(GST_BIN(pipeline), src);
  for (int i = 0; i < 3; i++) {
    fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    GstState state;
    GstStateChangeReturn ret = gst_element_get_state(pipeline, &state, NULL, 10 * GST_SECOND);
    fail_unless(ret == GST_STATE_CHANGE_SUCCESS || ret == GST_STATE_CHANGE_NO_PREROLL, "get_state: %d", ret);
    fail_unless(state == GST_STATE_PLAYING);
    g_usleep(50 * 1000);
    fail_unless_equals_int(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref(pipeline);
}
GST_END_TEST;

static Suite *moqt_suite(void) {
  Suite *s = suite_create("moqt");
  TCase *tc = tcase_create("elements");
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_sink_properties);
  tcase_add_test(tc, test_src_properties);
  tcase_add_test(tc, test_missing_settings_fail);
  tcase_add_test(tc, test_sink_buffers_and_eos_without_a_relay);
  tcase_add_test(tc, test_sink_refuses_bad_input);
  tcase_add_test(tc, test_src_states_without_a_relay);
  return s;
}

GST_CHECK_MAIN(moqt);
