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

/// A top-level item of the header: its doc block (if one ends right above it) and its text, from
/// its first line to the `;` or `{` that ends it (`MOQT_MUST_USE` included).
struct Item {
    doc: Option<String>,
    text: String,
}

fn items(header: &str) -> Vec<Item> {
    let lines: Vec<&str> = header.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() || line.starts_with([' ', '\t', '#', '/', '*', '}']) {
            i += 1;
            continue;
        }
        let start = i;
        let mut text = String::new();
        while i < lines.len() {
            text.push_str(lines[i]);
            text.push('\n');
            let end = lines[i].trim_end();
            i += 1;
            if end.ends_with(';') || end.ends_with('{') {
                break;
            }
        }
        let doc = (|| {
            let mut k = start.checked_sub(1)?;
            while lines[k].trim().is_empty() {
                k = k.checked_sub(1)?;
            }
            if lines[k] != " */" {
                return None;
            }
            let end = k;
            while !lines[k].starts_with("/**") {
                k = k.checked_sub(1)?;
            }
            Some(lines[k..=end].join("\n"))
        })();
        items.push(Item { doc, text });
    }
    items
}

#[test]
fn every_exported_item_is_documented() {
    let items = items(&committed());
    // cbindgen follows each documented enum with typedefs naming it for C: they need no doc.
    let is_enum_alias = |text: &str| {
        text.starts_with("typedef ")
            && !text.contains('{')
            && text.trim_end().trim_end_matches(';').split_whitespace().last().is_some_and(|name| {
                items.iter().any(|other| other.doc.is_some() && other.text.starts_with(&format!("enum {name}")))
            })
    };
    let undocumented: Vec<String> = items
        .iter()
        .filter(|item| item.text.contains("moqt_") && !item.text.starts_with("extern"))
        .filter(|item| item.doc.is_none() && !is_enum_alias(&item.text))
        .map(|item| item.text.clone())
        .collect();
    assert!(undocumented.is_empty(), "undocumented items in moqt.h: {undocumented:#?}");
}

/// Compiles a program that includes moqt.h twice with `compiler` as `language` and `warnings`.
fn compiles_with_flags(compiler: &str, language: &str, warnings: &[&str]) {
    use std::io::Write;
    use std::process::Stdio;
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let mut child = Command::new(compiler)
        .arg("-fsyntax-only")
        .args(warnings)
        .args(["-x", language, "-I"])
        .arg(&include)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{compiler} is needed to check the header: {err}"));
    let source = "#include \"moqt.h\"\n#include \"moqt.h\"\nint main(void) { return moqt_version_number() == MOQT_VERSION_NUMBER ? 0 : 1; }\n";
    child.stdin.take().expect("piped stdin").write_all(source.as_bytes()).expect("write source");
    let output = child.wait_with_output().expect("compiler ran");
    assert!(
        output.status.success(),
        "{compiler} ({language}, {warnings:?}) rejects moqt.h: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn compiles_with(compiler: &str, language: &str) {
    compiles_with_flags(compiler, language, &["-Wall", "-Wextra", "-Werror", "-pedantic"]);
}

#[test]
fn header_compiles_as_c() {
    compiles_with("cc", "c");
}

#[test]
fn header_compiles_as_cpp() {
    compiles_with("c++", "c++");
}

/// Every function's doc says who owns what and for how long, its thread-safety and which
/// callbacks may follow; a function that returns something says what.
#[test]
fn every_function_doc_states_ownership_threads_callbacks_and_returns() {
    let mut lacking = Vec::new();
    let mut functions = 0;
    for item in items(&committed()) {
        let declaration = item.text.trim_start_matches("MOQT_MUST_USE").trim_start();
        let Some((head, _)) = declaration.split_once('(') else { continue };
        let name = head.split_whitespace().last().unwrap_or("").trim_start_matches('*');
        if declaration.starts_with("typedef") || !name.starts_with("moqt_") {
            continue;
        }
        functions += 1;
        let doc = item.doc.unwrap_or_default();
        let mut missing = Vec::new();
        if !doc.contains("Ownership") && !doc.contains("Lifetime") {
            missing.push("Ownership or Lifetime");
        }
        if !doc.contains("Thread-safety") {
            missing.push("Thread-safety");
        }
        if !doc.contains("Callbacks") {
            missing.push("Callbacks");
        }
        if !head.trim_start().starts_with("void ") && !doc.contains("Returns") {
            missing.push("Returns");
        }
        if !missing.is_empty() {
            lacking.push(format!("{name}: {}", missing.join(", ")));
        }
    }
    assert!(functions > 50, "only {functions} functions found: the parser is broken");
    assert!(lacking.is_empty(), "function docs in moqt.h that do not say: {lacking:#?}");
}

/// The header without comments and preprocessor lines: what a compiler reads as declarations.
fn code(header: &str) -> String {
    let mut out = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start..].find("*/").map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every pointer of the header says whether NULL is allowed there (MOQT_NONNULL or
/// MOQT_NULLABLE, Clang's nullability qualifiers), and Clang, which warns about a header whose
/// pointers are only partly marked, accepts it with that warning as an error.
#[test]
fn every_pointer_says_whether_null_is_allowed() {
    let code = code(&committed());
    let mut unmarked = Vec::new();
    let mut marked = 0;
    for (at, _) in code.match_indices('*') {
        let after = code[at + 1..].trim_start();
        if after.starts_with("MOQT_NONNULL") || after.starts_with("MOQT_NULLABLE") {
            marked += 1;
        } else {
            let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = code[at..].find('\n').map_or(code.len(), |n| at + n);
            unmarked.push(code[line_start..line_end].trim().to_string());
        }
    }
    assert!(marked > 100, "only {marked} marked pointers: the check is broken");
    assert!(unmarked.is_empty(), "pointers without MOQT_NONNULL or MOQT_NULLABLE: {unmarked:#?}");
    for language in ["c", "c++"] {
        compiles_with_flags("clang", language, &["-Werror=nullability-completeness", "-Werror=nullability"]);
    }
}

/// A parameter whose doc gives NULL a meaning (a result "for NULL", "NULL is accepted", "`p` (if
/// not NULL)") is MOQT_NULLABLE: Swift would import a MOQT_NONNULL one as non-optional, and
/// Clang would warn about the NULL the doc allows. Doc phrases without a parameter name apply to
/// the first pointer parameter (the handle).
#[test]
fn a_parameter_the_doc_allows_to_be_null_is_marked_nullable() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for item in items(&committed()) {
        let declaration = item.text.trim_start_matches("MOQT_MUST_USE").trim_start();
        let Some((head, rest)) = declaration.split_once('(') else { continue };
        let name = head.split_whitespace().last().unwrap_or("").trim_start_matches('*');
        if declaration.starts_with("typedef") || !name.starts_with("moqt_") {
            continue;
        }
        // (parameter, marked nullable) for each pointer parameter, in order.
        let params: Vec<(String, bool)> = rest
            .rsplit_once(')')
            .map_or("", |(params, _)| params)
            .split(',')
            .filter(|param| param.contains('*') && !param.contains('('))
            .map(|param| {
                // The last mark is the parameter's own (`T *MOQT_NULLABLE *MOQT_NONNULL out`).
                let nullable = param.rfind("MOQT_NULLABLE") > param.rfind("MOQT_NONNULL");
                (param.split_whitespace().last().unwrap_or("").to_string(), nullable)
            })
            .collect();
        let doc: String = item
            .doc
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim_start_matches([' ', '/', '*']))
            .collect::<Vec<_>>()
            .join(" ");
        for (index, (param, nullable)) in params.iter().enumerate() {
            let handle_phrase = index == 0 && (doc.contains("for NULL") || doc.contains("NULL is accepted"));
            let named =
                [format!("for a NULL {param}"), format!("`{param}` (if not NULL)"), format!("`{param}` is NULL")]
                    .iter()
                    .any(|phrase| doc.contains(phrase.as_str()));
            if handle_phrase || named {
                checked += 1;
                if !nullable {
                    wrong.push(format!("{name}: {param}"));
                }
            }
        }
    }
    assert!(checked > 30, "only {checked} NULL-tolerant parameters found: the check is broken");
    assert!(wrong.is_empty(), "MOQT_NONNULL where the doc allows NULL (add them to NULLABLE_PARAMS): {wrong:#?}");
}

/// Every name the header declares (functions, types, struct tags, enum constants, macros) starts
/// with moqt_ or MOQT_: the header shares a process with libmoq, GStreamer and the host's own.
#[test]
fn every_name_the_header_declares_is_prefixed() {
    let header = committed();
    let code = code(&header);
    let mut names: Vec<String> = Vec::new();
    let ident = |text: &str| -> String { text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for line in header.lines() {
        if let Some(rest) = line.trim_start().strip_prefix('#').map(str::trim_start)
            && let Some(name) = rest.strip_prefix("define")
        {
            names.push(ident(name.trim_start()));
        }
    }
    for keyword in ["struct ", "enum "] {
        for (at, _) in code.match_indices(keyword) {
            names.push(ident(&code[at + keyword.len()..]));
        }
    }
    for statement in code.split(';') {
        let statement = statement.trim();
        // `} NAME` ends `typedef struct TAG { ... } NAME`.
        if let Some(name) = statement.strip_prefix('}') {
            names.push(ident(name.trim_start()));
            continue;
        }
        if let Some(typedef) = statement.strip_prefix("typedef").filter(|t| !t.contains('{')) {
            // `typedef T NAME` or `typedef R (*MOQT_NULLABLE NAME)(...)`.
            let name = match typedef.find("(*") {
                Some(at) => ident(typedef[at + 2..].trim_start().trim_start_matches("MOQT_NULLABLE").trim_start()),
                None => typedef.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("").to_string(),
            };
            names.push(name);
        }
    }
    // Functions: an identifier right before '(' at the start of a declaration.
    for (at, _) in code.match_indices('(') {
        let before: String = code[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !before.is_empty() && !code[..at].ends_with(' ') {
            names.push(before);
        }
    }
    // Enum constants: the first word of each line inside an enum body.
    for body in code.split("enum ").skip(1) {
        // `enum NAME {` opens a body; `typedef enum NAME NAME;` does not.
        let Some(open) = body.find('{') else { continue };
        let Some(close) = body.find('}') else { continue };
        if open > close || body[..open].split_whitespace().count() != 1 {
            continue;
        }
        for line in body[open + 1..close].lines() {
            let name = ident(line.trim_start());
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names.retain(|name| !name.is_empty());
    assert!(names.len() > 100, "only {} names found: the parser is broken", names.len());
    let unprefixed: Vec<&String> =
        names.iter().filter(|name| !name.starts_with("moqt_") && !name.starts_with("MOQT_")).collect();
    assert!(unprefixed.is_empty(), "names in moqt.h without the moqt_/MOQT_ prefix: {unprefixed:?}");
}
