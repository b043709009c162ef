//! The C API's error paths, called directly through the extern "C" functions: NULL and invalid
//! arguments give MOQT_STATUS_ERR_INVALID_ARG with a detail in moqt_last_error, frees and
//! accessors accept NULL, and user_data_free runs exactly once even when subscribing fails.

use std::ffi::{CStr, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use moqt::ffi::*;

fn last_error() -> String {
    // SAFETY: moqt_last_error returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(moqt_last_error()) }.to_string_lossy().into_owned()
}

/// Subscription options: a start group and a delivery order, everything else the default.
fn sub_options(start_group: i64, delivery: u32) -> moqt_subscribe_options {
    moqt_subscribe_options {
        struct_size: std::mem::size_of::<moqt_subscribe_options>() as u32,
        has_priority: false,
        priority: 0,
        max_age_ms: 0,
        start_group,
        has_end_group: false,
        end_group: 0,
        frame_start: 0,
        has_frame_end: false,
        frame_end: 0,
        delivery,
        max_latency_ms: 0,
    }
}

fn options(fingerprint: Option<&CStr>) -> moqt_client_options {
    moqt_client_options {
        struct_size: std::mem::size_of::<moqt_client_options>() as u32,
        tls_fingerprint: fingerprint.map_or(ptr::null(), |f| f.as_ptr()),
        tls_disable_verify: false,
        version: 0,
        tls_root_pem_path: ptr::null(),
        versions_mask: 0,
        reconnect_initial_ms: 0,
        reconnect_max_ms: 0,
        give_up_after_ms: 0,
        max_subscriptions: 0,
        max_announce_requests: 0,
        max_groups_in_flight: 0,
        max_message_size: 0,
        connect_attempt_timeout_ms: 0,
        idle_timeout_ms: 0,
    }
}

/// A relay embedded through the C API on a free loopback port: the handle, its certificate
/// fingerprint (hex) and a `moql://` URL with session path `/x`.
fn embedded_relay() -> (*mut moqt_relay, std::ffi::CString, std::ffi::CString) {
    let mut relay: *mut moqt_relay = ptr::null_mut();
    assert_eq!(moqt_relay_start(c"127.0.0.1:0".as_ptr(), usize::MAX, ptr::null(), &mut relay), moqt_status::Ok);
    let mut buf = [0 as std::ffi::c_char; 65];
    assert_eq!(moqt_relay_fingerprint(relay, buf.as_mut_ptr(), buf.len()), moqt_status::Ok);
    // SAFETY: moqt_relay_fingerprint wrote a NUL-terminated string.
    let fp = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned();
    let url = std::ffi::CString::new(format!("moql://localhost:{}/x", moqt_relay_port(relay))).unwrap();
    (relay, fp, url)
}

/// Two clients of the relay at `url`: a publisher of `broadcast` with a track "t" (priority 1,
/// max age 60 s), and a subscriber.
fn clients_with_a_track(
    url: &CStr,
    fp: &CStr,
    broadcast: &CStr,
) -> (*mut moqt_client, *mut moqt_client, *mut moqt_broadcast, *mut moqt_track) {
    let (mut publisher, mut subscriber) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(fp)), &mut publisher), moqt_status::Ok);
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(fp)), &mut subscriber), moqt_status::Ok);
    let (mut published, mut track) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(moqt_client_publish(publisher, broadcast.as_ptr(), usize::MAX, &mut published), moqt_status::Ok);
    let status = moqt_broadcast_create_track(published, c"t".as_ptr(), usize::MAX, 1, 60_000, &mut track);
    assert_eq!(status, moqt_status::Ok);
    (publisher, subscriber, published, track)
}

#[test]
fn connect_rejects_bad_arguments_with_a_reason() {
    let url = c"moql://127.0.0.1:4443/x";
    let fp = c"00000000000000000000000000000000000000000000000000000000000000ff";
    let opts = options(Some(fp));
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, ptr::null_mut()), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_client_connect(ptr::null(), usize::MAX, &opts, &mut client), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("NULL"), "{}", last_error());
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, ptr::null(), &mut client), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("trust"), "{}", last_error());
    // Without a fingerprint the platform's trust store applies; a CA file that does not exist
    // is refused before any connection.
    let mut missing_root = options(None);
    missing_root.tls_root_pem_path = c"/nonexistent/ca.pem".as_ptr();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &missing_root, &mut client), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("/nonexistent/ca.pem"), "{}", last_error());
    let bad = c"gopher://x/";
    assert_eq!(moqt_client_connect(bad.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("scheme"), "{}", last_error());
    let mut wrong_version = options(Some(fp));
    wrong_version.version = 9;
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &wrong_version, &mut client), moqt_status::ErrInvalidArg);
    // A string that is not UTF-8 (explicit length).
    let bytes = [0xffu8, 0xfe];
    assert_eq!(moqt_client_connect(bytes.as_ptr().cast(), 2, &opts, &mut client), moqt_status::ErrInvalidArg);
    assert!(client.is_null(), "out is written only on success");
}

#[test]
fn null_handles_and_accessors_are_safe() {
    let mut broadcast: *mut moqt_broadcast = ptr::null_mut();
    assert_eq!(moqt_client_publish(ptr::null(), c"x".as_ptr(), usize::MAX, &mut broadcast), moqt_status::ErrInvalidArg);
    let mut track: *mut moqt_track = ptr::null_mut();
    assert_eq!(
        moqt_broadcast_create_track(ptr::null(), c"v".as_ptr(), usize::MAX, 1, 1000, &mut track),
        moqt_status::ErrInvalidArg
    );
    assert_eq!(moqt_track_write_frame(ptr::null(), ptr::null(), 0, 0, 0), moqt_status::ErrInvalidArg);
    moqt_client_free(ptr::null_mut());
    moqt_broadcast_free(ptr::null_mut());
    moqt_track_free(ptr::null_mut());
    moqt_subscription_free(ptr::null_mut());
    moqt_frame_unref(ptr::null());
    assert!(moqt_frame_ref(ptr::null()).is_null());
    let mut len = 7usize;
    assert!(moqt_frame_data(ptr::null(), &mut len).is_null());
    assert_eq!(len, 0);
    assert_eq!(moqt_frame_timestamp_us(ptr::null()), 0);
    // SAFETY: static strings.
    let text = unsafe { CStr::from_ptr(moqt_status_str(moqt_status::ErrInvalidArg as i32)) };
    assert_eq!(text.to_str().unwrap(), "invalid argument");
}

static FREED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_free(_user_data: *mut c_void) {
    FREED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn user_data_is_freed_exactly_once_when_subscribing_fails() {
    let callbacks = moqt_subscribe_callbacks {
        struct_size: std::mem::size_of::<moqt_subscribe_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: Some(count_free),
        on_frame: None,
        on_gap: None,
        on_closed: None,
    };
    let mut subscription: *mut moqt_subscription = ptr::null_mut();
    let status = moqt_client_subscribe(
        ptr::null(),
        c"b".as_ptr(),
        usize::MAX,
        c"t".as_ptr(),
        usize::MAX,
        &callbacks,
        &mut subscription,
    );
    assert_eq!(status, moqt_status::ErrInvalidArg);
    assert!(subscription.is_null());
    let started = Instant::now();
    while FREED.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(FREED.load(Ordering::SeqCst), 1, "user_data_free runs exactly once");
}

/// A moqt relay on its own runtime thread, for C API calls that need a server.
fn relay_in_background() -> (u16, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let cert = moqt::transport::tls::Certificate::generate(&["localhost".to_string()]).unwrap();
            let server =
                moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, Default::default()).unwrap();
            tx.send((server.local_addr().unwrap().port(), cert.fingerprint_hex())).unwrap();
            moqt::relay::Relay::new(Default::default()).run(server).await;
        });
    });
    rx.recv().unwrap()
}

#[test]
fn pull_mode_waits_times_out_and_interrupts() {
    let (port, fingerprint) = relay_in_background();
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/pull")).unwrap();
    let fp = std::ffi::CString::new(fingerprint).unwrap();
    let opts = options(Some(&fp));
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok, "{}", last_error());
    let mut pull: *mut moqt_pull = ptr::null_mut();
    let status =
        moqt_client_subscribe_pull(client, c"nobody".as_ptr(), usize::MAX, c"video".as_ptr(), usize::MAX, &mut pull);
    assert_eq!(status, moqt_status::Ok);
    assert!(moqt_pull_fd(pull) >= 0);
    let mut frame: *const moqt_frame = ptr::null();
    assert_eq!(moqt_pull_next_frame(pull, 0, &mut frame), moqt_status::ErrAgain);
    let started = Instant::now();
    assert_eq!(moqt_pull_next_frame(pull, 50, &mut frame), moqt_status::ErrTimeout);
    assert!(started.elapsed() >= Duration::from_millis(50));
    // Another thread interrupts a wait that would otherwise last forever.
    let shared = pull as usize;
    let interrupter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        moqt_pull_interrupt(shared as *const moqt_pull);
    });
    assert_eq!(moqt_pull_next_frame(pull, -1, &mut frame), moqt_status::ErrInterrupted);
    interrupter.join().unwrap();
    assert!(frame.is_null(), "out is written only on success");
    assert_eq!(moqt_pull_next_frame(ptr::null(), 0, &mut frame), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_pull_fd(ptr::null()), -1);
    moqt_pull_free(pull);
    moqt_client_free(client);
}

static LOGS: std::sync::Mutex<Vec<(u32, String, String)>> = std::sync::Mutex::new(Vec::new());

extern "C" fn collect_log(
    _user_data: *mut c_void,
    level: u32,
    target: *const std::ffi::c_char,
    message: *const std::ffi::c_char,
) {
    // SAFETY: the library passes NUL-terminated strings valid for the call.
    let (target, message) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
    LOGS.lock().unwrap().push((level, target.to_string_lossy().into_owned(), message.to_string_lossy().into_owned()));
}

#[test]
fn logs_reach_the_callback_at_the_chosen_level_only() {
    let (port, _fingerprint) = relay_in_background();
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/logs")).unwrap();
    let mut opts = options(None);
    opts.tls_disable_verify = true;
    let connect = || {
        let mut client: *mut moqt_client = ptr::null_mut();
        assert_eq!(
            moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client),
            moqt_status::Ok,
            "{}",
            last_error()
        );
        moqt_client_free(client);
    };
    // Errors only: the "verification disabled" warning does not arrive.
    moqt_set_log_callback(Some(collect_log), ptr::null_mut(), moqt_log_level::Error as u32);
    connect();
    assert!(!LOGS.lock().unwrap().iter().any(|(_, _, m)| m.contains("verification is disabled")));
    // Warnings and up: it does, with its level and target.
    moqt_set_log_level(moqt_log_level::Warn as u32);
    connect();
    let logs = LOGS.lock().unwrap().clone();
    let warning = logs.iter().find(|(_, _, m)| m.contains("verification is disabled")).expect("the warning arrived");
    assert_eq!(warning.0, moqt_log_level::Warn as u32);
    assert!(warning.1.starts_with("moqt"), "{warning:?}");
    moqt_set_log_callback(None, ptr::null_mut(), 0);
}

fn relay_options() -> moqt_relay_options {
    moqt_relay_options {
        struct_size: std::mem::size_of::<moqt_relay_options>() as u32,
        tls_cert_path: ptr::null(),
        tls_key_path: ptr::null(),
        tls_generate_hosts: ptr::null(),
        auth_public: ptr::null(),
        auth_key_path: ptr::null(),
        on_session: None,
        on_session_user_data: ptr::null_mut(),
        on_session_user_data_free: None,
    }
}

#[test]
fn embedded_relay_rejects_bad_arguments_and_reports_its_address() {
    let listen = c"127.0.0.1:0";
    let mut relay: *mut moqt_relay = ptr::null_mut();
    assert_eq!(moqt_relay_start(listen.as_ptr(), usize::MAX, ptr::null(), ptr::null_mut()), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_relay_start(c"nowhere".as_ptr(), usize::MAX, ptr::null(), &mut relay), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("listen address"), "{}", last_error());
    let mut half = relay_options();
    half.tls_cert_path = c"/nonexistent/chain.pem".as_ptr();
    assert_eq!(moqt_relay_start(listen.as_ptr(), usize::MAX, &half, &mut relay), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("tls_key_path"), "{}", last_error());
    let mut bad_pattern = relay_options();
    bad_pattern.auth_public = c"a//b".as_ptr();
    assert_eq!(moqt_relay_start(listen.as_ptr(), usize::MAX, &bad_pattern, &mut relay), moqt_status::ErrInvalidArg);
    let mut missing_key = relay_options();
    missing_key.auth_key_path = c"/nonexistent/relay.jwk".as_ptr();
    assert_eq!(moqt_relay_start(listen.as_ptr(), usize::MAX, &missing_key, &mut relay), moqt_status::ErrInvalidArg);
    assert!(relay.is_null(), "no relay on failure");

    assert_eq!(moqt_relay_start(listen.as_ptr(), usize::MAX, &relay_options(), &mut relay), moqt_status::Ok);
    let port = moqt_relay_port(relay);
    assert_ne!(port, 0);
    // The port is taken while the relay runs.
    let mut second: *mut moqt_relay = ptr::null_mut();
    let taken = std::ffi::CString::new(format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(moqt_relay_start(taken.as_ptr(), usize::MAX, ptr::null(), &mut second), moqt_status::ErrConnect);
    let mut short = [0 as std::ffi::c_char; 64];
    assert_eq!(moqt_relay_fingerprint(relay, short.as_mut_ptr(), short.len()), moqt_status::ErrInvalidArg);
    let mut buf = [0 as std::ffi::c_char; 65];
    assert_eq!(moqt_relay_fingerprint(relay, buf.as_mut_ptr(), buf.len()), moqt_status::Ok);
    // SAFETY: moqt_relay_fingerprint wrote a NUL-terminated string into buf.
    let hex = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_string();
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{hex}");
    // A client pinned to that fingerprint connects.
    let fp = std::ffi::CString::new(hex).unwrap();
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/x")).unwrap();
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut client), moqt_status::Ok);
    moqt_client_free(client);
    moqt_relay_stop(relay, ptr::null(), 1000);
    moqt_relay_stop(ptr::null_mut(), ptr::null(), 0);
    assert_eq!(moqt_relay_port(ptr::null()), 0);
}

/// Options grow by appending fields: a caller built against an older, smaller struct has the
/// fields past its struct_size read as their defaults; the versions mask and the state query work.
#[test]
fn client_options_by_struct_size_versions_and_state() {
    let (relay, fp, url) = embedded_relay();
    let mut client: *mut moqt_client = ptr::null_mut();

    let mut opts = options(Some(&fp));
    opts.versions_mask = 0xffff_ffff;
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("versions_mask"), "{}", last_error());
    // The same bytes from a caller whose struct ends before tls_root_pem_path: the rest is unread.
    opts.struct_size = std::mem::offset_of!(moqt_client_options, tls_root_pem_path) as u32;
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    moqt_client_free(client);

    let mut opts = options(Some(&fp));
    opts.versions_mask = 1 << 5;
    opts.reconnect_initial_ms = 50;
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    let mut state = moqt_client_state::Closed;
    let mut detail = [0 as std::ffi::c_char; 32];
    assert_eq!(moqt_client_get_state(client, &mut state, detail.as_mut_ptr(), detail.len()), moqt_status::Ok);
    assert_eq!(state, moqt_client_state::Connected);
    // SAFETY: moqt_client_get_state wrote a NUL-terminated string.
    assert_eq!(unsafe { CStr::from_ptr(detail.as_ptr()) }.to_str().unwrap(), "moq-lite-05");
    let mut tiny = [0 as std::ffi::c_char; 4];
    assert_eq!(moqt_client_get_state(client, &mut state, tiny.as_mut_ptr(), tiny.len()), moqt_status::Ok);
    // SAFETY: as above, truncated to fit.
    assert_eq!(unsafe { CStr::from_ptr(tiny.as_ptr()) }.to_str().unwrap(), "moq");
    assert_eq!(moqt_client_get_state(client, &mut state, ptr::null_mut(), 0), moqt_status::Ok);
    assert_eq!(moqt_client_get_state(client, ptr::null_mut(), ptr::null_mut(), 0), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_client_get_state(ptr::null(), &mut state, ptr::null_mut(), 0), moqt_status::ErrInvalidArg);

    // The relay goes away for good: the client reports it is reconnecting, with a reason.
    moqt_relay_stop(relay, ptr::null(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while state == moqt_client_state::Connected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(moqt_client_get_state(client, &mut state, detail.as_mut_ptr(), detail.len()), moqt_status::Ok);
    }
    assert!(matches!(state, moqt_client_state::Reconnecting | moqt_client_state::Migrating), "{state:?}");
    moqt_client_free(client);
}

/// Subscribe options from C: a start and an end group bound what arrives (pull mode here, the
/// callback variant shares the code), and a bad start is refused.
#[test]
fn subscribe_options_bound_the_groups() {
    let (relay, fp, url) = embedded_relay();
    let (publisher, subscriber, broadcast, track) = clients_with_a_track(&url, &fp, c"b");
    // Groups 0..=5 of two frames each, all in the publisher's cache before anyone subscribes.
    for group in 0..6u8 {
        for frame in 0..2u8 {
            let data = [group, frame];
            let flags = if frame == 0 { MOQT_FRAME_NEW_GROUP } else { 0 };
            assert_eq!(moqt_track_write_frame(track, data.as_ptr(), 2, 0, flags), moqt_status::Ok);
        }
    }
    let mut bad = moqt_subscribe_options {
        struct_size: std::mem::size_of::<moqt_subscribe_options>() as u32,
        has_priority: true,
        priority: 200,
        max_age_ms: 0,
        start_group: -3,
        has_end_group: true,
        end_group: 4,
        frame_start: 0,
        has_frame_end: false,
        frame_end: 0,
        delivery: MOQT_DELIVERY_ARRIVAL,
        max_latency_ms: 0,
    };
    let mut pull: *mut moqt_pull = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    assert_eq!(
        moqt_client_subscribe_pull_with(subscriber, b, usize::MAX, t, usize::MAX, &bad, &mut pull),
        moqt_status::ErrInvalidArg
    );
    assert!(last_error().contains("start_group"), "{}", last_error());
    bad.start_group = 3;
    let wanted = bad;
    assert_eq!(
        moqt_client_subscribe_pull_with(subscriber, b, usize::MAX, t, usize::MAX, &wanted, &mut pull),
        moqt_status::Ok
    );
    let mut groups = Vec::new();
    let mut frame: *const moqt_frame = ptr::null();
    loop {
        match moqt_pull_next_frame(pull, 5000, &mut frame) {
            moqt_status::Ok => {
                groups.push(moqt_frame_group(frame));
                moqt_frame_unref(frame);
            }
            // The end group was reached: the subscription finished, a clean end.
            moqt_status::End => break,
            other => panic!("{other:?} after {groups:?}"),
        }
    }
    groups.sort();
    assert_eq!(groups, [3, 3, 4, 4], "groups 3 and 4 only, both frames each");
    moqt_pull_free(pull);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// A Rust publisher of broadcast "b" with one track "t", a session to the relay at `port` on a
/// runtime of its own (the C API's calls block, so they run outside it).
struct RustPublisher {
    track: moqt::model::TrackProducer,
    _session: moqt::session::Session,
    /// Kept: the broadcast ends when its producer and its announcement go.
    _published: moqt::model::Published,
    _broadcast: moqt::model::BroadcastProducer,
    _origin: moqt::model::OriginProducer,
    rt: tokio::runtime::Runtime,
}

fn rust_publisher(port: u16, fingerprint: &CStr, info: moqt::model::TrackInfo) -> RustPublisher {
    use moqt::endpoint::{Client, EndpointConfig};
    use moqt::model::{BroadcastProducer, OriginProducer, Route};
    use moqt::session::Origins;
    use moqt::transport::tls::ClientTrust;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let origin = OriginProducer::default();
    let broadcast = BroadcastProducer::default();
    let track = broadcast.create_track("t", info).unwrap();
    let published = origin.publish(moqt::coding::Path::new("b").unwrap(), broadcast.consume(), Route::local()).unwrap();
    let trust = ClientTrust::fingerprint_from_hex(fingerprint.to_str().unwrap()).unwrap();
    let session = rt.block_on(async {
        let client = Client::new("127.0.0.1:0".parse().unwrap(), &trust, EndpointConfig::default()).unwrap();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let origins = Origins { publish: Some(origin.consume()), ..Default::default() };
        client.connect(addr, "localhost", Some("/x".into()), origins).await.unwrap()
    });
    RustPublisher { track, _session: session, _published: published, _broadcast: broadcast, _origin: origin, rt }
}

/// A live priority update from C travels upstream: the publisher's track sees the new aggregate.
#[test]
fn a_live_update_from_c_reaches_the_publisher() {
    let (relay, fp, _) = embedded_relay();
    let port = moqt_relay_port(relay);
    let info = moqt::model::TrackInfo { priority: 2, max_age: Duration::from_secs(10), timescale: 1000 };
    let publisher = rust_publisher(port, &fp, info);
    let (rt, track) = (&publisher.rt, &publisher.track);

    let url = std::ffi::CString::new(format!("moql://localhost:{port}/x")).unwrap();
    let mut subscriber = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut subscriber), moqt_status::Ok);
    let mut pull: *mut moqt_pull = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    assert_eq!(moqt_client_subscribe_pull(subscriber, b, usize::MAX, t, usize::MAX, &mut pull), moqt_status::Ok);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), track.used()).await }).expect("subscribed");

    let update = moqt_subscribe_options {
        struct_size: std::mem::size_of::<moqt_subscribe_options>() as u32,
        has_priority: true,
        priority: 200,
        max_age_ms: 0,
        start_group: 0,
        has_end_group: false,
        end_group: 0,
        frame_start: 0,
        has_frame_end: false,
        frame_end: 0,
        delivery: MOQT_DELIVERY_ORDERED,
        max_latency_ms: 0,
    };
    assert_eq!(moqt_pull_update(pull, &update), moqt_status::Ok);
    assert_eq!(moqt_pull_update(pull, ptr::null()), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_pull_update(ptr::null(), &update), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_subscription_update(ptr::null(), &update), moqt_status::ErrInvalidArg);
    let interest = track.interest();
    let deadline = Instant::now() + Duration::from_secs(5);
    while interest.current().and_then(|o| o.priority) != Some(200) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(interest.current().and_then(|o| o.priority), Some(200), "the update reached the publisher");

    moqt_pull_free(pull);
    moqt_client_free(subscriber);
    drop(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

static STATES: std::sync::Mutex<Vec<moqt_client_state>> = std::sync::Mutex::new(Vec::new());
static STATE_FREES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn record_state(_user_data: *mut c_void, state: moqt_client_state, detail: *const std::ffi::c_char) {
    assert!(!detail.is_null());
    STATES.lock().unwrap().push(state);
}

extern "C" fn count_state_free(_user_data: *mut c_void) {
    STATE_FREES.fetch_add(1, Ordering::SeqCst);
}

/// State callbacks: connected first, then the move off the relay when it stops, then closed when
/// the client is freed; user_data_free once.
#[test]
fn client_state_changes_arrive_as_callbacks() {
    let (relay, fp, url) = embedded_relay();
    let mut client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut client), moqt_status::Ok);
    let callbacks = moqt_state_callbacks {
        struct_size: std::mem::size_of::<moqt_state_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: Some(count_state_free),
        on_state: Some(record_state),
        on_closed: None,
    };
    let mut watch: *mut moqt_state_watch = ptr::null_mut();
    assert_eq!(moqt_client_watch_state(ptr::null(), &callbacks, &mut watch), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_client_watch_state(client, &callbacks, &mut watch), moqt_status::Ok);
    let wait = |pred: &dyn Fn(&[moqt_client_state]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pred(&STATES.lock().unwrap()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        STATES.lock().unwrap().clone()
    };
    let seen = wait(&|s| !s.is_empty());
    assert_eq!(seen.first(), Some(&moqt_client_state::Connected), "{seen:?}");
    moqt_relay_stop(relay, ptr::null(), 0);
    let seen = wait(&|s| s.iter().any(|x| matches!(x, moqt_client_state::Migrating | moqt_client_state::Reconnecting)));
    assert!(
        seen.iter().any(|x| matches!(x, moqt_client_state::Migrating | moqt_client_state::Reconnecting)),
        "{seen:?}"
    );
    moqt_client_free(client);
    let seen = wait(&|s| s.last() == Some(&moqt_client_state::Closed));
    assert_eq!(seen.last(), Some(&moqt_client_state::Closed), "{seen:?}");
    moqt_state_watch_free(watch);
    let deadline = Instant::now() + Duration::from_secs(5);
    // One for the failed call with a NULL client, one for the watch.
    while STATE_FREES.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(STATE_FREES.load(Ordering::SeqCst), 2);
}

static SLOW_STARTED: AtomicUsize = AtomicUsize::new(0);
static SLOW_FINISHED: AtomicUsize = AtomicUsize::new(0);
static FREED_AFTER_CALLBACK: AtomicUsize = AtomicUsize::new(0);
static RELEASE_FREES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn slow_frame(_user_data: *mut c_void, _frame: *const moqt_frame) {
    if SLOW_STARTED.fetch_add(1, Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(300));
        SLOW_FINISHED.store(1, Ordering::SeqCst);
    }
}

extern "C" fn release_free(_user_data: *mut c_void) {
    FREED_AFTER_CALLBACK.store(SLOW_FINISHED.load(Ordering::SeqCst), Ordering::SeqCst);
    RELEASE_FREES.fetch_add(1, Ordering::SeqCst);
}

/// moqt_subscription_release returns while a callback is still running (it never blocks), and
/// user_data_free runs once, after that callback finished.
#[test]
fn release_does_not_wait_for_a_running_callback() {
    let (relay, fp, url) = embedded_relay();
    let (publisher, subscriber, broadcast, track) = clients_with_a_track(&url, &fp, c"b");
    let callbacks = moqt_subscribe_callbacks {
        struct_size: std::mem::size_of::<moqt_subscribe_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: Some(release_free),
        on_frame: Some(slow_frame),
        on_gap: None,
        on_closed: None,
    };
    let mut subscription = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    assert_eq!(
        moqt_client_subscribe(subscriber, b, usize::MAX, t, usize::MAX, &callbacks, &mut subscription),
        moqt_status::Ok
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while SLOW_STARTED.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        let data = [1u8; 8];
        assert_eq!(moqt_track_write_frame(track, data.as_ptr(), 8, 0, MOQT_FRAME_NEW_GROUP), moqt_status::Ok);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(SLOW_STARTED.load(Ordering::SeqCst), 1, "a callback is running");
    moqt_subscription_release(subscription);
    assert_eq!(SLOW_FINISHED.load(Ordering::SeqCst), 0, "release returned while the callback still ran");
    let deadline = Instant::now() + Duration::from_secs(5);
    while RELEASE_FREES.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(RELEASE_FREES.load(Ordering::SeqCst), 1);
    assert_eq!(FREED_AFTER_CALLBACK.load(Ordering::SeqCst), 1, "user_data_free ran after the callback finished");
    moqt_subscription_release(ptr::null_mut());
    moqt_announced_release(ptr::null_mut());
    moqt_state_watch_release(ptr::null_mut());
    // The other watches release the same way: user_data_free once each.
    let state_callbacks = moqt_state_callbacks {
        struct_size: std::mem::size_of::<moqt_state_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: Some(release_free),
        on_state: None,
        on_closed: None,
    };
    let mut watch = ptr::null_mut();
    assert_eq!(moqt_client_watch_state(subscriber, &state_callbacks, &mut watch), moqt_status::Ok);
    moqt_state_watch_release(watch);
    let announce_callbacks = moqt_announce_callbacks {
        struct_size: std::mem::size_of::<moqt_announce_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: Some(release_free),
        on_announce: None,
        on_closed: None,
    };
    let mut announced = ptr::null_mut();
    assert_eq!(
        moqt_client_announced(subscriber, c"".as_ptr(), usize::MAX, &announce_callbacks, &mut announced),
        moqt_status::Ok
    );
    moqt_announced_release(announced);
    let deadline = Instant::now() + Duration::from_secs(5);
    while RELEASE_FREES.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(RELEASE_FREES.load(Ordering::SeqCst), 3);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// Session bounds from the C options hold: a publisher allowing one subscription at a time serves
/// the first track and refuses the second while the first is held.
#[test]
fn session_limits_in_the_client_options_hold() {
    let (relay, fp, url) = embedded_relay();
    let mut limited = options(Some(&fp));
    limited.max_subscriptions = 1;
    let (mut publisher, mut subscriber) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &limited, &mut publisher), moqt_status::Ok);
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut subscriber), moqt_status::Ok);
    let mut broadcast = ptr::null_mut();
    assert_eq!(moqt_client_publish(publisher, c"b".as_ptr(), usize::MAX, &mut broadcast), moqt_status::Ok);
    let (mut first, mut second) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(
        moqt_broadcast_create_track(broadcast, c"one".as_ptr(), usize::MAX, 1, 60_000, &mut first),
        moqt_status::Ok
    );
    assert_eq!(
        moqt_broadcast_create_track(broadcast, c"two".as_ptr(), usize::MAX, 1, 60_000, &mut second),
        moqt_status::Ok
    );
    let b = c"b".as_ptr();
    let (mut pull_one, mut pull_two): (*mut moqt_pull, *mut moqt_pull) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(
        moqt_client_subscribe_pull(subscriber, b, usize::MAX, c"one".as_ptr(), usize::MAX, &mut pull_one),
        moqt_status::Ok
    );
    // The first subscription delivers.
    let mut frame: *const moqt_frame = ptr::null();
    let mut got = moqt_status::ErrTimeout;
    for _ in 0..50 {
        let data = [1u8; 4];
        assert_eq!(moqt_track_write_frame(first, data.as_ptr(), 4, 0, MOQT_FRAME_NEW_GROUP), moqt_status::Ok);
        got = moqt_pull_next_frame(pull_one, 100, &mut frame);
        if got == moqt_status::Ok {
            moqt_frame_unref(frame);
            break;
        }
    }
    assert_eq!(got, moqt_status::Ok, "the first track is served");
    // The second is refused by the publisher's bound: the subscription ends without a frame.
    assert_eq!(
        moqt_client_subscribe_pull(subscriber, b, usize::MAX, c"two".as_ptr(), usize::MAX, &mut pull_two),
        moqt_status::Ok
    );
    let mut second_status = moqt_status::ErrTimeout;
    for _ in 0..50 {
        let data = [2u8; 4];
        assert_eq!(moqt_track_write_frame(second, data.as_ptr(), 4, 0, MOQT_FRAME_NEW_GROUP), moqt_status::Ok);
        second_status = moqt_pull_next_frame(pull_two, 100, &mut frame);
        if second_status != moqt_status::ErrTimeout {
            break;
        }
    }
    // Refused upstream with CANCELLED: an abort with its code, not the end of a finished track.
    assert_eq!(second_status, moqt_status::ErrAborted, "the second track is refused while the first is held");
    let mut code = u64::MAX;
    assert!(moqt_last_error_code(&mut code), "{}", last_error());
    assert_eq!(code, 0x1, "CANCELLED");
    moqt_pull_free(pull_two);
    moqt_pull_free(pull_one);
    moqt_track_free(second);
    moqt_track_free(first);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What one subscription's callbacks saw: frames (group, index), gaps, on_closed statuses and
/// user_data_free calls. Its callbacks take the recorder as their user data, so each test has its
/// own instead of a set of statics.
#[derive(Default)]
struct Recorder {
    frames: std::sync::Mutex<Vec<(u64, u64)>>,
    gaps: std::sync::Mutex<Vec<(u64, u64, u64)>>,
    /// Frames and gaps together, in the order the callbacks ran.
    events: std::sync::Mutex<Vec<Delivered>>,
    closed: std::sync::Mutex<Vec<moqt_status>>,
    frees: AtomicUsize,
}

impl Recorder {
    /// Callbacks recording into `self`, for one subscribe or fetch call: their user data holds a
    /// reference to the recorder that `user_data_free` releases, as a C host would.
    fn callbacks(self: &std::sync::Arc<Self>) -> moqt_subscribe_callbacks {
        moqt_subscribe_callbacks {
            struct_size: std::mem::size_of::<moqt_subscribe_callbacks>() as u32,
            user_data: std::sync::Arc::into_raw(self.clone()) as *mut c_void,
            user_data_free: Some(Self::on_free),
            on_frame: Some(Self::on_frame),
            on_gap: Some(Self::on_gap),
            on_closed: Some(Self::on_closed),
        }
    }

    fn of<'a>(user_data: *mut c_void) -> &'a Recorder {
        // SAFETY: user_data holds a reference to the recorder until user_data_free releases it,
        // and no callback runs after that.
        unsafe { &*(user_data as *const Recorder) }
    }

    extern "C" fn on_frame(user_data: *mut c_void, frame: *const moqt_frame) {
        let recorder = Self::of(user_data);
        let (group, index) = (moqt_frame_group(frame), moqt_frame_index(frame));
        recorder.frames.lock().unwrap().push((group, index));
        recorder.events.lock().unwrap().push(Delivered::Frame(group, index));
    }

    extern "C" fn on_gap(user_data: *mut c_void, first: u64, last: u64, code: u64) {
        let recorder = Self::of(user_data);
        recorder.gaps.lock().unwrap().push((first, last, code));
        recorder.events.lock().unwrap().push(Delivered::Gap(first, last, code));
    }

    extern "C" fn on_closed(user_data: *mut c_void, status: moqt_status) {
        Self::of(user_data).closed.lock().unwrap().push(status);
    }

    extern "C" fn on_free(user_data: *mut c_void) {
        Self::of(user_data).frees.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the reference `callbacks` handed over, released exactly once, here.
        drop(unsafe { std::sync::Arc::from_raw(user_data as *const Recorder) });
    }

    fn closed(&self) -> Vec<moqt_status> {
        self.closed.lock().unwrap().clone()
    }
}

/// One step of what a subscription delivered.
#[derive(Debug, Clone, PartialEq)]
enum Delivered {
    /// A frame: its group and index.
    Frame(u64, u64),
    /// A gap report: first and last group, code.
    Gap(u64, u64, u64),
}

fn stats_of_size(size: usize) -> moqt_client_stats {
    moqt_client_stats {
        struct_size: size as u32,
        version: 0,
        rtt_us: 0,
        send_bitrate: 0,
        bytes_sent: 0,
        bytes_received: 0,
        has_probe: false,
        peer_bitrate: 0,
        peer_rtt_ms: 0,
        peer_target_bitrate: 0,
    }
}

/// FETCH and statistics on paths the C programs do not take: NULL arguments (user data still
/// released once), FETCH on moq-lite-04 (which has none), and a caller's older, smaller stats
/// struct, of which nothing past its size is written.
#[test]
fn fetch_and_stats_error_paths() {
    let recorder = std::sync::Arc::new(Recorder::default());
    let mut fetch: *mut moqt_subscription = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    let status =
        moqt_client_fetch(ptr::null(), b, usize::MAX, t, usize::MAX, 0, ptr::null(), &recorder.callbacks(), &mut fetch);
    assert_eq!(status, moqt_status::ErrInvalidArg);
    assert!(fetch.is_null());
    wait_until("user_data_free after a refused fetch", || recorder.frees.load(Ordering::SeqCst) == 1);
    let mut stats = stats_of_size(std::mem::size_of::<moqt_client_stats>());
    assert_eq!(moqt_client_get_stats(ptr::null(), &mut stats), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_client_probe(ptr::null(), 1), moqt_status::ErrInvalidArg);

    let (relay, fp, url) = embedded_relay();
    let mut opts = options(Some(&fp));
    opts.version = 4;
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);

    // FETCH needs moq-lite-05: the fetch ends with UNSUPPORTED, user data released once more.
    let status =
        moqt_client_fetch(client, b, usize::MAX, t, usize::MAX, 0, ptr::null(), &recorder.callbacks(), &mut fetch);
    assert_eq!(status, moqt_status::Ok);
    wait_until("the fetch to end", || recorder.frees.load(Ordering::SeqCst) == 2);
    assert_eq!(recorder.closed(), vec![moqt_status::ErrUnsupported]);
    assert_eq!(moqt_subscription_update(fetch, ptr::null()), moqt_status::ErrInvalidArg);
    moqt_subscription_free(fetch);

    // A struct from an older header: only its first `struct_size` bytes are written.
    let mut old = stats_of_size(std::mem::offset_of!(moqt_client_stats, has_probe));
    old.peer_bitrate = 0xdead;
    assert_eq!(moqt_client_get_stats(client, &mut old), moqt_status::Ok);
    assert_eq!(old.version, 4);
    assert!(old.bytes_sent > 0 && old.rtt_us > 0, "path statistics are filled in");
    assert_eq!(old.peer_bitrate, 0xdead, "nothing written past struct_size");
    let mut tiny = stats_of_size(4);
    assert_eq!(moqt_client_get_stats(client, &mut tiny), moqt_status::ErrInvalidArg);

    moqt_client_free(client);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// Pull mode beyond frames: the first frame of each group is the keyframe, `moqt_pull_flush`
/// drops what is queued and quiets the fd, and a skipped run of groups, once final, comes out of
/// `moqt_pull_next_gap`.
#[test]
fn pull_mode_reports_gaps_marks_keyframes_and_flushes() {
    let (relay, fp, _) = embedded_relay();
    let port = moqt_relay_port(relay);
    let RustPublisher { mut track, _session, _published, _broadcast, _origin, rt } =
        rust_publisher(port, &fp, moqt::model::TrackInfo::default());
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/x")).unwrap();
    let mut subscriber = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut subscriber), moqt_status::Ok);
    let mut pull: *mut moqt_pull = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    // Arrival order, from the oldest group: nothing is skipped for lateness or for being older
    // than the live edge, so the gap below is the one the publisher's skip makes.
    let wanted = sub_options(MOQT_START_OLDEST, MOQT_DELIVERY_ARRIVAL);
    assert_eq!(
        moqt_client_subscribe_pull_with(subscriber, b, usize::MAX, t, usize::MAX, &wanted, &mut pull),
        moqt_status::Ok
    );
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), track.used()).await }).expect("subscribed");

    // Groups 0 and 5, two frames each: 1 to 4 never exist.
    let mut write_group = |sequence: u64, frames: u8| {
        let mut group = track.create_group(sequence).unwrap();
        for index in 0..frames {
            group.write(0, vec![sequence as u8, index]).unwrap();
        }
        group.finish().unwrap();
    };
    write_group(0, 2);
    write_group(5, 2);
    let mut frames = Vec::new();
    let mut frame: *const moqt_frame = ptr::null();
    while frames.len() < 4 {
        assert_eq!(moqt_pull_next_frame(pull, 5000, &mut frame), moqt_status::Ok, "{frames:?}");
        frames.push((moqt_frame_group(frame), moqt_frame_index(frame), moqt_frame_is_keyframe(frame)));
        moqt_frame_unref(frame);
    }
    frames.sort();
    assert_eq!(frames, [(0, 0, true), (0, 1, false), (5, 0, true), (5, 1, false)]);
    assert!(!moqt_frame_is_keyframe(ptr::null()));
    // Three more groups nobody takes: the fd turns readable; a flush drops them and quiets it.
    let readable = |timeout_ms: i32| {
        let mut fds = libc::pollfd { fd: moqt_pull_fd(pull), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on the stack.
        unsafe { libc::poll(&mut fds, 1, timeout_ms) == 1 }
    };
    assert!(!readable(0), "nothing queued");
    for sequence in 6..9 {
        write_group(sequence, 1);
    }
    assert!(readable(5000), "frames queued");
    let mut flushed = 0;
    wait_until("three frames flushed", || {
        flushed += moqt_pull_flush(pull);
        flushed == 3
    });
    assert!(!readable(0), "a flushed queue is not readable");
    assert_eq!(moqt_pull_next_frame(pull, 0, &mut frame), moqt_status::ErrAgain);
    assert_eq!(moqt_pull_flush(ptr::null()), 0);

    // A sequence merely absent may still arrive on its own stream; once the track ends, the
    // missing run is final and reported.
    let (mut first, mut last, mut code) = (0u64, 0u64, 0u64);
    assert_eq!(moqt_pull_next_gap(pull, &mut first, &mut last, &mut code), moqt_status::ErrAgain);
    track.finish();
    wait_until("the gap report", || moqt_pull_next_gap(pull, &mut first, &mut last, &mut code) == moqt_status::Ok);
    assert_eq!((first, last), (1, 4), "the skipped groups, code {code:#x}");
    assert_eq!(moqt_pull_next_gap(pull, &mut first, &mut last, &mut code), moqt_status::ErrAgain);
    assert_eq!(moqt_pull_next_gap(pull, ptr::null_mut(), &mut last, &mut code), moqt_status::ErrInvalidArg);

    moqt_pull_free(pull);
    moqt_client_free(subscriber);
    drop(_session);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// A server that asks the C client to probe: the target reaches `moqt_client_get_stats`.
#[test]
fn a_peer_probe_target_reaches_the_client_stats() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cert = moqt::transport::tls::Certificate::generate(&["localhost".to_string()]).unwrap();
    let server = rt.block_on(async {
        moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, Default::default()).unwrap()
    });
    let port = server.local_addr().unwrap().port();
    let serving = rt.spawn(async move {
        let pending = server.accept().await.unwrap().setup().await.unwrap();
        let session = moqt::session::Session::accept(pending, Default::default(), Default::default()).await.unwrap();
        session.set_probe_target(5_000_000).await.unwrap();
        session
    });
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/x")).unwrap();
    let fp = std::ffi::CString::new(cert.fingerprint_hex()).unwrap();
    let mut client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut client), moqt_status::Ok);
    let _session = rt.block_on(serving).unwrap();
    let mut stats = stats_of_size(std::mem::size_of::<moqt_client_stats>());
    wait_until("the probe target", || {
        assert_eq!(moqt_client_get_stats(client, &mut stats), moqt_status::Ok);
        stats.peer_target_bitrate != 0
    });
    assert_eq!(stats.peer_target_bitrate, 5_000_000);
    moqt_client_free(client);
}

/// Push mode's `on_gap`: a publisher that skips groups 1 to 4 and then finishes the track gives
/// exactly one gap callback, for 1..=4, before on_closed(MOQT_STATUS_END); the frames of groups 0
/// and 5 all arrive.
#[test]
fn push_mode_reports_gaps_through_on_gap() {
    let (relay, fp, _) = embedded_relay();
    let port = moqt_relay_port(relay);
    let RustPublisher { mut track, _session, _published, _broadcast, _origin, rt } =
        rust_publisher(port, &fp, moqt::model::TrackInfo::default());
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/x")).unwrap();
    let mut subscriber = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut subscriber), moqt_status::Ok);
    let recorder = std::sync::Arc::new(Recorder::default());
    let callbacks = recorder.callbacks();
    let mut subscription = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    let wanted = sub_options(MOQT_START_OLDEST, MOQT_DELIVERY_ARRIVAL);
    assert_eq!(
        moqt_client_subscribe_with(subscriber, b, usize::MAX, t, usize::MAX, &wanted, &callbacks, &mut subscription),
        moqt_status::Ok
    );
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), track.used()).await }).expect("subscribed");

    // Groups 0 and 5, two frames each: 1 to 4 never exist. Then the track ends.
    for sequence in [0u64, 5] {
        let mut group = track.create_group(sequence).unwrap();
        for index in 0..2u8 {
            group.write(0, vec![sequence as u8, index]).unwrap();
        }
        group.finish().unwrap();
    }
    wait_until("four frames", || recorder.frames.lock().unwrap().len() == 4);
    assert!(recorder.closed.lock().unwrap().is_empty(), "the track is still live");
    track.finish();
    wait_until("the end of the track", || !recorder.closed.lock().unwrap().is_empty());
    let gaps = recorder.gaps.lock().unwrap().clone();
    assert_eq!(gaps.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(), [(1, 4)], "one gap for 1..=4: {gaps:?}");
    assert_eq!(*recorder.closed.lock().unwrap(), [moqt_status::End]);
    let mut frames = recorder.frames.lock().unwrap().clone();
    frames.sort();
    assert_eq!(frames, [(0, 0), (0, 1), (5, 0), (5, 1)]);

    moqt_subscription_free(subscription);
    moqt_client_free(subscriber);
    drop(_session);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// Ordered delivery's latency bound through the C API, push (`on_gap`) and pull
/// (`moqt_pull_next_gap`): group 1 is left open after its first frame while group 2 starts and
/// completes, so once the bound passes group 1 is cut short and reported as MOQT_GAP_LATE, in its
/// place (after its delivered frame, before group 2); its last frame, written afterwards, is
/// never delivered. The publisher (a Rust one: the C track API finishes a group when the next
/// starts, so it cannot hold one open) moves on only after the subscriber saw each step, so the
/// outcome depends on events, not on timing.
#[test]
fn ordered_delivery_reports_a_late_group_from_c_push_and_pull() {
    for pull_mode in [false, true] {
        late_group_through_the_c_api(pull_mode);
    }
}

fn late_group_through_the_c_api(pull_mode: bool) {
    let mode = if pull_mode { "pull" } else { "push" };
    let (relay, fp, _) = embedded_relay();
    let port = moqt_relay_port(relay);
    let info = moqt::model::TrackInfo { priority: 1, max_age: Duration::from_secs(60), timescale: 1000 };
    let RustPublisher { mut track, _session, _published, _broadcast, _origin, rt } = rust_publisher(port, &fp, info);
    let url = std::ffi::CString::new(format!("moql://localhost:{port}/x")).unwrap();
    let mut subscriber = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut subscriber), moqt_status::Ok);
    let (b, t) = (c"b".as_ptr(), c"t".as_ptr());
    let mut wanted = sub_options(MOQT_START_OLDEST, MOQT_DELIVERY_ORDERED);
    wanted.max_latency_ms = 200;

    // Push: the callbacks record into `recorder`. Pull: `take` moves what the queue holds into
    // `pulled`, each frame after the gap reports queued before it was taken.
    let recorder = std::sync::Arc::new(Recorder::default());
    let callbacks = recorder.callbacks();
    let mut subscription = ptr::null_mut();
    let mut pull: *mut moqt_pull = ptr::null_mut();
    let mut pulled: Vec<Delivered> = Vec::new();
    let status = if pull_mode {
        moqt_client_subscribe_pull_with(subscriber, b, usize::MAX, t, usize::MAX, &wanted, &mut pull)
    } else {
        moqt_client_subscribe_with(subscriber, b, usize::MAX, t, usize::MAX, &wanted, &callbacks, &mut subscription)
    };
    assert_eq!(status, moqt_status::Ok, "{mode}: {}", last_error());
    if pull_mode {
        // The callbacks were never handed over: release their reference as user_data_free would.
        Recorder::on_free(callbacks.user_data);
    }
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), track.used()).await }).expect("subscribed");
    let mut end = None;
    let delivered_until = |count: usize, pulled: &mut Vec<Delivered>, end: &mut Option<moqt_status>| {
        if !pull_mode {
            wait_until("the subscription's events", || recorder.events.lock().unwrap().len() >= count);
            return;
        }
        while pulled.len() < count && end.is_none() {
            let mut frame: *const moqt_frame = ptr::null();
            let status = moqt_pull_next_frame(pull, 30_000, &mut frame);
            let (mut first, mut last, mut code) = (0u64, 0u64, 0u64);
            while moqt_pull_next_gap(pull, &mut first, &mut last, &mut code) == moqt_status::Ok {
                pulled.push(Delivered::Gap(first, last, code));
            }
            match status {
                moqt_status::Ok => {
                    pulled.push(Delivered::Frame(moqt_frame_group(frame), moqt_frame_index(frame)));
                    moqt_frame_unref(frame);
                }
                other => *end = Some(other),
            }
        }
    };
    let write = |group: &mut moqt::model::GroupProducer, index: u8| {
        group.write(0, vec![group.sequence() as u8, index]).unwrap();
    };

    // Group 0 whole, then group 1's first frame with the group left open.
    let mut group0 = track.create_group(0).unwrap();
    write(&mut group0, 0);
    write(&mut group0, 1);
    group0.finish().unwrap();
    let mut group1 = track.create_group(1).unwrap();
    write(&mut group1, 0);
    delivered_until(3, &mut pulled, &mut end);
    // A newer group starts and completes while group 1 stays open: past the bound, group 1 is
    // skipped as late, then group 2 follows.
    let mut group2 = track.create_group(2).unwrap();
    write(&mut group2, 0);
    write(&mut group2, 1);
    group2.finish().unwrap();
    delivered_until(6, &mut pulled, &mut end);
    // Group 1 completes too late to be delivered; group 3 comes, then the end.
    write(&mut group1, 1);
    group1.finish().unwrap();
    let mut group3 = track.create_group(3).unwrap();
    write(&mut group3, 0);
    write(&mut group3, 1);
    group3.finish().unwrap();
    track.finish();
    if pull_mode {
        delivered_until(usize::MAX, &mut pulled, &mut end);
        assert_eq!(end, Some(moqt_status::End), "pull: a clean end ({})", last_error());
    } else {
        wait_until("the end of the track", || !recorder.closed().is_empty());
        assert_eq!(recorder.closed(), [moqt_status::End], "push: a clean end");
    }
    let events = if pull_mode { pulled } else { recorder.events.lock().unwrap().clone() };
    use Delivered::{Frame, Gap};
    let expected = [
        Frame(0, 0),
        Frame(0, 1),
        Frame(1, 0),
        Gap(1, 1, MOQT_GAP_LATE),
        Frame(2, 0),
        Frame(2, 1),
        Frame(3, 0),
        Frame(3, 1),
    ];
    assert_eq!(events, expected, "{mode}: group 1 cut short as late, in its place, and nothing else");

    if pull_mode {
        moqt_pull_free(pull);
    } else {
        moqt_subscription_free(subscription);
    }
    moqt_client_free(subscriber);
    drop(_session);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// Freeing a client ends its live subscriptions at once with MOQT_STATUS_ERR_CLOSED, as the header
/// promises: received broadcasts would otherwise linger 30 s for a reconnect that cannot come.
#[test]
fn freeing_a_client_ends_its_subscriptions_promptly() {
    let (relay, fp, url) = embedded_relay();
    let (publisher, subscriber, broadcast, track) = clients_with_a_track(&url, &fp, c"gone");
    let recorder = std::sync::Arc::new(Recorder::default());
    let callbacks = recorder.callbacks();
    let (b, t) = (c"gone".as_ptr(), c"t".as_ptr());
    let mut subscription: *mut moqt_subscription = ptr::null_mut();
    assert_eq!(
        moqt_client_subscribe(subscriber, b, usize::MAX, t, usize::MAX, &callbacks, &mut subscription),
        moqt_status::Ok
    );
    let mut pull: *mut moqt_pull = ptr::null_mut();
    assert_eq!(moqt_client_subscribe_pull(subscriber, b, usize::MAX, t, usize::MAX, &mut pull), moqt_status::Ok);
    // Both are live: frames flow to the pull subscription.
    let mut frame: *const moqt_frame = ptr::null();
    wait_until("a frame", || {
        assert_eq!(moqt_track_write_frame(track, [1u8].as_ptr(), 1, 0, MOQT_FRAME_NEW_GROUP), moqt_status::Ok);
        moqt_pull_next_frame(pull, 50, &mut frame) == moqt_status::Ok
    });
    moqt_frame_unref(frame);

    let freed = Instant::now();
    moqt_client_free(subscriber);
    wait_until("on_closed after the client's free", || !recorder.closed().is_empty());
    assert_eq!(recorder.closed(), vec![moqt_status::ErrClosed]);
    loop {
        match moqt_pull_next_frame(pull, 5000, &mut frame) {
            moqt_status::Ok => moqt_frame_unref(frame),
            status => {
                assert_eq!(status, moqt_status::ErrClosed);
                break;
            }
        }
    }
    assert!(freed.elapsed() < Duration::from_secs(5), "ended in {:?}", freed.elapsed());
    moqt_pull_free(pull);
    moqt_subscription_free(subscription);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// Subscribing and unsubscribing in a tight loop while frames flow, then subscribing once more:
/// the last subscription gets frames. It once ended at once with on_closed(OK), as if the live
/// track had finished: a subscription attached to a track that was being ended for lack of
/// demand.
#[test]
fn a_subscription_after_churn_still_gets_frames() {
    let (relay, fp, url) = embedded_relay();
    let (publisher, subscriber, broadcast, track) = clients_with_a_track(&url, &fp, c"churn");
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (writing, track) = (writing.clone(), track as usize);
        std::thread::spawn(move || {
            let mut i = 0u32;
            while writing.load(Ordering::SeqCst) {
                let flags = if i % 10 == 0 { MOQT_FRAME_NEW_GROUP } else { 0 };
                let _ = moqt_track_write_frame(track as *const moqt_track, [1u8; 32].as_ptr(), 32, 0, flags);
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let quiet = moqt_subscribe_callbacks {
        struct_size: std::mem::size_of::<moqt_subscribe_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: None,
        on_frame: None,
        on_gap: None,
        on_closed: None,
    };
    let (b, t) = (c"churn".as_ptr(), c"t".as_ptr());
    for round in 0..50u64 {
        let mut subscription: *mut moqt_subscription = ptr::null_mut();
        assert_eq!(
            moqt_client_subscribe(subscriber, b, usize::MAX, t, usize::MAX, &quiet, &mut subscription),
            moqt_status::Ok
        );
        std::thread::sleep(Duration::from_millis(round % 3 * 5));
        moqt_subscription_free(subscription);
    }
    let recorder = std::sync::Arc::new(Recorder::default());
    let callbacks = recorder.callbacks();
    let mut last: *mut moqt_subscription = ptr::null_mut();
    assert_eq!(moqt_client_subscribe(subscriber, b, usize::MAX, t, usize::MAX, &callbacks, &mut last), moqt_status::Ok);
    wait_until("frames after the churn", || {
        let closed = recorder.closed();
        assert!(closed.is_empty(), "the subscription ended: {closed:?}");
        recorder.frames.lock().unwrap().len() >= 10
    });
    writing.store(false, Ordering::SeqCst);
    writer.join().unwrap();
    moqt_subscription_free(last);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

static MOVES: std::sync::Mutex<Vec<(moqt_client_state, String)>> = std::sync::Mutex::new(Vec::new());

extern "C" fn record_move(_user_data: *mut c_void, state: moqt_client_state, detail: *const std::ffi::c_char) {
    // SAFETY: the library passes a NUL-terminated string valid for the call.
    let detail = unsafe { CStr::from_ptr(detail) }.to_string_lossy().into_owned();
    MOVES.lock().unwrap().push((state, detail));
}

/// A relay stopping with GOAWAY to another relay: the client's state callbacks show Migrating
/// with that URI, then Connected again (to the other relay), with nothing in between.
#[test]
fn goaway_to_another_relay_shows_migrating_with_its_uri() {
    let (first, _, url) = embedded_relay();
    let (second, _, next_url) = embedded_relay();
    let mut opts = options(None);
    opts.tls_disable_verify = true; // two relays, two generated certificates
    let mut client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    let callbacks = moqt_state_callbacks {
        struct_size: std::mem::size_of::<moqt_state_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: None,
        on_state: Some(record_move),
        on_closed: None,
    };
    let mut watch: *mut moqt_state_watch = ptr::null_mut();
    assert_eq!(moqt_client_watch_state(client, &callbacks, &mut watch), moqt_status::Ok);
    wait_until("connected", || MOVES.lock().unwrap().first().is_some_and(|(s, _)| *s == moqt_client_state::Connected));
    // The client leaves within the drain time, so the stop returns once it has moved.
    moqt_relay_stop(first, next_url.as_ptr(), 5000);
    wait_until("connected again", || MOVES.lock().unwrap().len() >= 3);
    let moves = MOVES.lock().unwrap().clone();
    let next = next_url.to_str().unwrap().to_string();
    assert_eq!(
        moves[..3].iter().map(|(s, d)| (*s, d.as_str())).collect::<Vec<_>>(),
        vec![
            (moqt_client_state::Connected, "moq-lite-06"),
            (moqt_client_state::Migrating, next.as_str()),
            (moqt_client_state::Connected, "moq-lite-06"),
        ],
        "{moves:?}"
    );
    moqt_state_watch_free(watch);
    moqt_client_free(client);
    moqt_relay_stop(second, ptr::null(), 0);
}

/// Trust by CA file from C: a relay serving a certificate from PEM files, and a client that
/// trusts it through `tls_root_pem_path` (the platform's store plus that file) connects; the
/// same client without the file is refused.
#[test]
fn a_client_trusts_a_relay_through_a_ca_file() {
    let dir = std::env::temp_dir().join(format!("moqt-ffi-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("relay.pem"), dir.join("relay.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let cert_c = std::ffi::CString::new(cert_path.to_str().unwrap()).unwrap();
    let key_c = std::ffi::CString::new(key_path.to_str().unwrap()).unwrap();
    let mut relay_options = relay_options();
    relay_options.tls_cert_path = cert_c.as_ptr();
    relay_options.tls_key_path = key_c.as_ptr();
    let mut relay: *mut moqt_relay = ptr::null_mut();
    assert_eq!(moqt_relay_start(c"127.0.0.1:0".as_ptr(), usize::MAX, &relay_options, &mut relay), moqt_status::Ok);
    let url = std::ffi::CString::new(format!("moql://localhost:{}/x", moqt_relay_port(relay))).unwrap();

    let mut client = ptr::null_mut();
    let without = options(None);
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &without, &mut client), moqt_status::ErrConnect);
    assert!(last_error().to_lowercase().contains("issuer"), "{}", last_error());
    let mut with = options(None);
    with.tls_root_pem_path = cert_c.as_ptr();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &with, &mut client), moqt_status::Ok, "{}", last_error());
    moqt_client_free(client);
    moqt_relay_stop(relay, ptr::null(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reconnection options from C take effect: with the relay gone, a client that may retry
/// for 300 ms only gives up, with the reason, instead of retrying for the default 5 minutes.
#[test]
fn give_up_after_from_c_ends_the_retries() {
    let (relay, fp, url) = embedded_relay();
    let mut opts = options(Some(&fp));
    opts.reconnect_initial_ms = 50;
    opts.reconnect_max_ms = 100;
    opts.give_up_after_ms = 300;
    let mut client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    moqt_relay_stop(relay, ptr::null(), 0);
    let stopped = Instant::now();
    let mut state = moqt_client_state::Connected;
    let mut detail = [0 as std::ffi::c_char; 256];
    wait_until("the client to give up", || {
        assert_eq!(moqt_client_get_state(client, &mut state, detail.as_mut_ptr(), detail.len()), moqt_status::Ok);
        state == moqt_client_state::GaveUp
    });
    println!("gave up {:?} after the relay stopped", stopped.elapsed());
    // SAFETY: moqt_client_get_state wrote a NUL-terminated string.
    let reason = unsafe { CStr::from_ptr(detail.as_ptr()) }.to_string_lossy().into_owned();
    assert!(!reason.is_empty(), "a reason comes with GAVE_UP");
    moqt_client_free(client);
}

/// `moqt_track_wait_subscribed`: a timeout while nobody subscribes, OK once a subscription through
/// the relay reaches the publisher (and at once after that), CLOSED for an aborted track, and
/// INVALID_ARG for NULL.
#[test]
fn a_publisher_can_wait_for_its_first_subscriber() {
    let (relay, fp, url) = embedded_relay();
    let (publisher, subscriber, broadcast, track) = clients_with_a_track(&url, &fp, c"watched");
    assert_eq!(moqt_track_wait_subscribed(ptr::null(), 10), moqt_status::ErrInvalidArg);
    assert_eq!(moqt_track_wait_subscribed(track, 50), moqt_status::ErrTimeout, "nobody subscribed yet");
    let mut pull: *mut moqt_pull = ptr::null_mut();
    let (b, t) = (c"watched".as_ptr(), c"t".as_ptr());
    assert_eq!(moqt_client_subscribe_pull(subscriber, b, usize::MAX, t, usize::MAX, &mut pull), moqt_status::Ok);
    assert_eq!(moqt_track_wait_subscribed(track, 10_000), moqt_status::Ok, "{}", last_error());
    assert_eq!(moqt_track_wait_subscribed(track, 0), moqt_status::Ok, "still subscribed");
    // The first frame written after the wait is the subscriber's first: group 0, frame 0.
    assert_eq!(moqt_track_write_frame(track, [7u8].as_ptr(), 1, 0, MOQT_FRAME_NEW_GROUP), moqt_status::Ok);
    let mut frame: *const moqt_frame = ptr::null();
    assert_eq!(moqt_pull_next_frame(pull, 10_000, &mut frame), moqt_status::Ok);
    assert_eq!((moqt_frame_group(frame), moqt_frame_index(frame)), (0, 0));
    moqt_frame_unref(frame);
    assert_eq!(moqt_track_abort(track, 0), moqt_status::Ok);
    assert_eq!(moqt_track_wait_subscribed(track, 10), moqt_status::ErrClosed);
    moqt_pull_free(pull);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// `moqt_client_connect_async` returns a client at once, whatever the network: bad arguments are
/// refused at once with a reason (and `out` untouched); against a server that never answers the
/// client is connecting, its session requests say there is no session, and `moqt_client_free`
/// cancels the attempt promptly (QUIC alone would wait out its 30 s idle timeout) and runs to its
/// end (a contained panic would have replaced the last error).
#[test]
fn connect_async_returns_at_once_and_free_cancels_the_attempt() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = std::ffi::CString::new(format!("moql://localhost:{}/x", silent.local_addr().unwrap().port())).unwrap();
    let mut opts = options(None);
    opts.tls_disable_verify = true;
    opts.give_up_after_ms = u64::MAX;
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect_async(url.as_ptr(), usize::MAX, &opts, ptr::null_mut()), moqt_status::ErrInvalidArg);
    assert!(last_error().contains("out"), "{}", last_error());
    assert_eq!(moqt_client_connect_async(ptr::null(), usize::MAX, &opts, &mut client), moqt_status::ErrInvalidArg);
    assert_eq!(
        moqt_client_connect_async(c"gopher://x/".as_ptr(), usize::MAX, &opts, &mut client),
        moqt_status::ErrInvalidArg
    );
    assert!(last_error().contains("scheme"), "{}", last_error());
    assert_eq!(
        moqt_client_connect_async(url.as_ptr(), usize::MAX, ptr::null(), &mut client),
        moqt_status::ErrInvalidArg
    );
    assert!(last_error().contains("trust"), "{}", last_error());
    let mut bad_version = options(None);
    bad_version.tls_disable_verify = true;
    bad_version.version = 9;
    assert_eq!(
        moqt_client_connect_async(url.as_ptr(), usize::MAX, &bad_version, &mut client),
        moqt_status::ErrInvalidArg
    );
    assert!(client.is_null(), "out is written only on success");

    assert_eq!(moqt_client_connect_async(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    assert!(!client.is_null());
    let mut packet = [0u8; 2048];
    silent.recv_from(&mut packet).expect("the client's first packet reaches the silent server");
    let mut state = moqt_client_state::Closed;
    assert_eq!(moqt_client_get_state(client, &mut state, ptr::null_mut(), 0), moqt_status::Ok);
    assert_eq!(state, moqt_client_state::Connecting);
    assert_eq!(moqt_client_probe(client, 1_000_000), moqt_status::ErrClosed);
    assert!(last_error().contains("no session"), "{}", last_error());

    // A known detail, which only a contained panic inside moqt_client_free would replace.
    assert_eq!(moqt_client_get_state(ptr::null(), &mut state, ptr::null_mut(), 0), moqt_status::ErrInvalidArg);
    let before = last_error();
    let freeing = Instant::now();
    moqt_client_free(client);
    let took = freeing.elapsed();
    assert!(took < Duration::from_secs(2), "moqt_client_free took {took:?}");
    assert_eq!(last_error(), before, "moqt_client_free ran to its end");
}

/// The video config of a CMAF rendition with `init`, its codec string given.
fn cmaf_video_config(init: &[u8]) -> moqt_video_config {
    moqt_video_config {
        struct_size: std::mem::size_of::<moqt_video_config>() as u32,
        codec: c"avc1.64000c".as_ptr(),
        codec_id: moqt_codec::H264 as u32,
        description: ptr::null(),
        description_len: 0,
        parameter_sets: ptr::null(),
        parameter_sets_len: 0,
        in_band: false,
        coded_width: 0,
        coded_height: 0,
        framerate: 0.0,
        bitrate: 0,
        container: moqt_container::Cmaf as u32,
        init: init.as_ptr(),
        init_len: init.len(),
    }
}

/// A CMAF rendition published through the C API (the fixture's H.264 track, one moof+mdat per
/// group) reads back through `moqt_media_subscribe` as samples: one frame per sample of each
/// fragment, the keyframe flag from the sample flags (not index 0 of a moq group), the
/// presentation times from the fragments, positions within the group; the catalog gives the
/// init segment back; the pull's flushing and interrupt work on a media pull as on any.
#[test]
fn a_cmaf_rendition_reads_back_sample_by_sample_through_the_c_api() {
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader};
    let clip = include_bytes!("../fixtures/h264-opus-cmaf.mp4");
    let mut reader = Fmp4Reader::new();
    let events = reader.push(clip).unwrap();
    let init = reader.init().unwrap().track_init(1).unwrap();
    let fragments: Vec<_> = events
        .into_iter()
        .filter_map(|event| match event {
            Fmp4Event::Fragment(fragment) => Some(fragment),
            Fmp4Event::Init(_) => None,
        })
        .collect();

    let (relay, fp, url) = embedded_relay();
    let (mut publisher, mut viewer) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut publisher), moqt_status::Ok);
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut viewer), moqt_status::Ok);
    let mut media = ptr::null_mut();
    assert_eq!(moqt_client_publish_media(publisher, c"cmaf".as_ptr(), usize::MAX, &mut media), moqt_status::Ok);
    let mut video = ptr::null_mut();
    let config = cmaf_video_config(&init);
    assert_eq!(moqt_media_add_video(media, c"0.m4s".as_ptr(), usize::MAX, &config, &mut video), moqt_status::Ok);

    let mut consumer = ptr::null_mut();
    assert_eq!(moqt_client_consume_media(viewer, c"cmaf".as_ptr(), usize::MAX, &mut consumer), moqt_status::Ok);
    let mut catalog = ptr::null();
    assert_eq!(moqt_media_next_catalog(consumer, 10_000, &mut catalog), moqt_status::Ok, "{}", last_error());
    // SAFETY: all-zero is a valid moqt_rendition (integers, a float, NULL pointers).
    let mut rendition: moqt_rendition = unsafe { std::mem::zeroed() };
    rendition.struct_size = std::mem::size_of::<moqt_rendition>() as u32;
    assert_eq!(moqt_catalog_rendition(catalog, 0, &mut rendition), moqt_status::Ok);
    assert_eq!(rendition.container, moqt_container::Cmaf as u32);
    // SAFETY: init points to init_len bytes in the catalog, which is referenced.
    let back = unsafe { std::slice::from_raw_parts(rendition.init, rendition.init_len) };
    assert_eq!(back, &init[..], "the init segment comes back from the catalog");

    let oldest = sub_options(MOQT_START_OLDEST, MOQT_DELIVERY_ORDERED);
    let mut pull = ptr::null_mut();
    let status = moqt_media_subscribe(
        viewer,
        c"cmaf".as_ptr(),
        usize::MAX,
        catalog,
        c"0.m4s".as_ptr(),
        usize::MAX,
        &oldest,
        &mut pull,
    );
    assert_eq!(status, moqt_status::Ok, "{}", last_error());
    moqt_catalog_unref(catalog);
    assert_eq!(moqt_media_track_wait_subscribed(video, 10_000), moqt_status::Ok);

    // Flushing and interrupts, with nothing queued yet.
    let mut frame = ptr::null();
    assert_eq!(moqt_pull_set_flushing(pull, true), moqt_status::Ok);
    assert_eq!(moqt_pull_next_frame(pull, 1000, &mut frame), moqt_status::ErrInterrupted);
    assert_eq!(moqt_pull_set_flushing(pull, false), moqt_status::Ok);
    moqt_pull_interrupt(pull);
    assert_eq!(moqt_pull_next_frame(pull, 1000, &mut frame), moqt_status::ErrInterrupted);

    for fragment in &fragments {
        let part = fragment.split_by_track().unwrap().into_iter().find(|t| t.track_id == 1).unwrap();
        let first = fragment.track_samples(1).next().unwrap();
        let flags = if first.keyframe { MOQT_MEDIA_KEYFRAME } else { 0 };
        let status = moqt_media_track_write(
            video,
            part.bytes.as_ptr(),
            part.bytes.len(),
            first.presentation_time_us as u64,
            flags,
        );
        assert_eq!(status, moqt_status::Ok, "{}", last_error());
    }
    moqt_media_track_free(video);
    assert_eq!(moqt_media_finish(media), moqt_status::Ok);

    let mut frames = Vec::new();
    loop {
        let status = moqt_pull_next_frame(pull, 10_000, &mut frame);
        if status != moqt_status::Ok {
            assert_eq!(status, moqt_status::End, "{}", last_error());
            break;
        }
        let mut len = 0;
        moqt_frame_data(frame, &mut len);
        frames.push((
            moqt_frame_timestamp_us(frame) as i64,
            moqt_frame_is_keyframe(frame),
            moqt_frame_group(frame),
            moqt_frame_index(frame),
            len,
            moqt_frame_has_timestamp(frame),
        ));
        moqt_frame_unref(frame);
    }
    assert_eq!(frames.len(), 60);
    let keyframes: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.1).map(|(i, _)| i).collect();
    assert_eq!(keyframes, [0, 30], "the keyframe flag is the sample's");
    let expected: Vec<i64> =
        fragments.iter().flat_map(|f| f.track_samples(1)).map(|s| s.presentation_time_us).collect();
    assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), expected, "presentation times from the fragments");
    assert!(frames.iter().all(|f| f.5), "media samples always have a timestamp");
    assert_eq!((frames[0].2 + 1, frames[29].3, frames[30].2, frames[30].3), (frames[30].2, 29, frames[0].2 + 1, 0));
    assert_eq!(frames[0].4, 2645, "the first sample's bytes");

    moqt_pull_free(pull);
    moqt_media_consumer_free(consumer);
    moqt_media_free(media);
    moqt_client_free(publisher);
    moqt_client_free(viewer);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// A rendition moqt packs as CMAF (added without `init`), written through
/// `moqt_media_track_write_dts` with the fixture's B-frame clip (frame 59 presented before frame
/// 58): subscribers read every presentation time back in decode order, and the fragments on the
/// wire carry the decode times (tfdt, strictly increasing) with PTS - DTS as composition offsets.
/// Without the decode times (`moqt_media_track_write`, DTS = PTS) the reordered frame is refused.
#[test]
fn a_packed_cmaf_rendition_keeps_b_frame_decode_times_through_the_c_api() {
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader};
    let clip = include_bytes!("../fixtures/h264-opus-cmaf.mp4");
    let mut reader = Fmp4Reader::new();
    let events = reader.push(clip).unwrap();
    let init = reader.init().unwrap().track_init(1).unwrap();
    let samples: Vec<_> = events
        .into_iter()
        .filter_map(|event| match event {
            Fmp4Event::Fragment(fragment) => Some(fragment),
            Fmp4Event::Init(_) => None,
        })
        .flat_map(|fragment| fragment.samples)
        .filter(|sample| sample.track_id == 1)
        .collect();
    assert!(samples[59].presentation_time_us < samples[58].presentation_time_us, "the clip has a B-frame");
    let at = init.windows(4).position(|w| w == b"avcC").unwrap();
    let size = u32::from_be_bytes(init[at - 4..at].try_into().unwrap()) as usize;
    let avcc = &init[at + 4..at - 4 + size];

    let (relay, fp, url) = embedded_relay();
    let (mut publisher, mut viewer) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut publisher), moqt_status::Ok);
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options(Some(&fp)), &mut viewer), moqt_status::Ok);
    let mut media = ptr::null_mut();
    assert_eq!(moqt_client_publish_media(publisher, c"packed".as_ptr(), usize::MAX, &mut media), moqt_status::Ok);
    let mut config = cmaf_video_config(&[]);
    config.codec = ptr::null();
    config.init = ptr::null();
    config.description = avcc.as_ptr();
    config.description_len = avcc.len();
    let (mut video, mut other) = (ptr::null_mut(), ptr::null_mut());
    assert_eq!(moqt_media_add_video(media, c"video".as_ptr(), usize::MAX, &config, &mut video), moqt_status::Ok);
    assert_eq!(moqt_media_add_video(media, c"other".as_ptr(), usize::MAX, &config, &mut other), moqt_status::Ok);

    let mut consumer = ptr::null_mut();
    assert_eq!(moqt_client_consume_media(viewer, c"packed".as_ptr(), usize::MAX, &mut consumer), moqt_status::Ok);
    let mut catalog = ptr::null();
    assert_eq!(moqt_media_next_catalog(consumer, 20_000, &mut catalog), moqt_status::Ok, "{}", last_error());
    // SAFETY: all-zero is a valid moqt_rendition (integers, a float, NULL pointers).
    let mut rendition: moqt_rendition = unsafe { std::mem::zeroed() };
    rendition.struct_size = std::mem::size_of::<moqt_rendition>() as u32;
    assert_eq!(moqt_catalog_rendition(catalog, 1, &mut rendition), moqt_status::Ok);
    // SAFETY: name and init point into the catalog, which is referenced.
    let (name, packed_init) = unsafe {
        (
            std::slice::from_raw_parts(rendition.name.cast::<u8>(), rendition.name_len),
            std::slice::from_raw_parts(rendition.init, rendition.init_len).to_vec(),
        )
    };
    assert_eq!(name, b"video");
    let oldest = sub_options(MOQT_START_OLDEST, MOQT_DELIVERY_ORDERED);
    let (mut samples_pull, mut fragments_pull) = (ptr::null_mut(), ptr::null_mut());
    let (b, t) = (c"packed".as_ptr(), c"video".as_ptr());
    let status = moqt_media_subscribe(viewer, b, usize::MAX, catalog, t, usize::MAX, &oldest, &mut samples_pull);
    assert_eq!(status, moqt_status::Ok, "{}", last_error());
    moqt_catalog_unref(catalog);
    // The same track as plain frames: one fragment each.
    let status = moqt_client_subscribe_pull_with(viewer, b, usize::MAX, t, usize::MAX, &oldest, &mut fragments_pull);
    assert_eq!(status, moqt_status::Ok, "{}", last_error());
    assert_eq!(moqt_media_track_wait_subscribed(video, 20_000), moqt_status::Ok);

    for sample in &samples {
        let flags = if sample.keyframe { MOQT_MEDIA_KEYFRAME } else { 0 };
        let (pts, dts) = (sample.presentation_time_us as u64, sample.decode_time_us);
        let status = moqt_media_track_write_dts(video, sample.data.as_ptr(), sample.data.len(), pts, dts, flags);
        assert_eq!(status, moqt_status::Ok, "{}", last_error());
    }
    // Without decode times the reordered frame's time goes back: refused, nothing written.
    for sample in &samples[..59] {
        let flags = if sample.keyframe { MOQT_MEDIA_KEYFRAME } else { 0 };
        let pts = sample.presentation_time_us as u64;
        assert_eq!(moqt_media_track_write(other, sample.data.as_ptr(), sample.data.len(), pts, flags), moqt_status::Ok);
    }
    let (b_frame, pts) = (&samples[59], samples[59].presentation_time_us as u64);
    let status = moqt_media_track_write(other, b_frame.data.as_ptr(), b_frame.data.len(), pts, 0);
    assert_eq!(status, moqt_status::ErrInvalidArg);
    assert!(last_error().contains("goes backwards"), "{}", last_error());
    moqt_media_track_free(video);
    moqt_media_track_free(other);
    assert_eq!(moqt_media_finish(media), moqt_status::Ok);

    let drain = |pull: *mut moqt_pull, each: &mut dyn FnMut(*const moqt_frame)| loop {
        let mut frame = ptr::null();
        let status = moqt_pull_next_frame(pull, 20_000, &mut frame);
        if status != moqt_status::Ok {
            assert_eq!(status, moqt_status::End, "{}", last_error());
            break;
        }
        each(frame);
        moqt_frame_unref(frame);
    };
    let mut presented = Vec::new();
    drain(samples_pull, &mut |frame| presented.push(moqt_frame_timestamp_us(frame) as i64));
    let expected: Vec<i64> = samples.iter().map(|s| s.presentation_time_us).collect();
    assert_eq!(presented, expected, "every presentation time, in decode order");
    let mut wire = Fmp4Reader::new();
    wire.push(&packed_init).unwrap();
    let mut decoded = Vec::new();
    drain(fragments_pull, &mut |frame| {
        let mut len = 0;
        let data = moqt_frame_data(frame, &mut len);
        // SAFETY: the frame's bytes, valid while it is referenced.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        for event in wire.push(bytes).unwrap() {
            let Fmp4Event::Fragment(fragment) = event else { panic!("a fragment per frame") };
            decoded.extend(fragment.samples.iter().map(|s| (s.decode_time_us, s.presentation_time_us)));
        }
    });
    let expected: Vec<(u64, i64)> = samples.iter().map(|s| (s.decode_time_us, s.presentation_time_us)).collect();
    assert_eq!(decoded, expected, "each fragment's decode time and presentation time");
    assert!(decoded.windows(2).all(|w| w[1].0 > w[0].0), "decode times go forward");

    moqt_pull_free(samples_pull);
    moqt_pull_free(fragments_pull);
    moqt_media_consumer_free(consumer);
    moqt_media_free(media);
    moqt_client_free(publisher);
    moqt_client_free(viewer);
    moqt_relay_stop(relay, ptr::null(), 0);
}

/// The client's state and its detail text.
fn state_and_detail(client: *const moqt_client) -> (moqt_client_state, String) {
    let mut state = moqt_client_state::Closed;
    let mut detail = [0 as std::ffi::c_char; 256];
    assert_eq!(moqt_client_get_state(client, &mut state, detail.as_mut_ptr(), detail.len()), moqt_status::Ok);
    // SAFETY: moqt_client_get_state wrote a NUL-terminated string.
    (state, unsafe { CStr::from_ptr(detail.as_ptr()) }.to_string_lossy().into_owned())
}

/// `connect_attempt_timeout_ms`: an attempt a server never answers is abandoned after it and the
/// next one starts (a fresh QUIC connection: a new destination connection ID on the wire), where
/// the default would wait 10 s for that one attempt.
#[test]
fn a_connect_attempt_is_abandoned_after_the_attempt_timeout() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = std::ffi::CString::new(format!("moql://localhost:{}/x", silent.local_addr().unwrap().port())).unwrap();
    let mut opts = options(None);
    opts.tls_disable_verify = true;
    opts.give_up_after_ms = u64::MAX;
    opts.reconnect_initial_ms = 50;
    opts.reconnect_max_ms = 50;
    opts.connect_attempt_timeout_ms = 300;
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect_async(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    // Initial packets: long header, version, then the destination connection ID (length-prefixed).
    // Two attempts within the default's single one (10 s), however loaded the machine.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut attempts = std::collections::HashSet::new();
    let mut packet = [0u8; 2048];
    while attempts.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "one attempt outlived connect_attempt_timeout_ms many times over");
        silent.set_read_timeout(Some(left)).unwrap();
        let Ok((n, _)) = silent.recv_from(&mut packet) else { continue };
        if n > 6 && packet[0] & 0x80 != 0 {
            let len = usize::from(packet[5]);
            if let Some(dcid) = packet.get(6..6 + len) {
                attempts.insert(dcid.to_vec());
            }
        }
    }
    let (state, detail) = state_and_detail(client);
    assert!(matches!(state, moqt_client_state::Reconnecting | moqt_client_state::Connecting), "{state:?} {detail}");
    moqt_client_free(client);
}

/// `idle_timeout_ms`: a relay that goes silent without a word (every packet dropped, as when it
/// is killed) is taken as gone after the idle timeout, and the client reconnects by itself once
/// the path is back; with the default (30 s) it would still count as connected at the bound.
#[test]
fn the_idle_timeout_from_c_notices_a_silent_relay() {
    use crate::common::netsim::{Dir, Impairment, NetSim};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (relay, fp, _) = embedded_relay();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], moqt_relay_port(relay)));
    let sim = rt.block_on(NetSim::start(target, 7, Impairment::default(), Impairment::default()));
    let url = std::ffi::CString::new(format!("moql://localhost:{}/x", sim.addr().port())).unwrap();
    let mut opts = options(Some(&fp));
    opts.reconnect_initial_ms = 50;
    opts.reconnect_max_ms = 200;
    opts.give_up_after_ms = u64::MAX;
    opts.idle_timeout_ms = 1000;
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &opts, &mut client), moqt_status::Ok);
    sim.set_blackhole(Dir::Up, true);
    sim.set_blackhole(Dir::Down, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (state, detail) = state_and_detail(client);
        if state != moqt_client_state::Connected {
            assert!(detail.contains("timed out") || detail.contains("idle"), "{state:?} {detail}");
            break;
        }
        assert!(Instant::now() < deadline, "still connected 20 s into a silent path");
        std::thread::sleep(Duration::from_millis(20));
    }
    sim.set_blackhole(Dir::Up, false);
    sim.set_blackhole(Dir::Down, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while state_and_detail(client).0 != moqt_client_state::Connected {
        assert!(Instant::now() < deadline, "not reconnected once the path is back: {:?}", state_and_detail(client));
        std::thread::sleep(Duration::from_millis(20));
    }
    moqt_client_free(client);
    moqt_relay_stop(relay, ptr::null(), 0);
}
