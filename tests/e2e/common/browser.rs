//! A real headless Chromium (Debian's `chromium`, installed by `scripts/test.sh`) driven through
//! playwright-core (`tests/peers/browser.mjs`), one browser for a whole test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::peers::repo;

/// What one page load did: every URL the page requested, and its `data-key` cells.
#[derive(Debug)]
pub struct Visit {
    pub requests: Vec<String>,
    pub values: BTreeMap<String, String>,
}

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    pub fn start() -> Self {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "Chromium is not installed: run scripts/test.sh, or `apt-get install chromium`"
        );
        let script = repo().join("tests/peers/browser.mjs");
        assert!(
            repo().join("tests/peers/node_modules/playwright-core").exists(),
            "playwright-core is not installed: run scripts/test.sh, or `npm ci --prefix tests/peers`"
        );
        let mut child = Command::new("node")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs tests/peers/browser.mjs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, stdout }
    }

    fn ask(&mut self, command: &serde_json::Value) -> serde_json::Value {
        tokio::task::block_in_place(|| {
            writeln!(self.stdin, "{command}").unwrap();
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("the browser answers");
            let answer: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
            assert!(answer.get("error").is_none(), "the browser failed: {answer}");
            answer
        })
    }

    /// Loads `url` in a fresh page, optionally saving a full-page screenshot.
    pub fn load(&mut self, url: &str, screenshot: Option<&Path>) -> Visit {
        let a = self.ask(&serde_json::json!({"load": url, "screenshot": screenshot}));
        let requests = a["requests"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
        let values = a["values"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        Visit { requests, values }
    }

    /// Renders a captured terminal screen (a text file) as a PNG.
    pub fn terminal_screenshot(&mut self, text: &Path, png: &Path) {
        self.ask(&serde_json::json!({"text": text, "screenshot": png}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
