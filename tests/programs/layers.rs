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
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let name: String =
                    code[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let Some(target) = layer(&name) else { continue };
                if name != own.0 && target >= own.1 {
                    broken.push(format!(
                        "{}:{}: {} (layer {}) imports {name} (layer {target})",
                        relative.display(),
                        number + 1,
                        own.0,
                        own.1
                    ));
                }
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
