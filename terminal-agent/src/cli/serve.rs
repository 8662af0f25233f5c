//! `terminal-agent serve`: runs the counter's card service; `terminal-agent token`: signs an operation token as the
//! counter back end would (for tests, demos and as the reference of the token format).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::service::config::{Config, KeyMode, DEFAULT_PORT};
use crate::service::token::{self, Scope};
use crate::service::Server;

use super::keys::KeyArgs;
use super::Failure;

const SERVE_HELP: &str = "A configuration (every key optional; paths relative to the file):

  port = 17788
  allowed_origins = [\"https://counter.example.gov.cn\"]
  terminal_no = \"371700000001\"          # 终端机编号, also the terminal tokens must name
  device_no = \"SIM-READER-01\"           # 终端设备号
  audit_log = \"agent-audit.jsonl\"
  token_key_file = \"agent-token.key\"    # hex HMAC-SHA256 key shared with the counter back end
  reader = \"Virtual PCD\"                # the reader /v1/readers/default/... uses
  [readers]                             # iType of the national functions (WebSocket /v1/national)
  contact = \"Virtual PCD 00 00\"         # default: reader, else the first reader
  contactless = \"Virtual PCD 00 01\"     # none: iType 2 answers -13
  [keys]
  mode = \"two-step\"                     # or \"local\" with keystore + passphrase_file

Then, from an allowed origin:
  curl -H 'Origin: https://counter.example.gov.cn' http://127.0.0.1:17788/v1/readers/0/basic
The API: terminal-agent/openapi.yaml (also at /openapi.yaml); the counter page: http://127.0.0.1:17788/";

/// Arguments of `serve`.
#[derive(clap::Args)]
#[command(after_help = SERVE_HELP)]
pub struct ServeArgs {
    /// The configuration file (TOML; see the README). Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Port on 127.0.0.1 and ::1 (0: any free port, printed at start).
    #[arg(long, short = 'p', value_name = "PORT", help = format!("Port on 127.0.0.1 and ::1 [default: {DEFAULT_PORT}]; 0 picks a free one"))]
    port: Option<u16>,
    /// An origin allowed to call the API, e.g. https://counter.example.gov.cn (repeat for several; adds to the file's).
    #[arg(long = "allow-origin", value_name = "URL")]
    allow_origin: Vec<String>,
    /// The audit log file (JSON lines).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
}

/// Arguments of `token`.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// The agent's configuration file: its token key and terminal number.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// What the token allows: pin, write (repeat for both).
    #[arg(long, value_name = "SCOPE", required = true, value_parser = parse_scope)]
    scope: Vec<Scope>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 60)]
    ttl: u64,
}

/// Arguments of `token-key`.
#[derive(clap::Args)]
pub struct TokenKeyArgs {
    /// Where to write the new key (hex, one line; created with mode 0600, never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Writes a new random 32-byte token key: the file `token_key_file` names, shared with the counter back end.
pub fn token_key(a: TokenKeyArgs) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    rand::Rng::fill(&mut rand::rng(), &mut key[..]);
    let text = zeroize::Zeroizing::new(hex::encode_upper(&key[..]) + "\n");
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&a.out).map_err(|e| {
        Failure::Usage(format!("cannot create {}: {e} (an existing key is never overwritten)", a.out.display()))
    })?;
    file.write_all(text.as_bytes())?;
    eprintln!(
        "terminal-agent: wrote a new 32-byte token key to {} (mode 0600); give the same file to the back end",
        a.out.display()
    );
    Ok(())
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    match s {
        "pin" => Ok(Scope::Pin),
        "write" => Ok(Scope::Write),
        other => Err(format!("unknown scope {other:?} (pin, write)")),
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, Failure> {
    match path {
        Some(p) => Config::load(p).map_err(|e| Failure::Usage(e.to_string())),
        None => Ok(Config::default()),
    }
}

pub fn serve(a: ServeArgs) -> Result<(), Failure> {
    let mut config = load(a.config.as_ref())?;
    if let Some(p) = a.port {
        config.port = p;
    }
    config.allowed_origins.extend(a.allow_origin);
    if a.audit_log.is_some() {
        config.audit_log = a.audit_log;
    }
    config.validate().map_err(|e| Failure::Usage(e.to_string()))?;
    let keys: Box<dyn card_core::security::SecurityModule + Send + Sync> = match &config.keys {
        KeyMode::TwoStep | KeyMode::KeyService { .. } => Box::new(card_core::security::NoKeys),
        KeyMode::Local { keystore, passphrase_file, key_file, region } => {
            KeyArgs::local(key_file.clone(), keystore.clone(), passphrase_file.clone(), region.clone()).module()?
        }
    };
    let runtime = crate::service::runtime()?;
    runtime.block_on(async move {
        let server = Server::bind(config, Arc::from(keys)).await.map_err(|e| Failure::Usage(e.to_string()))?;
        // the handlers are in place before the agent says it listens: a SIGTERM right after is a clean stop
        let shutdown = shutdown_signal()?;
        // a supervisor that read the first line and closed the pipe must not stop the service
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for addr in server.addresses() {
            let _ = writeln!(out, "terminal-agent: listening on http://{addr}/");
        }
        let _ = out.flush();
        drop(out);
        server.run(shutdown).await?;
        eprintln!("terminal-agent: stopped");
        Ok(())
    })
}

/// SIGTERM or SIGINT (Ctrl-C), their handlers installed now.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

pub fn token(a: TokenArgs) -> Result<(), Failure> {
    let config = load(Some(&a.config))?;
    let key = config.token_key.ok_or_else(|| Failure::Usage(format!("{}: no token key", a.config.display())))?;
    let max = config.token_max_ttl.as_secs();
    if a.ttl > max {
        return Err(Failure::Usage(format!(
            "--ttl {}: the agent refuses tokens living longer than {max} s (token_max_ttl_secs of {}); \
             sign with --ttl {max} or less",
            a.ttl,
            a.config.display()
        )));
    }
    if a.ttl == 0 {
        return Err(Failure::Usage("--ttl 0: a token must live at least one second".into()));
    }
    let claims = token::claims(&a.scope, &config.terminal_no, Duration::from_secs(a.ttl));
    println!("{}", token::sign(&key, &claims).map_err(|e| Failure::Usage(e.to_string()))?);
    Ok(())
}
