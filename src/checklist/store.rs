//! The state file: `<checklist.state_dir>/checklist.json`, one JSON document replaced atomically
//! (written beside it, synced, renamed over it), so a crash leaves the old or the new state,
//! never half of one. It holds fingerprints, client names, tool names and times; never a token.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ages::Seen;
use super::privileges::ClientTools;
use crate::detect::reach::Reached;

pub(crate) const FILE: &str = "checklist.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub version: u32,
    /// Unix seconds of the write.
    pub written_at: u64,
    /// Least recently used first.
    pub credentials: Vec<Seen>,
    pub privileges: Vec<ClientTools>,
    /// Credentials refused on MCP that an actions API answered, oldest first (absent in the
    /// files of versions before it).
    #[serde(default)]
    pub reach: Vec<Reached>,
}

impl State {
    pub(crate) fn new(
        written_at: u64,
        credentials: Vec<Seen>,
        privileges: Vec<ClientTools>,
        reach: Vec<Reached>,
    ) -> Self {
        Self { version: VERSION, written_at, credentials, privileges, reach }
    }
}

/// The evidence still within the report's window (`since`: its start, in Unix seconds).
pub(crate) fn reach_since(mut reach: Vec<Reached>, since: u64) -> Vec<Reached> {
    reach.retain(|r| r.at >= since);
    reach
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The state in `dir`: `Ok(None)` when there is none yet.
pub(crate) fn read(dir: &Path) -> Result<Option<State>, String> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let state: State = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if state.version != VERSION {
        return Err(format!("{}: version {} is not {VERSION}", path.display(), state.version));
    }
    Ok(Some(state))
}

/// Replaces the state in `dir` with `state`.
pub(crate) fn write(dir: &Path, state: &State) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path(dir))?;
    // The rename itself survives a crash once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Keeps an unreadable state file for inspection instead of overwriting it.
pub(crate) fn set_aside(dir: &Path) -> std::io::Result<PathBuf> {
    let aside = dir.join(format!("{FILE}.unreadable"));
    std::fs::rename(path(dir), &aside)?;
    Ok(aside)
}
