//! Where the settings that name environment variables are read: `${VAR}` in imported Backstage
//! app-configs, `*_env` keys, the fingerprint key and `OTEL_*`. The binary reads the process
//! environment; tests and embedders pass a fixed map, so nothing needs `std::env::set_var`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Environment {
    /// The process environment, read when a setting is used.
    #[default]
    Process,
    /// Exactly these variables and no others.
    Fixed(BTreeMap<String, String>),
}

impl Environment {
    /// A fixed environment of these variables.
    pub fn fixed<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Environment::Fixed(vars.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// The variable's value, if it is set (empty values included).
    pub fn var(&self, name: &str) -> Option<String> {
        match self {
            Environment::Process => std::env::var(name).ok(),
            Environment::Fixed(vars) => vars.get(name).cloned(),
        }
    }

    /// The first of `names` that is set and not empty.
    pub fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.var(n).filter(|v| !v.is_empty()))
    }
}
