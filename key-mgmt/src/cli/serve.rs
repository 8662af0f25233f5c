//! `keymgmt serve --config key-service.toml`: the province's key service (see `key_mgmt::service`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use card_core::codec::RegionCode;

use super::{prompt_components, read_component_files, read_passphrase, Global};
use crate::components::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::secrets::KBPK_LEN;
use crate::service::config::Config;
use crate::service::keys::{KeySource, StoreKeys};
use crate::service::{run_with_signals, ServeError, Server};
use crate::store::KeyStore;

pub(super) const AFTER_HELP: &str = "The key service answers counters that hold no keys: POST /v1/answers with the \
national Step1 string (read, write, pin-reload, pin-unblock) → the answer string, the key and its version. HTTPS \
with mutual TLS: a terminal presents a certificate of the CA in [tls] client_ca, whose subject CN is its terminal \
number. See key-mgmt/README.md \"Key service\" for the configuration file, and openapi-key-service.yaml.

The store is unlocked at start with --passphrase-file, --unlock-component-file (global options) or \
passphrase_file in the configuration; only the region keys of `regions` are derived and held. SIGHUP reloads the \
keys (a rotated version) and the revocation list; SIGTERM or Ctrl-C stops after the requests in flight.

Prints `listening on https://ADDR` (or http:// with --insecure-loopback) on stdout once it accepts connections.

Examples:
  keymgmt --store keys.db --passphrase-file pass.txt serve --config key-service.toml
  keymgmt serve --config key-service.toml --insecure-loopback     # plain HTTP on 127.0.0.1, for tests

Exit codes: 2 bad configuration (named file:line:column), a TLS file, --insecure-loopback on another address; \
3 the store does not unlock; 4 the audit log was cut or changed (move it and its .head aside); 1 other.";

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The configuration file (TOML): listen address, regions, TLS files, policies, limits, audit log.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Serve plain HTTP, on a loopback address only, the terminal taken from the request (audited as
    /// insecure). For tests and local demos: never in production.
    #[arg(long)]
    insecure_loopback: bool,
}

impl From<ServeError> for Error {
    fn from(e: ServeError) -> Error {
        match e {
            ServeError::Store(e) => e,
            other => match other.kind() {
                ErrorKind::BadInput => Error::InvalidInput(other.to_string()),
                _ => Error::Io { path: "serve".into(), source: std::io::Error::other(other.to_string()) },
            },
        }
    }
}

/// How the store is unlocked, again at each SIGHUP.
enum Unlock {
    Passphrase(PathBuf),
    Components(Vec<PathBuf>),
    /// Typed at the terminal at start: a reload cannot ask again.
    Typed,
}

struct Loader {
    store: PathBuf,
    outside: crate::outside::Outside,
    unlock: Unlock,
    regions: Vec<RegionCode>,
}

impl Loader {
    fn load(&self, typed: Option<&[Secret]>) -> Result<Arc<dyn KeySource>> {
        let mut store = KeyStore::open_with(&self.store, self.outside.clone())?;
        let unlocked =
            match (&self.unlock, typed) {
                (Unlock::Passphrase(p), _) => {
                    let pass = read_passphrase(p)?;
                    store.unlock_with_passphrase(pass.as_bytes())
                }
                (Unlock::Components(files), _) => store.unlock_with_components(&read_component_files(files, KBPK_LEN)?),
                (Unlock::Typed, Some(c)) => store.unlock_with_components(c),
                (Unlock::Typed, None) => return Err(Error::InvalidInput(
                    "the store was unlocked with components typed at a terminal: restart the service to reload keys"
                        .into(),
                )),
            };
        for w in store.warnings() {
            eprintln!("keymgmt serve: warning: {w}");
        }
        unlocked?;
        let keys = StoreKeys::load(&store, &self.regions)?;
        Ok(Arc::new(keys))
    }
}

pub(super) fn run(g: &Global, a: Args) -> Result<()> {
    let config = Config::load(&a.config).map_err(ServeError::from)?;
    let store = match (&config.store, &g.store) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(Error::InvalidInput("no store: give `store` in the configuration or --store".into()));
        }
    };
    let mut outside = crate::outside::Outside::beside(&store);
    if let Some(s) = &g.audit_sink {
        outside.sink = s.clone();
    }
    if let Some(w) = &g.witness {
        outside.witness = w.clone();
    }
    outside.syslog = g.syslog;
    let unlock = if let Some(p) = g.passphrase_file.clone().or(config.passphrase_file.clone()) {
        Unlock::Passphrase(p)
    } else if !g.unlock_files.is_empty() {
        Unlock::Components(g.unlock_files.clone())
    } else if std::io::stdin().is_terminal() {
        Unlock::Typed
    } else {
        return Err(Error::Locked);
    };
    let typed = match unlock {
        Unlock::Typed => Some(prompt_components("KBPK", KBPK_LEN)?),
        _ => None,
    };
    let loader = Loader { store, outside, unlock, regions: config.region_codes() };
    let keys = loader.load(typed.as_deref())?;
    drop(typed);
    eprintln!("keymgmt serve: holding {}", keys.describe().join(", "));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io { path: "tokio runtime".into(), source })?;
    runtime.block_on(async move {
        let server = Server::bind(&config, a.insecure_loopback, keys).await?;
        let scheme = if a.insecure_loopback { "http" } else { "https" };
        {
            // a supervisor that read this line and closed the pipe must not stop the service
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "keymgmt serve: listening on {scheme}://{}", server.local_addr());
            let _ = out.flush();
        }
        let _ = std::io::stdout().flush();
        if a.insecure_loopback {
            eprintln!(
                "keymgmt serve: warning: plain HTTP (--insecure-loopback): the terminal is taken from the request"
            );
        }
        let loader = Arc::new(loader);
        let reload: Arc<dyn Fn() -> Result<Arc<dyn KeySource>> + Send + Sync> = Arc::new(move || loader.load(None));
        run_with_signals(server, reload).await.map_err(|source| Error::Io { path: "signals".into(), source })?;
        eprintln!("keymgmt serve: stopped");
        Ok(())
    })
}
