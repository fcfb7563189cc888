//! The code's shape, checked: modules import only from layers below them (docs/architecture.md),
//! files and functions stay small, and tests wait on conditions rather
//! than sleeping and take their settings explicitly rather than through the process environment.

use std::path::{Path, PathBuf};

use crate::common::repo;

/// Bottom to top. A module may use modules of its own layer or below, never above. `lib.rs` and
/// docs/architecture.md list the same layers (checked below).
const LAYERS: &[&[&str]] = &[
    &["labels", "config", "mcp", "oauth", "shares", "clock", "bounded"],
    &["metrics"],
    &["identity", "session", "status"],
    &["detect"],
    &["audit", "checklist"],
    &["http_client", "tls"],
    &["proxy"],
    &["export", "admin", "reload", "probe", "report"],
    &["cluster"],
    &["app", "demo", "fuzz"],
    &["cli"],
];

/// Modules only the named ones may use, whatever their layers: cluster mode is wired by the app
/// alone, and no part of the request path learns from it whether the store is up.
const ONLY_USED_BY: &[(&str, &[&str])] = &[("cluster", &["app"])];

/// The imports allowed between two modules of the same layer, user first: one direction only,
/// each named here so that a new one is a decision.
const SAME_LAYER: &[(&str, &str)] = &[("mcp", "labels"), ("config", "mcp"), ("checklist", "audit"), ("demo", "app")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level module a file under `src/` belongs to (`src/proxy/body.rs` → `proxy`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments, string and char literals, and `#[cfg(test)]` modules.
fn code_only(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let mut out = String::new();
        let mut chars = line.chars().peekable();
        let mut in_str = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' if in_str => {
                    chars.next();
                }
                '"' => in_str = !in_str,
                '/' if !in_str && chars.peek() == Some(&'/') => break,
                '\'' if !in_str => {
                    // A char literal ('{', '\n') or a lifetime ('a): skip the literal only.
                    let rest: String = chars.clone().take(3).collect();
                    if rest.starts_with('\\') {
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                        }
                    } else if rest.chars().nth(1) == Some('\'') {
                        chars.next();
                        chars.next();
                    } else {
                        out.push(c);
                    }
                }
                _ if in_str => {}
                _ => out.push(c),
            }
        }
        lines.push(out);
    }
    lines
}

/// What is wrong with `module` (in `file`, line `n`) using `used`, if anything; same-layer
/// imports are noted in `same_layer`.
fn import_problem(
    file: &Path,
    n: usize,
    module: &str,
    used: &str,
    same_layer: &mut std::collections::BTreeSet<(String, String)>,
) -> Option<String> {
    let own = layer_of(module)?;
    let at = format!("{}:{}", file.display(), n + 1);
    if let Some((_, users)) = ONLY_USED_BY.iter().find(|(m, _)| *m == used) {
        if used != module && !users.contains(&module) {
            return Some(format!("{at}: `{module}` uses `{used}`, which only {users:?} may use"));
        }
    }
    match layer_of(used) {
        Some(l) if l == own && used != module => {
            same_layer.insert((module.to_string(), used.to_string()));
            (!SAME_LAYER.contains(&(module, used))).then(|| {
                format!("{at}: `{module}` uses `{used}` of its own layer (layer {own}); allowed: {SAME_LAYER:?}")
            })
        }
        Some(l) if l > own => Some(format!("{at}: `{module}` (layer {own}) uses `{used}` (layer {l})")),
        None if !used.is_empty() => Some(format!("{at}: `{used}` is in no layer")),
        _ => None,
    }
}

#[test]
fn layers_import_only_from_below() {
    let src = repo().join("src");
    let mut violations = Vec::new();
    let mut same_layer = std::collections::BTreeSet::new();
    for file in rust_files(&src) {
        let module = module_of(&src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in code_only(&text).iter().enumerate() {
            for part in line.split("crate::").skip(1) {
                let used: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                violations.extend(import_problem(&file, n, &module, &used, &mut same_layer));
            }
        }
    }
    // Every top-level module of the library is placed in a layer.
    for file in rust_files(&src) {
        let module = module_of(&src, &file);
        if !["lib", "main"].contains(&module.as_str()) && layer_of(&module).is_none() {
            violations.push(format!("{}: module `{module}` is in no layer", file.display()));
        }
    }
    // Same-layer imports go one way only, and the list holds no import that is gone.
    for (user, used) in SAME_LAYER {
        if SAME_LAYER.contains(&(used, user)) {
            violations.push(format!("`{user}` and `{used}` may not import each other both ways"));
        }
        if !same_layer.contains(&(user.to_string(), used.to_string())) {
            violations.push(format!("SAME_LAYER lists `{user}` → `{used}`, which no code uses any more"));
        }
    }
    assert!(violations.is_empty(), "imports against the layering:\n{}", violations.join("\n"));
}

/// Lines of each function outside test modules, found by matching braces.
fn long_functions(file: &Path, max: usize) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines = code_only(&text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let is_fn = ["fn ", "async fn ", "const fn "]
            .iter()
            .flat_map(|f| ["", "pub ", "pub(crate) ", "pub(super) "].map(move |v| format!("{v}{f}")))
            .any(|p| t.starts_with(&p));
        if is_fn {
            let (mut depth, mut opened, mut j) = (0i32, false, i);
            while j < lines.len() {
                for c in lines[j].chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth == 0) || (!opened && lines[j].trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            let len = j - i + 1;
            if opened && len > max {
                let name = t.split("fn ").nth(1).unwrap_or("").split(['(', '<']).next().unwrap_or("");
                found.push(format!("{}:{} fn {name} has {len} lines", file.display(), i + 1));
            }
        }
        i += 1;
    }
    found
}

#[test]
fn files_and_functions_stay_small() {
    let mut problems = Vec::new();
    for dir in ["src", "tests/e2e"] {
        for file in rust_files(&repo().join(dir)) {
            let n = std::fs::read_to_string(&file).unwrap().lines().count();
            if n > 400 {
                problems.push(format!("{} has {n} lines (at most 400)", file.display()));
            }
        }
    }
    for file in rust_files(&repo().join("src")) {
        if !file.ends_with("tests.rs") {
            problems.extend(long_functions(&file, 60));
        }
    }
    // Tests read as a story: helpers keep each test function short too.
    for file in rust_files(&repo().join("tests/e2e")) {
        problems.extend(long_functions(&file, 60));
    }
    assert!(problems.is_empty(), "split these:\n{}", problems.join("\n"));
}

#[test]
fn tests_wait_on_conditions_and_leave_the_environment_alone() {
    let mut problems = Vec::new();
    let dirs = [repo().join("tests/e2e"), repo().join("src")];
    for file in dirs.iter().flat_map(|d| rust_files(d)) {
        let text = std::fs::read_to_string(&file).unwrap();
        // In src/, only the test modules are tests.
        let first_test_line = if file.starts_with(repo().join("src")) && !file.ends_with("tests.rs") {
            text.lines().position(|l| l.starts_with("#[cfg(test)]")).unwrap_or(usize::MAX)
        } else {
            0
        };
        let tests_part: Vec<&str> = text.lines().skip(first_test_line).collect();
        // A sleep is fine on paused time only: in a test whose own attribute says
        // `start_paused = true`, or after the test itself called `time::pause()`.
        let (mut attribute_paused, mut paused) = (false, false);
        for (n, line) in tests_part.iter().enumerate() {
            let n = n + first_test_line;
            let code = line.split("//").next().unwrap_or("");
            let trimmed = code.trim_start();
            if trimmed.starts_with("#[tokio::test") || trimmed.starts_with("#[test]") {
                attribute_paused = trimmed.contains("start_paused = true");
            } else if ["fn ", "async fn ", "pub fn ", "pub async fn ", "pub(crate) fn ", "pub(crate) async fn "]
                .iter()
                .any(|p| trimmed.starts_with(p))
            {
                paused = std::mem::take(&mut attribute_paused);
            }
            paused |= code.contains("time::pause()");
            if (code.contains("set_var(") || code.contains("remove_var(")) && !file.ends_with("structure.rs") {
                problems.push(format!("{}:{}: changes the process environment", file.display(), n + 1));
            }
            // `eventually` in common/mod.rs polls at POLL_INTERVAL: the one sleep the suite has.
            let poll = file.ends_with("common/mod.rs") && code.contains("sleep(POLL_INTERVAL)");
            if code.contains("sleep(") && !paused && !poll && !file.ends_with("structure.rs") {
                problems.push(format!("{}:{}: sleeps instead of waiting on a condition", file.display(), n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The names in backticks of `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn lib_rs_and_the_architecture_page_name_the_tested_layers() {
    let want: Vec<Vec<String>> = LAYERS.iter().map(|l| l.iter().map(ToString::to_string).collect()).collect();
    // lib.rs: `//! N. `a`, `b`: ...`, one numbered item per layer, bottom first.
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    let from_lib: Vec<Vec<String>> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter_map(|l| l.split_once(". ").filter(|(n, _)| n.parse::<usize>().is_ok()).map(|(_, rest)| rest))
        .map(|item| backticked(item.split(':').next().unwrap_or("")))
        .collect();
    assert_eq!(from_lib, want, "src/lib.rs lists other layers than tests/e2e/structure.rs");
    // docs/architecture.md: the table `| layer | modules | what they own |`.
    let page = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let from_page: Vec<Vec<String>> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter(|l| l.split(' ').next().is_some_and(|n| n.parse::<usize>().is_ok()))
        .map(|l| backticked(l.split('|').nth(1).unwrap_or("")))
        .collect();
    assert_eq!(from_page, want, "docs/architecture.md lists other layers than tests/e2e/structure.rs");
}
