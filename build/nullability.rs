//! Marks every pointer in the generated header MOQT_NONNULL or MOQT_NULLABLE (Clang's `_Nonnull` /
//! `_Nullable`, nothing for other compilers), so Swift imports required arguments as
//! non-optional and Clang can warn about a NULL passed where one is required. cbindgen leaves raw
//! pointers unmarked, and our entry points take raw pointers on purpose: a NULL from C must reach
//! the function and be answered with MOQT_STATUS_ERR_INVALID_ARG, never be undefined behaviour in
//! Rust, so the contract is written here instead of in the Rust types.
//!
//! The rules, in order: the inner level of a `T **out` is nullable (the call writes it); a
//! function pointer is nullable (callbacks are optional); a callback's `user_data` and `data` are
//! nullable, its other pointers not; a struct field is nullable (options and callbacks are
//! optional, and each field's doc says what NULL means); a function's return is nullable unless
//! [`NONNULL_RETURNS`] names it; a function's parameter is non-null unless [`NULLABLE_PARAMS`]
//! names it: NULL there has a documented meaning (defaults, "skip", a no-op free).

/// Parameters where NULL is meaningful, as (function, parameter).
const NULLABLE_PARAMS: &[(&str, &str)] = &[
    ("moqt_last_error_code", "code_out"),
    ("moqt_client_connect", "options"),
    ("moqt_client_connect_async", "options"),
    ("moqt_client_free", "client"),
    ("moqt_broadcast_free", "broadcast"),
    ("moqt_broadcast_create_track_with", "options"),
    ("moqt_track_write_frame", "data"),
    ("moqt_track_write_frame_zero_copy", "data"),
    ("moqt_track_write_frame_zero_copy", "free_user_data"),
    ("moqt_track_free", "track"),
    ("moqt_client_subscribe_with", "options"),
    ("moqt_subscription_free", "subscription"),
    ("moqt_subscription_release", "subscription"),
    ("moqt_announced_free", "announced"),
    ("moqt_announced_release", "announced"),
    ("moqt_client_get_state", "detail"),
    ("moqt_state_watch_release", "watch"),
    ("moqt_state_watch_free", "watch"),
    ("moqt_frame_ref", "frame"),
    ("moqt_frame_unref", "frame"),
    ("moqt_frame_data", "frame"),
    ("moqt_frame_timestamp_us", "frame"),
    ("moqt_frame_timestamp", "frame"),
    ("moqt_frame_has_timestamp", "frame"),
    ("moqt_frame_group", "frame"),
    ("moqt_frame_index", "frame"),
    ("moqt_frame_is_keyframe", "frame"),
    ("moqt_frame_data", "len_out"),
    ("moqt_frame_timestamp", "timescale"),
    ("moqt_set_log_callback", "user_data"),
    ("moqt_client_subscribe_pull_with", "options"),
    ("moqt_pull_interrupt", "pull"),
    ("moqt_pull_fd", "pull"),
    ("moqt_pull_flush", "pull"),
    ("moqt_pull_free", "pull"),
    ("moqt_relay_start", "options"),
    ("moqt_relay_stop", "relay"),
    ("moqt_relay_stop", "goaway_uri"),
    ("moqt_relay_port", "relay"),
    ("moqt_set_thread_hooks", "user_data"),
    ("moqt_client_fetch", "options"),
    ("moqt_media_free", "media"),
    ("moqt_media_track_write", "data"),
    ("moqt_media_track_write_zero_copy", "data"),
    ("moqt_media_track_write_zero_copy", "free_user_data"),
    ("moqt_media_track_write_dts", "data"),
    ("moqt_media_track_write_dts_zero_copy", "data"),
    ("moqt_media_track_write_dts_zero_copy", "free_user_data"),
    ("moqt_media_track_free", "track"),
    ("moqt_catalog_ref", "catalog"),
    ("moqt_catalog_unref", "catalog"),
    ("moqt_catalog_json", "len_out"),
    ("moqt_catalog_json", "catalog"),
    ("moqt_catalog_rendition_count", "catalog"),
    ("moqt_media_consumer_fd", "consumer"),
    ("moqt_media_consumer_interrupt", "consumer"),
    ("moqt_media_consumer_free", "consumer"),
    ("moqt_media_subscribe", "options"),
];

/// Functions whose returned pointer is never NULL.
const NONNULL_RETURNS: &[&str] = &["moqt_version", "moqt_status_str", "moqt_last_error"];

const NONNULL: &str = "MOQT_NONNULL";
const NULLABLE: &str = "MOQT_NULLABLE";

/// What an open parenthesis belongs to.
#[derive(Debug, Clone, PartialEq)]
enum Group {
    /// The parameter list of an exported function.
    Function(String),
    /// The parameter list of a function pointer (a callback).
    Callback,
    /// Anything else, such as the `(*name)` of a function pointer declarator.
    Other,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier starting at `from` (after spaces) and the index after it.
fn ident_at(chars: &[char], from: usize) -> (String, usize) {
    let mut i = from;
    while i < chars.len() && chars[i] == ' ' {
        i += 1;
    }
    let start = i;
    while i < chars.len() && is_ident(chars[i]) {
        i += 1;
    }
    (chars[start..i].iter().collect(), i)
}

/// The identifier ending just before `end` (spaces skipped), if any.
fn ident_before(out: &str) -> String {
    let trimmed = out.trim_end();
    let rev: String = trimmed.chars().rev().take_while(|c| is_ident(*c)).collect();
    rev.chars().rev().collect()
}

fn next_non_space(chars: &[char], from: usize) -> Option<char> {
    chars[from..].iter().copied().find(|c| *c != ' ' && *c != '\n')
}

/// The header with every pointer outside comments and preprocessor lines marked.
pub fn annotate(header: &str) -> String {
    let chars: Vec<char> = header.chars().collect();
    let mut out = String::with_capacity(header.len() + header.len() / 8);
    let mut groups: Vec<Group> = Vec::new();
    let mut braces = 0usize;
    let mut after_declarator = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let line = out.rsplit('\n').next().unwrap_or("");
        // Comments, preprocessor lines and C++'s `extern "C" { ... }` pass through untouched.
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut end = i + 2;
            while end + 1 < chars.len() && !(chars[end] == '*' && chars[end + 1] == '/') {
                end += 1;
            }
            let end = (end + 2).min(chars.len());
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        let whole_line = (c == '/' && chars.get(i + 1) == Some(&'/'))
            || (line.trim().is_empty() && c == '#')
            || (line.trim().is_empty() && chars[i..].starts_with(&['e', 'x', 't', 'e', 'r', 'n', ' ', '"']))
            || (line.trim().is_empty()
                && c == '}'
                && chars[i..].iter().take_while(|c| **c != '\n').collect::<String>().contains("extern"));
        if whole_line {
            while i < chars.len() && chars[i] != '\n' {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        match c {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '(' => {
                let before = ident_before(&out);
                let group = if after_declarator {
                    Group::Callback
                } else if braces == 0 && groups.is_empty() && before.starts_with("moqt_") {
                    Group::Function(before)
                } else {
                    Group::Other
                };
                groups.push(group);
                after_declarator = false;
                out.push(c);
                i += 1;
                continue;
            }
            ')' => {
                let closed = groups.pop();
                // `(*name)` closed: the next `(` opens that function pointer's parameters.
                after_declarator = closed == Some(Group::Other) && next_non_space(&chars, i + 1) == Some('(');
                out.push(c);
                i += 1;
                continue;
            }
            '*' => {
                let declarator_start = out.trim_end().ends_with('(');
                out.push('*');
                i += 1;
                let mark = if next_non_space(&chars, i) == Some('*') {
                    NULLABLE
                } else {
                    let (name, after) = ident_at(&chars, i);
                    let follows = next_non_space(&chars, after);
                    if declarator_start && follows == Some(')') {
                        NULLABLE
                    } else if follows == Some('(') && groups.is_empty() {
                        if NONNULL_RETURNS.contains(&name.as_str()) { NONNULL } else { NULLABLE }
                    } else {
                        match groups.last() {
                            Some(Group::Function(function)) => {
                                if NULLABLE_PARAMS.contains(&(function.as_str(), name.as_str())) {
                                    NULLABLE
                                } else {
                                    NONNULL
                                }
                            }
                            Some(Group::Callback) => {
                                if name == "user_data" || name == "data" {
                                    NULLABLE
                                } else {
                                    NONNULL
                                }
                            }
                            _ => NULLABLE,
                        }
                    }
                };
                out.push_str(mark);
                out.push(' ');
                while i < chars.len() && chars[i] == ' ' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if !matches!(c, ' ' | '\n') {
            after_declarator = false;
        }
        out.push(c);
        i += 1;
    }
    out
}
