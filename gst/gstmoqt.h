/* moqt GStreamer plugin: shared declarations of moqtsink and moqtsrc. */
#ifndef GST_MOQT_H
#define GST_MOQT_H

#include <gst/gst.h>
#include <moqt.h>

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN(gst_moqt_debug);

#define GST_TYPE_MOQT_SINK (gst_moqt_sink_get_type())
G_DECLARE_FINAL_TYPE(GstMoqtSink, gst_moqt_sink, GST, MOQT_SINK, GstElement)

#define GST_TYPE_MOQT_SRC (gst_moqt_src_get_type())
G_DECLARE_FINAL_TYPE(GstMoqtSrc, gst_moqt_src, GST, MOQT_SRC, GstElement)

/* The connection settings both elements share (the url, broadcast and tls-* properties). */
typedef struct {
  gchar *url;
  gchar *broadcast;
  gchar *tls_fingerprint;
  gchar *tls_root;
  gboolean tls_disable_verify;
  guint idle_timeout_ms;
} GstMoqtConnection;

void gst_moqt_connection_clear(GstMoqtConnection *conn);
/* Copies every setting of `src` into an empty `dst` (strings duplicated; clear `dst` after). Call
 * under the object lock of `src`'s element. */
void gst_moqt_connection_copy(GstMoqtConnection *dst, const GstMoqtConnection *src);

/* The connection properties' ids, the same in both elements (their own properties follow). */
enum {
  GST_MOQT_PROP_URL = 1,
  GST_MOQT_PROP_BROADCAST,
  GST_MOQT_PROP_TLS_FINGERPRINT,
  GST_MOQT_PROP_TLS_ROOT,
  GST_MOQT_PROP_TLS_DISABLE_VERIFY,
  GST_MOQT_PROP_IDLE_TIMEOUT,
  GST_MOQT_PROP_CONNECTION_END,
};

/* Sets or reads connection property `id`; FALSE when `id` is not one of them. Call under the
 * object lock. */
gboolean gst_moqt_connection_set_property(GstMoqtConnection *conn, guint id, const GValue *value);
gboolean gst_moqt_connection_get_property(const GstMoqtConnection *conn, guint id, GValue *value);
/* Starts a client without waiting for the network (moqt_client_connect_async); on failure posts
 * an element error on `element` and returns NULL. Call with the settings copied out of the lock. */
moqt_client *gst_moqt_connect(GstElement *element, const GstMoqtConnection *conn);
/* The client's state as a word ("connecting", "connected", ...; "idle" without a client). */
const gchar *gst_moqt_state_name(const moqt_client *client);
/* The negotiated moq-lite version (0 while not connected). */
guint gst_moqt_client_version(const moqt_client *client);
/* The send-rate estimate in bit/s (0 while unknown or not connected). */
guint64 gst_moqt_client_send_bitrate(const moqt_client *client);

/* Installs url, broadcast, tls-fingerprint, tls-root, tls-disable-verify and idle-timeout; the
 * includer's property enum names PROP_URL ... PROP_IDLE_TIMEOUT. */
#define GST_MOQT_CONNECTION_PROPS(klass, mutable_flags)                                                                     \
  do {                                                                                                             \
    g_object_class_install_property(                                                                               \
        klass, PROP_URL,                                                                                           \
        g_param_spec_string("url", "URL",                                                                          \
                            "Relay URL: moql://host:port/path or moqt:// (raw QUIC), https:// (WebTransport)", NULL, \
                            mutable_flags));                                                                       \
    g_object_class_install_property(                                                                               \
        klass, PROP_BROADCAST,                                                                                     \
        g_param_spec_string("broadcast", "Broadcast", "Broadcast path, relative to the URL's path", NULL,          \
                            mutable_flags));                                                                       \
    g_object_class_install_property(                                                                               \
        klass, PROP_TLS_FINGERPRINT,                                                                               \
        g_param_spec_string("tls-fingerprint", "TLS fingerprint",                                                  \
                            "Trust only a server certificate with this SHA-256 (hex)", NULL, mutable_flags));      \
    g_object_class_install_property(                                                                               \
        klass, PROP_TLS_ROOT,                                                                                      \
        g_param_spec_string("tls-root", "TLS root",                                                                \
                            "PEM file of CA certificates to trust besides the platform's", NULL, mutable_flags));  \
    g_object_class_install_property(                                                                               \
        klass, PROP_TLS_DISABLE_VERIFY,                                                                            \
        g_param_spec_boolean("tls-disable-verify", "Disable TLS verification",                                     \
                             "Skip certificate verification (development only)", FALSE, mutable_flags));           \
    g_object_class_install_property(                                                                               \
        klass, PROP_IDLE_TIMEOUT,                                                                                  \
        g_param_spec_uint("idle-timeout", "Idle timeout",                                                          \
                          "Milliseconds of silence before the relay is taken as gone and the element reconnects " \
                          "(0: the library's 30000)",                                                              \
                          0, G_MAXUINT, 0, mutable_flags));                                                        \
  } while (0)

G_END_DECLS

#endif
