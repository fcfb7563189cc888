//! Reading a config file: parse strictly (every unknown key reported), validate (every problem
//! reported at once, worded as advice), and tell which changes a running tap cannot take.

use std::path::Path;

use super::{is_server_key, Config, ConfigError};

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("{}: cannot read the config file: {e}", path.display())))?;
        Self::parse(&text).map_err(|mut e| {
            for p in &mut e.problems {
                *p = format!("{}: {p}", path.display());
            }
            e
        })
    }

    /// Parses YAML text; unknown keys are collected (all of them) rather than stopping at the first.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let config = if text.trim().is_empty() {
            Config::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            let mut unknown = Vec::new();
            let parsed: Result<Config, _> = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
            for key in unknown {
                // An optional section shows as `?` in the path (`tls.?.cert_fil`): not a key.
                let key = key.replace(".?", "");
                problems.push(format!("unknown key `{key}`"));
            }
            match parsed {
                Ok(c) => c,
                Err(e) => {
                    problems.push(e.to_string());
                    return Err(ConfigError { problems });
                }
            }
        };
        problems.extend(config.validate());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Every semantic problem, worded as advice to the operator.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.validate_upstream(&mut p);
        self.validate_routes(&mut p);
        if self.decode.max_request_bytes == 0 || self.decode.max_message_bytes == 0 || self.decode.max_batch == 0 {
            p.push("decode limits must be greater than zero".into());
        }
        if self.decode.max_request_bytes > 64 << 20 || self.decode.max_message_bytes > 64 << 20 {
            p.push("decode limits above 64 MiB are refused: the tap keeps a copy of what it decodes".into());
        }
        let b = &self.sessions.duration_buckets;
        if b.is_empty() || b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            p.push("sessions.duration_buckets must be positive and strictly increasing".into());
        }
        self.limits.validate(&mut p);
        self.audit.validate(&mut p);
        self.clients.validate(&mut p);
        self.bursts.validate(&mut p);
        self.alertmanager.validate(&mut p);
        self.canary.validate(&mut p);
        self.otlp.validate(&mut p);
        self.checklist.validate(&mut p);
        self.user_tokens.validate(&mut p);
        self.oauth.validate(&mut p);
        self.cluster.validate(&self.env, &mut p);
        if let Some(path) = &self.web_config_file {
            if let Err(problems) = super::WebConfig::load(path) {
                p.extend(problems.into_iter().map(|e| format!("web_config_file: {e}")));
            }
        }
        if let Some(tls) = &self.tls {
            p.extend(tls.problems());
        }
        for path in &self.admin_open_paths {
            if !path.starts_with('/') {
                p.push(format!("admin_open_paths: `{path}` must start with `/`"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!("log.level `{}` is not a valid filter such as `info` or `mcp_tap=debug`", self.log.level));
        }
        p
    }

    fn validate_upstream(&self, p: &mut Vec<String>) {
        match self.upstream.url.parse::<http::Uri>() {
            Ok(uri) => {
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    p.push(format!("upstream.url `{}` must be an absolute http:// or https:// URL", self.upstream.url));
                }
                if uri.query().is_some() {
                    p.push("upstream.url must not carry a query string".into());
                }
            }
            Err(e) => p.push(format!("upstream.url `{}` is not a URL: {e}", self.upstream.url)),
        }
        if let Some(ca) = &self.upstream.ca_file {
            if !ca.is_file() {
                p.push(format!("upstream.ca_file `{}` does not exist or is not a file", ca.display()));
            }
        }
        for (name, d) in [
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            ("upstream.response_timeout", self.upstream.response_timeout),
            ("sessions.idle_timeout", self.sessions.idle_timeout),
            ("sessions.input_wait_timeout", self.sessions.input_wait_timeout),
            ("sessions.task_max_age", self.sessions.task_max_age),
        ] {
            if d.is_zero() {
                p.push(format!("{name} must be greater than zero"));
            }
        }
        if !self.upstream.readiness_path.starts_with('/') {
            p.push(format!("upstream.readiness_path `{}` must start with `/`", self.upstream.readiness_path));
        }
        if self.workers > 1024 {
            p.push(format!("workers is {}; at most 1024 (0 means one per CPU)", self.workers));
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            p.push(format!("listen and admin_listen are both {}; give each its own port", self.listen));
        }
    }

    fn validate_routes(&self, p: &mut Vec<String>) {
        for key in &self.routes.server_keys {
            if !is_server_key(key) {
                p.push(format!("routes.server_keys: `{key}` is not a Backstage server key (^[a-z0-9][a-z0-9-]*$)"));
            }
        }
        let mut labels = vec!["default".to_string()];
        labels.extend(self.routes.server_keys.iter().cloned());
        for (i, r) in self.routes.extra.iter().enumerate() {
            if !r.path.starts_with('/') {
                p.push(format!("routes.extra[{i}].path `{}` must start with `/`", r.path));
            }
            if r.label.is_empty() || r.label.len() > 64 || r.label == crate::mcp::names::OTHER {
                p.push(format!("routes.extra[{i}].label must be 1 to 64 characters and not `_OTHER`"));
            }
            if labels.contains(&r.label) {
                p.push(format!("routes.extra[{i}].label `{}` is used by another route", r.label));
            }
            labels.push(r.label.clone());
        }
    }

    /// Settings a running tap cannot take without a restart that differ between `self` and `new`.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let (a, b) = (&self.audit, &new.audit);
        let syslog = |a: &super::Audit| (a.syslog.clone(), a.syslog_ca_file.clone(), a.syslog_queue_size);
        let checks = [
            ("listen", self.listen != new.listen),
            ("workers", self.workers != new.workers),
            ("admin_listen", self.admin_listen != new.admin_listen),
            (
                "cluster.store_url/name",
                self.cluster.url(&self.env) != new.cluster.url(&new.env) || self.cluster.name != new.cluster.name,
            ),
            ("web_config_file", self.web_config_file != new.web_config_file),
            ("tls", self.tls.is_some() != new.tls.is_some()),
            ("limits.max_connections", self.limits.max_connections != new.limits.max_connections),
            ("upstream.url", self.upstream.url != new.upstream.url),
            ("upstream.ca_file", self.upstream.ca_file != new.upstream.ca_file),
            ("routes", self.routes != new.routes),
            ("sessions.duration_buckets", self.sessions.duration_buckets != new.sessions.duration_buckets),
            ("audit.output", a.output != b.output),
            ("audit.syslog", syslog(a) != syslog(b)),
            (
                "audit.fingerprint_key_file/env",
                a.fingerprint_key_file != b.fingerprint_key_file || a.fingerprint_key_env != b.fingerprint_key_env,
            ),
            ("alertmanager.url", self.alertmanager.url != new.alertmanager.url),
            ("log.format", self.log.format != new.log.format),
            ("otlp", self.otlp != new.otlp),
            ("checklist.state_dir", self.checklist.state_dir != new.checklist.state_dir),
        ];
        checks.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect()
    }
}
