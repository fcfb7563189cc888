//! Every committed seed and every input a fuzzer ever crashed on, through its target, on stable.

use std::path::Path;

/// The targets by the directory name their inputs live under (`fuzz/corpus/<name>`,
/// `fuzz/regressions/<name>`).
/// A fuzz target's entry point.
type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("jsonrpc_envelope", super::jsonrpc_envelope),
    ("sse_stream", super::sse_stream),
    ("jwt_token", super::jwt_token),
    ("express_path", super::express_path),
    ("config_file", super::config_file),
    ("oauth_bodies", super::oauth_bodies),
];

fn inputs(kind: &str, target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
}

#[test]
fn every_target_has_a_seed_corpus_and_takes_it() {
    for (name, target) in TARGETS {
        let seeds = inputs("corpus", name);
        assert!(seeds.len() >= 3, "fuzz/corpus/{name} holds {} seeds; scripts/fuzz-seeds.py writes them", seeds.len());
        for seed in &seeds {
            target(seed);
        }
    }
}

#[test]
fn every_input_a_fuzzer_crashed_on_passes() {
    for (name, target) in TARGETS {
        for input in inputs("regressions", name) {
            target(&input);
        }
    }
}

#[test]
fn the_fuzz_crate_names_the_same_targets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}
