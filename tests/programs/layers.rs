//! The layers of src/ hold: no module imports one of its own layer or of a higher one. Read from
//! the source text (`crate::name` paths), so a new import that breaks the picture in lib.rs fails
//! here with the file and the line.

use std::path::Path;

/// Each top-level module of src/ and its layer, bottom (0) up. Modules on one layer are
/// independent of each other.
const LAYERS: &[(&str, u32)] = &[
    ("coding", 0),
    ("wire", 1),
    ("model", 1),
    ("transport", 1),
    ("auth", 2),
    ("media", 2),
    ("session", 3),
    ("endpoint", 4),
    ("reconnect", 5),
    ("relay", 6),
    ("ffi", 8),
    ("fuzzing", 8),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// The top-level module a file of src/ belongs to (`src/model/group.rs` -> `model`).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file of src/: `model/group.rs` -> [model, group], `media/mod.rs` -> [media].
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .map(|c| c.trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules named by every `crate::` and `super::` path in `code` (comments already
/// removed), with the byte offset where each path starts: `crate::a::x`, each name of a group
/// `crate::{a::x, b}` (across lines too), and `super::super::a` resolved from `own_path`.
fn imported_modules(code: &str, own_path: &[String]) -> Vec<(usize, String)> {
    let ident = |text: &str| -> String { text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
            continue; // `$crate::`, `other_crate::`, `x::crate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at the group's first depth.
            let mut depth = 1;
            let mut expecting_name = true;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expecting_name = true,
                    c if depth == 1 && expecting_name && (c.is_alphanumeric() || c == '_') => {
                        found.push((at, ident(&group[offset..])));
                        expecting_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push((at, ident(rest)));
        }
    }
    for (at, _) in code.match_indices("super::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // the second `super::` of a chain is counted with the first
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(next) = rest.strip_prefix("super::") {
            ups += 1;
            rest = next;
        }
        // Up to the crate root, the next name is a top-level module; below it, `super::` stays
        // inside the own top-level module.
        if ups >= own_path.len() {
            found.push((at, ident(rest)));
        }
    }
    found
}

#[test]
fn no_module_imports_its_own_layer_or_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let Some(own) = module_of(relative).and_then(|m| layer(&m).map(|l| (m, l))) else { continue };
        checked += 1;
        let text = std::fs::read_to_string(file).unwrap();
        // Comments blanked to spaces, so offsets still map to lines.
        let code: String = text
            .lines()
            .map(|line| match line.find("//") {
                Some(at) => format!("{}{}\n", &line[..at], " ".repeat(line.len() - at)),
                None => format!("{line}\n"),
            })
            .collect();
        for (at, name) in imported_modules(&code, &module_path(relative)) {
            let Some(target) = layer(&name) else { continue };
            if name != own.0 && target >= own.1 {
                let number = code[..at].matches('\n').count() + 1;
                broken.push(format!(
                    "{}:{number}: {} (layer {}) imports {name} (layer {target})",
                    relative.display(),
                    own.0,
                    own.1
                ));
            }
        }
    }
    assert!(checked > 50, "only {checked} files of src/ were checked");
    let unknown: Vec<_> = files
        .iter()
        .filter_map(|f| module_of(f.strip_prefix(&src).unwrap()))
        .filter(|m| layer(m).is_none() && m != "lib" && m != "bin")
        .collect();
    assert!(unknown.is_empty(), "modules with no layer in LAYERS: {unknown:?}");
    assert!(broken.is_empty(), "imports against the layers:\n{}", broken.join("\n"));
}

#[test]
fn grouped_and_relative_imports_are_read() {
    let own = ["model".to_string(), "group".to_string()];
    let names = |code: &str| imported_modules(code, &own).into_iter().map(|(_, name)| name).collect::<Vec<_>>();
    assert_eq!(names("use crate::wire::Setup;"), ["wire"]);
    assert_eq!(names("use crate::{coding::Path, session::{A, B},\n    relay};"), ["coding", "session", "relay"]);
    assert_eq!(names("use super::super::session::X;"), ["session"]);
    assert_eq!(names("use super::track::X;"), Vec::<String>::new());
    assert_eq!(names("macro_rules! m { () => { $crate::x } }"), Vec::<String>::new());
}
