//! Who may ask what: a policy per terminal number (operations, regions, DFs), and a default policy for
//! terminals not listed (none configured: they may ask nothing).

use std::collections::BTreeMap;

use card_core::codec::RegionCode;
use card_core::security::key_service::Operation;

use super::config::{Config, PolicyConfig, RegionSel};

/// What one terminal may ask.
#[derive(Clone, Debug, Default)]
pub struct TerminalPolicy {
    operations: Vec<Operation>,
    regions: Vec<RegionSel>,
    dfs: Vec<String>,
    /// Its own rate (per second), if configured.
    pub per_second: Option<f64>,
    /// Its own burst, if configured.
    pub burst: Option<f64>,
}

impl From<&PolicyConfig> for TerminalPolicy {
    fn from(p: &PolicyConfig) -> Self {
        TerminalPolicy {
            operations: p.operations.clone(),
            regions: p.regions.clone(),
            dfs: p.dfs.iter().map(|d| d.0.clone()).collect(),
            per_second: p.per_second,
            burst: p.burst,
        }
    }
}

impl TerminalPolicy {
    /// Whether `op` is allowed.
    pub fn allows_operation(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }

    /// Whether `region` is allowed.
    pub fn allows_region(&self, region: RegionCode) -> bool {
        self.regions.iter().any(|r| matches!(r, RegionSel::Any) || *r == RegionSel::One(region))
    }

    /// Whether keys of `df` may be used.
    pub fn allows_df(&self, df: &str) -> bool {
        self.dfs.iter().any(|d| d == "*" || d == df)
    }
}

/// Every terminal's policy.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    terminals: BTreeMap<String, TerminalPolicy>,
    default: TerminalPolicy,
}

impl Policies {
    /// From the configuration.
    pub fn from_config(c: &Config) -> Policies {
        Policies {
            terminals: c.terminal.iter().map(|(k, v)| (k.clone(), TerminalPolicy::from(v))).collect(),
            default: c.default.as_ref().map(TerminalPolicy::from).unwrap_or_default(),
        }
    }

    /// The policy of `terminal` (the default for one not listed).
    pub fn of(&self, terminal: &str) -> &TerminalPolicy {
        self.terminals.get(terminal).unwrap_or(&self.default)
    }
}
