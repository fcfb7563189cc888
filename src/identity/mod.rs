//! Who is calling, without keeping the secret: keyed HMAC-SHA256 fingerprints of bearer tokens,
//! and the directory that maps fingerprints to Backstage static-token subjects (from this tap's
//! config or imported from Backstage's own `app-config.yaml`); the bounded `client` label
//! (`naming`); what a Backstage user token says about its holder (`jwt`).

pub(crate) mod jwt;
pub(crate) mod naming;
pub(crate) mod oauth;
mod who;
pub(crate) use who::{CredentialCache, Identities, Known};

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::config::{Clients, Environment};

/// `client` label when no credential was sent.
pub(crate) const CLIENT_NONE: &str = "none";
/// `client` label for a credential the tap does not know.
pub(crate) const CLIENT_UNKNOWN: &str = "unknown";

/// A keyed HMAC of a token. The token itself is never kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A 64-bit digest for in-process grouping (session identity).
    pub fn short(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

/// The first 16 hex digits: what logs, audit lines and alerts show.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Where the fingerprint key came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    File,
    Env,
    /// Random per process: fingerprints change at every restart.
    Random,
}

#[derive(Clone)]
pub struct Fingerprinter {
    mac: Hmac<Sha256>,
    pub source: KeySource,
}

impl Fingerprinter {
    pub fn new(key: &[u8], source: KeySource) -> Self {
        Self { mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"), source }
    }

    /// The key from a file, else the environment variable, else random bytes.
    pub fn from_config(audit: &crate::config::Audit, env: &Environment) -> anyhow::Result<Self> {
        if let Some(path) = &audit.fingerprint_key_file {
            let key = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("audit.fingerprint_key_file {}: {e}", path.display()))?;
            let key = key.trim_ascii();
            anyhow::ensure!(key.len() >= 16, "audit.fingerprint_key_file {}: use at least 16 bytes", path.display());
            return Ok(Self::new(key, KeySource::File));
        }
        if let Some(key) = env.var(&audit.fingerprint_key_env) {
            anyhow::ensure!(key.len() >= 16, "{} must hold at least 16 bytes", audit.fingerprint_key_env);
            return Ok(Self::new(key.as_bytes(), KeySource::Env));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no random fingerprint key: {e}"))?;
        Ok(Self::new(&key, KeySource::Random))
    }

    pub fn fingerprint(&self, token: &str) -> Fingerprint {
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        Fingerprint(mac.finalize().into_bytes().into())
    }
}

/// What the `Authorization` header held, reduced to what the audit may keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    Missing,
    /// Present but not `Bearer <token>`.
    Malformed,
    Token {
        fingerprint: Fingerprint,
        client: Arc<str>,
    },
}

impl Credential {
    pub(crate) fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            Credential::Token { fingerprint, .. } => Some(*fingerprint),
            _ => None,
        }
    }

    /// A 64-bit key grouping requests by credential (sessions, client names): the fingerprint's
    /// digest, or a fixed value for no or a malformed credential.
    pub(crate) fn key(&self) -> u64 {
        match self {
            Credential::Token { fingerprint, .. } => fingerprint.short(),
            Credential::Malformed => 1,
            Credential::Missing => 0,
        }
    }
}

/// The token of a `Bearer` header, by Backstage's rule: the scheme (any case), spaces, then one
/// token of non-space characters.
pub(crate) fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    // `char::is_whitespace`, byte by byte for the ASCII tokens clients send.
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r');
    let spaced = if token.is_ascii() { token.bytes().any(space) } else { token.contains(char::is_whitespace) };
    (!token.is_empty() && !spaced).then_some(token)
}

/// Maps fingerprints (and SHA-256 hashes, for configs that hold no token) to subjects.
#[derive(Default)]
pub(crate) struct ClientDirectory {
    by_fingerprint: HashMap<Fingerprint, Arc<str>>,
    by_sha256: HashMap<[u8; 32], Arc<str>>,
    subjects: Vec<Arc<str>>,
}

impl fmt::Debug for ClientDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientDirectory").field("subjects", &self.subjects).finish()
    }
}

impl ClientDirectory {
    /// Builds the directory from config. Returns it with warnings for entries left out.
    pub(crate) fn load(clients: &Clients, env: &Environment, fp: &Fingerprinter) -> (Self, Vec<String>) {
        let mut dir = ClientDirectory::default();
        let mut warnings = Vec::new();
        for (i, t) in clients.tokens.iter().enumerate() {
            if let Some(hex) = &t.token_sha256 {
                match decode_hex(hex) {
                    Some(hash) => {
                        let subject = dir.subject(&t.subject, clients.max_subjects);
                        dir.by_sha256.insert(hash, subject);
                    }
                    None => warnings.push(format!("clients.tokens[{i}]: token_sha256 is not 64 hex digits")),
                }
                continue;
            }
            let token = match (&t.token_env, &t.token_file) {
                (Some(var), _) => env.var(var).ok_or_else(|| format!("environment variable {var} is not set")),
                (_, Some(path)) => std::fs::read_to_string(path)
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| format!("{}: {e}", path.display())),
                _ => Err("no token source".to_string()),
            };
            match token {
                Ok(token) if !token.trim().is_empty() => {
                    dir.add(&token, &t.subject, fp, clients.max_subjects);
                }
                Ok(_) => warnings.push(format!("clients.tokens[{i}] ({}): the token is empty", t.subject)),
                Err(e) => warnings.push(format!("clients.tokens[{i}] ({}): {e}", t.subject)),
            }
        }
        for path in &clients.backstage_app_config {
            match import_backstage(path, env) {
                Ok((entries, mut w)) => {
                    warnings.append(&mut w);
                    for (token, subject) in entries {
                        dir.add(&token, &subject, fp, clients.max_subjects);
                    }
                }
                Err(e) => warnings.push(format!("{}: {e}", path.display())),
            }
        }
        (dir, warnings)
    }

    fn subject(&mut self, subject: &str, max: usize) -> Arc<str> {
        if let Some(s) = self.subjects.iter().find(|s| &***s == subject) {
            return s.clone();
        }
        if self.subjects.len() >= max {
            return CLIENT_UNKNOWN.into();
        }
        let s: Arc<str> = subject.into();
        self.subjects.push(s.clone());
        s
    }

    /// Adds a token; like Backstage, the first entry for a token wins.
    pub(crate) fn add(&mut self, token: &str, subject: &str, fp: &Fingerprinter, max_subjects: usize) {
        let subject = self.subject(subject, max_subjects);
        self.by_fingerprint.entry(fp.fingerprint(token)).or_insert(subject);
    }

    /// The credential of a request's `Authorization` header.
    pub(crate) fn credential(&self, header: Option<&http::HeaderValue>, fp: &Fingerprinter) -> Credential {
        let Some(value) = header else { return Credential::Missing };
        let Some(token) = bearer_token(value.as_bytes()) else { return Credential::Malformed };
        let fingerprint = fp.fingerprint(token);
        let client = match self.by_fingerprint.get(&fingerprint) {
            Some(s) => s.clone(),
            None if self.by_sha256.is_empty() => CLIENT_UNKNOWN.into(),
            None => {
                let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                self.by_sha256.get(&hash).cloned().unwrap_or_else(|| CLIENT_UNKNOWN.into())
            }
        };
        Credential::Token { fingerprint, client }
    }

    /// Subjects that may appear as `client` label values.
    pub(crate) fn subjects(&self) -> &[Arc<str>] {
        &self.subjects
    }

    /// Fingerprints of every token the directory knows (for token-set change events).
    pub(crate) fn fingerprints(&self) -> Vec<(Fingerprint, Arc<str>)> {
        let mut v: Vec<_> = self.by_fingerprint.iter().map(|(f, s)| (*f, s.clone())).collect();
        v.sort_by_key(|(f, _)| f.to_string());
        v
    }
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Problems found while loading, each a sentence for the operator.
pub(crate) type Warnings = Vec<String>;

/// Static tokens from a Backstage `app-config.yaml`: `backend.auth.externalAccess[]` entries of
/// `type: static` with `options.token` and `options.subject`. `${VAR}` is substituted from the
/// environment as Backstage does (`$${` escapes); an entry whose variable is unset is skipped.
pub(crate) fn import_backstage(path: &Path, env: &Environment) -> anyhow::Result<(Vec<(String, String)>, Warnings)> {
    let text = std::fs::read_to_string(path)?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let list = doc
        .get("backend")
        .and_then(|b| b.get("auth"))
        .and_then(|a| a.get("externalAccess"))
        .and_then(|e| e.as_sequence())
        .cloned()
        .unwrap_or_default();
    for (i, entry) in list.iter().enumerate() {
        if entry.get("type").and_then(|t| t.as_str()) != Some("static") {
            continue;
        }
        let options = entry.get("options");
        let token = options.and_then(|o| o.get("token")).and_then(|t| t.as_str());
        let subject = options.and_then(|o| o.get("subject")).and_then(|t| t.as_str());
        let (Some(token), Some(subject)) = (token, subject) else {
            warnings.push(format!("{}: externalAccess[{i}] has no options.token or options.subject", path.display()));
            continue;
        };
        match (substitute(token, env), substitute(subject, env)) {
            (Ok(token), Ok(subject)) => entries.push((token, subject)),
            (Err(var), _) | (_, Err(var)) => warnings.push(format!(
                "{}: externalAccess[{i}] uses ${{{var}}}, which is not set here; that token is not mapped",
                path.display()
            )),
        }
    }
    Ok((entries, warnings))
}

/// Backstage's `${VAR}` substitution; returns the name of the first unset variable.
fn substitute(s: &str, env: &Environment) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(var) = after.strip_prefix("${") {
            let end = var.find('}').ok_or_else(|| var.to_string())?;
            let name = var[..end].trim();
            out.push_str(&env.var(name).ok_or_else(|| name.to_string())?);
            rest = &var[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprinter {
        Fingerprinter::new(b"0123456789abcdef", KeySource::File)
    }

    #[test]
    fn bearer_parsing_follows_backstage() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bearer   abc"), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer a b"), None);
    }

    #[test]
    fn a_token_with_any_whitespace_inside_is_no_token() {
        for c in (0u8..128).map(char::from).chain(['\u{a0}', '\u{2003}', 'é']) {
            let header = format!("Bearer a{c}b");
            assert_eq!(bearer_token(header.as_bytes()), (!c.is_whitespace()).then_some(&header[7..]), "{c:?}");
        }
    }

    #[test]
    fn fingerprints_are_keyed_stable_and_short() {
        let a = fp().fingerprint("secret-token-1");
        assert_eq!(a, fp().fingerprint("secret-token-1"));
        assert_ne!(a, Fingerprinter::new(b"another-key-0000", KeySource::File).fingerprint("secret-token-1"));
        assert_eq!(a.to_string().len(), 16);
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn directory_maps_tokens_hashes_and_limits_subjects() {
        let mut clients = Clients::default();
        clients.tokens.push(crate::config::ClientToken {
            subject: "hashed".into(),
            token_sha256: Some(Sha256::digest(b"hashed-token").iter().map(|b| format!("{b:02x}")).collect()),
            ..Default::default()
        });
        clients.max_subjects = 2;
        let f = fp();
        let (mut dir, warnings) = ClientDirectory::load(&clients, &Environment::fixed([]), &f);
        assert!(warnings.is_empty(), "{warnings:?}");
        dir.add("tok-a", "vscode", &f, 2);
        dir.add("tok-b", "third", &f, 2);
        let h = |v: &str| http::HeaderValue::from_str(v).unwrap();
        assert_eq!(dir.credential(Some(&h("Bearer tok-a")), &f).client(), "vscode");
        assert_eq!(dir.credential(Some(&h("Bearer hashed-token")), &f).client(), "hashed");
        assert_eq!(dir.credential(Some(&h("Bearer tok-b")), &f).client(), CLIENT_UNKNOWN, "over the subject cap");
        assert_eq!(dir.credential(Some(&h("Bearer nope")), &f).client(), CLIENT_UNKNOWN);
        assert_eq!(dir.credential(Some(&h("Token x")), &f), Credential::Malformed);
        assert_eq!(dir.credential(None, &f).client(), CLIENT_NONE);
    }

    #[test]
    fn backstage_app_config_is_imported_with_substitution() {
        let dir = std::env::temp_dir().join(format!("mcp-tap-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app-config.yaml");
        let env = Environment::fixed([("MCP_TAP_TEST_IMPORT_TOKEN", "from-env-123")]);
        std::fs::write(
            &path,
            "backend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {token: '${MCP_TAP_TEST_IMPORT_TOKEN}', subject: ci}\n      - type: static\n        options: {token: 'lit$${x}', subject: literal}\n      - type: static\n        options: {token: '${MCP_TAP_UNSET_VAR_XYZ}', subject: missing}\n      - type: legacy\n        options: {secret: abc}\n",
        )
        .unwrap();
        let (entries, warnings) = import_backstage(&path, &env).unwrap();
        assert_eq!(entries, vec![("from-env-123".into(), "ci".into()), ("lit${x}".into(), "literal".into())]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("${MCP_TAP_UNSET_VAR_XYZ}") && !warnings[0].contains("from-env"));
    }
}
