//! The docs work as written: every relative link in README.md and docs/ names a file of the
//! repository, and the README's command with a config file starts the tap.

use std::path::{Path, PathBuf};

use crate::common::repo;

/// The markdown pages a newcomer reads.
fn pages() -> Vec<PathBuf> {
    let root = repo();
    let mut pages = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// The targets of `[text](target)` and `![alt](target)` outside code blocks and code spans.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Code spans may hold `](` that is not a link.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join("``");
        let line = if line.contains("](`") || line.contains("`](") { line.to_string() } else { prose };
        for part in line.split("](").skip(1) {
            if let Some(end) = part.find(')') {
                out.push(part[..end].to_string());
            }
        }
    }
    out
}

fn is_relative(target: &str) -> bool {
    !(target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:"))
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repo();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap_or(Path::new("."));
        for target in link_targets(&text).iter().filter(|t| is_relative(t)) {
            let file = target.split('#').next().unwrap_or_default();
            checked += 1;
            if !dir.join(file).exists() {
                broken.push(format!("{}: {target}", page.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(checked > 20, "the link reader found only {checked} relative links: it is broken");
    assert!(broken.is_empty(), "relative links that name no file:\n{}", broken.join("\n"));
}

#[test]
fn the_link_reader_finds_a_broken_link() {
    let targets = link_targets("see [a](docs/a.md) and ![img](images/x.png), `[not](code)`\n```\n[no](b.md)\n```\n");
    assert_eq!(targets, vec!["docs/a.md", "images/x.png"]);
}
