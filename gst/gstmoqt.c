/* The moqt plugin: Media over QUIC (moq-lite, hang media) elements over libmoqt's C API. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <string.h>

#include "gstmoqt.h"

GST_DEBUG_CATEGORY(gst_moqt_debug);
#define GST_CAT_DEFAULT gst_moqt_debug

#ifndef PACKAGE
#define PACKAGE "moqt"
#endif

void gst_moqt_connection_clear(GstMoqtConnection *conn) {
  g_clear_pointer(&conn->url, g_free);
  g_clear_pointer(&conn->broadcast, g_free);
  g_clear_pointer(&conn->tls_fingerprint, g_free);
  g_clear_pointer(&conn->tls_root, g_free);
  conn->tls_disable_verify = FALSE;
  conn->idle_timeout_ms = 0;
}

void gst_moqt_connection_copy(GstMoqtConnection *dst, const GstMoqtConnection *src) {
  dst->url = g_strdup(src->url);
  dst->broadcast = g_strdup(src->broadcast);
  dst->tls_fingerprint = g_strdup(src->tls_fingerprint);
  dst->tls_root = g_strdup(src->tls_root);
  dst->tls_disable_verify = src->tls_disable_verify;
  dst->idle_timeout_ms = src->idle_timeout_ms;
}

static void replace_string(gchar **field, const GValue *value) {
  g_free(*field);
  *field = g_value_dup_string(value);
}

gboolean gst_moqt_connection_set_property(GstMoqtConnection *conn, guint id, const GValue *value) {
  switch (id) {
  case GST_MOQT_PROP_URL:
    replace_string(&conn->url, value);
    return TRUE;
  case GST_MOQT_PROP_BROADCAST:
    replace_string(&conn->broadcast, value);
    return TRUE;
  case GST_MOQT_PROP_TLS_FINGERPRINT:
    replace_string(&conn->tls_fingerprint, value);
    return TRUE;
  case GST_MOQT_PROP_TLS_ROOT:
    replace_string(&conn->tls_root, value);
    return TRUE;
  case GST_MOQT_PROP_TLS_DISABLE_VERIFY:
    conn->tls_disable_verify = g_value_get_boolean(value);
    return TRUE;
  case GST_MOQT_PROP_IDLE_TIMEOUT:
    conn->idle_timeout_ms = g_value_get_uint(value);
    return TRUE;
  default:
    return FALSE;
  }
}

gboolean gst_moqt_connection_get_property(const GstMoqtConnection *conn, guint id, GValue *value) {
  switch (id) {
  case GST_MOQT_PROP_URL:
    g_value_set_string(value, conn->url);
    return TRUE;
  case GST_MOQT_PROP_BROADCAST:
    g_value_set_string(value, conn->broadcast);
    return TRUE;
  case GST_MOQT_PROP_TLS_FINGERPRINT:
    g_value_set_string(value, conn->tls_fingerprint);
    return TRUE;
  case GST_MOQT_PROP_TLS_ROOT:
    g_value_set_string(value, conn->tls_root);
    return TRUE;
  case GST_MOQT_PROP_TLS_DISABLE_VERIFY:
    g_value_set_boolean(value, conn->tls_disable_verify);
    return TRUE;
  case GST_MOQT_PROP_IDLE_TIMEOUT:
    g_value_set_uint(value, conn->idle_timeout_ms);
    return TRUE;
  default:
    return FALSE;
  }
}

moqt_client *gst_moqt_connect(GstElement *element, const GstMoqtConnection *conn) {
  if (conn->url == NULL || conn->url[0] == '\0') {
    GST_ELEMENT_ERROR(element, RESOURCE, NOT_FOUND, ("No URL set"), ("set the url property"));
    return NULL;
  }
  if (conn->broadcast == NULL || conn->broadcast[0] == '\0') {
    GST_ELEMENT_ERROR(element, RESOURCE, NOT_FOUND, ("No broadcast set"), ("set the broadcast property"));
    return NULL;
  }
  moqt_client_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.tls_fingerprint = (conn->tls_fingerprint && conn->tls_fingerprint[0]) ? conn->tls_fingerprint : NULL;
  options.tls_root_pem_path = (conn->tls_root && conn->tls_root[0]) ? conn->tls_root : NULL;
  options.tls_disable_verify = conn->tls_disable_verify ? true : false;
  /* An element keeps retrying (the relay may come up later or restart); never gives up. */
  options.give_up_after_ms = UINT64_MAX;
  options.reconnect_max_ms = 2000;
  options.idle_timeout_ms = conn->idle_timeout_ms;
  moqt_client *client = NULL;
  moqt_status rc = moqt_client_connect_async(conn->url, SIZE_MAX, &options, &client);
  if (rc != MOQT_STATUS_OK) {
    GST_ELEMENT_ERROR(element, RESOURCE, OPEN_READ_WRITE, ("Cannot connect to %s", conn->url),
                      ("moqt_client_connect_async: %s: %s", moqt_status_str(rc), moqt_last_error()));
    return NULL;
  }
  GST_INFO_OBJECT(element, "connecting to %s", conn->url);
  return client;
}

const gchar *gst_moqt_state_name(const moqt_client *client) {
  if (client == NULL)
    return "idle";
  moqt_client_state state;
  if (moqt_client_get_state(client, &state, NULL, 0) != MOQT_STATUS_OK)
    return "unknown";
  switch (state) {
  case MOQT_CLIENT_STATE_CONNECTING:
    return "connecting";
  case MOQT_CLIENT_STATE_CONNECTED:
    return "connected";
  case MOQT_CLIENT_STATE_MIGRATING:
    return "migrating";
  case MOQT_CLIENT_STATE_RECONNECTING:
    return "reconnecting";
  case MOQT_CLIENT_STATE_GAVE_UP:
    return "gave-up";
  case MOQT_CLIENT_STATE_CLOSED:
    return "closed";
  default:
    return "unknown";
  }
}

static gboolean client_stats(const moqt_client *client, moqt_client_stats *stats) {
  memset(stats, 0, sizeof *stats);
  stats->struct_size = sizeof *stats;
  return client != NULL && moqt_client_get_stats(client, stats) == MOQT_STATUS_OK;
}

guint gst_moqt_client_version(const moqt_client *client) {
  moqt_client_stats stats;
  return client_stats(client, &stats) ? stats.version : 0;
}

guint64 gst_moqt_client_send_bitrate(const moqt_client *client) {
  moqt_client_stats stats;
  return client_stats(client, &stats) ? stats.send_bitrate : 0;
}

/* libmoqt's warnings and errors go to this plugin's debug category. */
static void log_to_gst(void *user_data, uint32_t level, const char *target, const char *message) {
  (void)user_data;
  GstDebugLevel gst_level = level <= MOQT_LOG_LEVEL_ERROR ? GST_LEVEL_ERROR
                            : level == MOQT_LOG_LEVEL_WARN ? GST_LEVEL_WARNING
                            : level == MOQT_LOG_LEVEL_INFO ? GST_LEVEL_INFO
                                                           : GST_LEVEL_DEBUG;
  GST_CAT_LEVEL_LOG(gst_moqt_debug, gst_level, NULL, "%s: %s", target, message);
}

static gboolean plugin_init(GstPlugin *plugin) {
  GST_DEBUG_CATEGORY_INIT(gst_moqt_debug, "moqt", 0, "Media over QUIC (moqt)");
  GstDebugLevel threshold = gst_debug_category_get_threshold(gst_moqt_debug);
  uint32_t level = threshold >= GST_LEVEL_DEBUG     ? MOQT_LOG_LEVEL_DEBUG
                   : threshold >= GST_LEVEL_INFO    ? MOQT_LOG_LEVEL_INFO
                   : threshold >= GST_LEVEL_WARNING ? MOQT_LOG_LEVEL_WARN
                   : threshold >= GST_LEVEL_ERROR   ? MOQT_LOG_LEVEL_ERROR
                                                    : MOQT_LOG_LEVEL_OFF;
  if (level != MOQT_LOG_LEVEL_OFF)
    moqt_set_log_callback(log_to_gst, NULL, level);
  gboolean ok = gst_element_register(plugin, "moqtsink", GST_RANK_NONE, GST_TYPE_MOQT_SINK);
  ok &= gst_element_register(plugin, "moqtsrc", GST_RANK_NONE, GST_TYPE_MOQT_SRC);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, moqt,
                  "Media over QUIC (moq-lite, hang media) through libmoqt", plugin_init, GST_MOQT_VERSION,
                  "MIT/X11", "moqt", "moqt")
