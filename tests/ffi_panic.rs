//! A panic inside moqt (a bug) is contained: a C call returns MOQT_STATUS_ERR_PANIC, a task behind
//! a handle ends its callbacks with MOQT_STATUS_ERR_PANIC (on_closed, then user_data_free once),
//! and the process and the library keep working. The panics are triggered by name through the
//! test-only feature "test-hooks" (ffi::TEST_PANIC_NAME).

use std::ffi::{CStr, CString, c_void};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use moqt::ffi::*;

static CLOSED: Mutex<Vec<moqt_status>> = Mutex::new(Vec::new());
static FREES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_closed(_user_data: *mut c_void, status: moqt_status) {
    CLOSED.lock().unwrap().push(status);
}

extern "C" fn user_data_free(_user_data: *mut c_void) {
    FREES.fetch_add(1, Ordering::SeqCst);
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_panic_in_a_call_or_in_the_engine_is_reported_and_contained() {
    // Quiet the expected panic messages.
    std::panic::set_hook(Box::new(|_| {}));
    let mut relay: *mut moqt_relay = ptr::null_mut();
    assert_eq!(moqt_relay_start(c"127.0.0.1:0".as_ptr(), usize::MAX, ptr::null(), &mut relay), moqt_status::Ok);
    let mut buf = [0 as std::ffi::c_char; 65];
    assert_eq!(moqt_relay_fingerprint(relay, buf.as_mut_ptr(), buf.len()), moqt_status::Ok);
    // SAFETY: moqt_relay_fingerprint wrote a NUL-terminated string.
    let fp = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned();
    let url = CString::new(format!("moql://localhost:{}/x", moqt_relay_port(relay))).unwrap();
    let options = moqt_client_options {
        struct_size: std::mem::size_of::<moqt_client_options>() as u32,
        tls_fingerprint: fp.as_ptr(),
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
    };
    let mut client: *mut moqt_client = ptr::null_mut();
    assert_eq!(moqt_client_connect(url.as_ptr(), usize::MAX, &options, &mut client), moqt_status::Ok);
    let name = CString::new(TEST_PANIC_NAME).unwrap();

    // In the call itself: the status, and a reason.
    let mut broadcast: *mut moqt_broadcast = ptr::null_mut();
    assert_eq!(moqt_client_publish(client, name.as_ptr(), usize::MAX, &mut broadcast), moqt_status::ErrPanic);
    assert!(broadcast.is_null());
    // SAFETY: moqt_last_error returns a NUL-terminated string.
    let reason = unsafe { CStr::from_ptr(moqt_last_error()) }.to_string_lossy().into_owned();
    assert!(reason.contains("panic"), "{reason}");

    // In an engine task behind a subscription: on_closed(ERR_PANIC), then user_data_free once.
    let callbacks = moqt_subscribe_callbacks {
        struct_size: std::mem::size_of::<moqt_subscribe_callbacks>() as u32,
        user_data: ptr::null_mut(),
        user_data_free: Some(user_data_free),
        on_frame: None,
        on_gap: None,
        on_closed: Some(on_closed),
    };
    let mut subscription: *mut moqt_subscription = ptr::null_mut();
    let (b, t) = (c"b".as_ptr(), name.as_ptr());
    assert_eq!(
        moqt_client_subscribe(client, b, usize::MAX, t, usize::MAX, &callbacks, &mut subscription),
        moqt_status::Ok
    );
    wait_until("user_data_free after the panic", || FREES.load(Ordering::SeqCst) == 1);
    assert_eq!(*CLOSED.lock().unwrap(), vec![moqt_status::ErrPanic]);
    moqt_subscription_free(subscription);

    // The same in pull mode: the next frame call reports the end, as on_closed does.
    let mut pull: *mut moqt_pull = ptr::null_mut();
    assert_eq!(moqt_client_subscribe_pull(client, b, usize::MAX, t, usize::MAX, &mut pull), moqt_status::Ok);
    let mut frame: *const moqt_frame = ptr::null();
    assert_eq!(moqt_pull_next_frame(pull, 5000, &mut frame), moqt_status::ErrPanic);
    // SAFETY: as above.
    let reason = unsafe { CStr::from_ptr(moqt_last_error()) }.to_string_lossy().into_owned();
    assert!(reason.contains("panic"), "{reason}");
    moqt_pull_free(pull);

    // Still working afterwards: publish and subscribe normally.
    assert_eq!(moqt_client_publish(client, c"fine".as_ptr(), usize::MAX, &mut broadcast), moqt_status::Ok);
    moqt_broadcast_free(broadcast);
    assert_eq!(FREES.load(Ordering::SeqCst), 1, "user_data_free exactly once");
    moqt_client_free(client);
    moqt_relay_stop(relay, ptr::null(), 0);
    let _ = std::panic::take_hook();
}
