//! The committed C header must be exactly what build.rs generates, every exported item must carry a
//! doc comment, and the header must compile as C and as C++ with warnings as errors.

use std::path::Path;
use std::process::Command;

fn committed() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/moqt.h"))
        .expect("include/moqt.h is committed")
}

#[test]
fn committed_header_matches_generated() {
    let generated = std::fs::read_to_string(env!("MOQT_GENERATED_HEADER")).expect("build.rs wrote the header");
    assert!(
        committed() == generated,
        "include/moqt.h is stale: copy {} over it (or run scripts/update-header.sh) and commit",
        env!("MOQT_GENERATED_HEADER")
    );
}

#[test]
fn every_exported_item_is_documented() {
    let header = committed();
    let lines: Vec<&str> = header.lines().collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let declaration = (line.ends_with(");") && !line.starts_with(' ') && !line.starts_with('#'))
            || line.starts_with("enum ")
            || line.starts_with("typedef struct")
            || line.starts_with("typedef void");
        if !declaration {
            continue;
        }
        let previous = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
        if previous.trim() != "*/" {
            undocumented.push(line.to_string());
        }
    }
    assert!(undocumented.is_empty(), "undocumented items in moqt.h: {undocumented:#?}");
}

fn compiles_with(compiler: &str, language: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let mut child = Command::new(compiler)
        .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic", "-x", language, "-I"])
        .arg(&include)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{compiler} is needed to check the header: {err}"));
    let source = "#include \"moqt.h\"\n#include \"moqt.h\"\nint main(void) { return moqt_version_number() == MOQT_VERSION_NUMBER ? 0 : 1; }\n";
    child.stdin.take().expect("piped stdin").write_all(source.as_bytes()).expect("write source");
    let output = child.wait_with_output().expect("compiler ran");
    assert!(output.status.success(), "{compiler} rejects moqt.h: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn header_compiles_as_c() {
    compiles_with("cc", "c");
}

#[test]
fn header_compiles_as_cpp() {
    compiles_with("c++", "c++");
}

/// Every function's doc says its thread-safety and which callbacks may follow, and a function
/// that returns a status says which codes.
#[test]
fn every_function_doc_states_threads_callbacks_and_codes() {
    let header = committed();
    let mut lacking = Vec::new();
    for block in header.split("/**").skip(1) {
        let Some((doc, rest)) = block.split_once("*/") else { continue };
        // Top-level declarations only: struct members are indented.
        let rest = rest.trim_start_matches(['\r', '\n']);
        if rest.starts_with(' ') || rest.starts_with('#') || rest.starts_with("typedef") {
            continue;
        }
        let declaration = rest.split(';').next().unwrap_or("").trim();
        let name = declaration.split('(').next().unwrap_or("").split_whitespace().last().unwrap_or("");
        let name = name.trim_start_matches('*');
        if !declaration.contains('(') || !name.starts_with("moqt_") {
            continue;
        }
        let mut missing = Vec::new();
        if !doc.contains("Thread-safety") {
            missing.push("Thread-safety");
        }
        if !doc.contains("Callbacks") {
            missing.push("Callbacks");
        }
        if declaration.starts_with("moqt_status") && !doc.contains("Returns") {
            missing.push("Returns");
        }
        if !missing.is_empty() {
            lacking.push(format!("{name}: {}", missing.join(", ")));
        }
    }
    assert!(lacking.is_empty(), "function docs in moqt.h that do not say: {lacking:#?}");
}
