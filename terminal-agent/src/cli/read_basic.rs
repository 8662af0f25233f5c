//! `terminal-agent read-basic`: the national iReadCardBas of the card in a reader.

use std::path::PathBuf;
use std::time::Duration;

use card_core::card::{SocialSecurityCard, TerminalIds};
use card_core::security::key_client::{ClientConfig, KeyServiceClient};
use card_core::transport::{RecordingTransport, Transport};
use card_core::{codec, national};
use serde_json::json;

use super::keys::KeyArgs;
use super::{open_reader, print_json, Failure, JSON_FORMAT};
use crate::service::api::basic_json;

/// Arguments of `read-basic`.
#[derive(clap::Args)]
pub struct Args {
    /// Reader name (or a unique part of it) or index; default 0.
    #[arg(long, short = 'r')]
    reader: Option<String>,
    #[command(flatten)]
    keys: KeyArgs,
    /// 终端机编号 of the national string (configuration of the counter).
    #[arg(long, env = "SSCARD_TERMINAL_NO", default_value = "", value_name = "ID")]
    terminal_no: String,
    /// 终端设备号 of the national string (configuration of the counter).
    #[arg(long, env = "SSCARD_DEVICE_NO", default_value = "", value_name = "ID")]
    device_no: String,
    /// The key service (`keymgmt serve`) at this URL reads a generation 3 card for a counter without keys
    /// (repeat for replicas: failover in order). Needs --service-ca, --terminal-no and, unless the service runs
    /// --insecure-loopback, --client-cert and --client-key.
    #[arg(long = "key-service", value_name = "URL")]
    key_service: Vec<String>,
    /// The CA of the key service's certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "key_service")]
    service_ca: Option<PathBuf>,
    /// The terminal's client certificate (PEM), for the key service.
    #[arg(long, value_name = "FILE", requires = "client_key", requires = "key_service")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Machine-readable output: `national`, `code`, `card` (typed fields), `apdus` (count) and `exchanges`
    /// (the command-response pairs on the wire, GET RESPONSE included; PINs and keys redacted).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let sm = a.keys.module()?;
    let terminal = TerminalIds { terminal_no: a.terminal_no, device_no: a.device_no };
    let transport = RecordingTransport::new(open_reader(&a.reader)?);
    let mut card = SocialSecurityCard::new(transport).with_terminal(terminal.clone());
    let info = if a.key_service.is_empty() {
        card.read_basic(sm.as_ref())?
    } else {
        let ca = a.service_ca.ok_or_else(|| Failure::Usage("--key-service needs --service-ca".into()))?;
        if terminal.terminal_no.is_empty() {
            return Err(Failure::Usage("--key-service needs --terminal-no (the client certificate's)".into()));
        }
        let client = KeyServiceClient::new(&ClientConfig {
            urls: a.key_service,
            terminal: terminal.terminal_no.clone(),
            ca_file: ca,
            client_cert: a.client_cert.zip(a.client_key),
            timeout: Duration::from_secs(5),
        })
        .map_err(|e| Failure::Usage(e.to_string()))?;
        card.read_basic_via(sm.as_ref(), &client)?
    };
    let national_string = info.national(&terminal);
    let code = info.national_code();
    let wire = card.transport();
    if a.json {
        let exchanges: Vec<String> = wire.exchanges().iter().map(|e| e.to_lines()).collect();
        let c = wire.counters();
        return print_json(&json!({
            "format": JSON_FORMAT,
            "reader": wire.name(),
            "national": national_string.as_str(),
            "code": code,
            "message": national::message(code),
            "card": basic_json(&info),
            "apdus": c.apdus,
            "bytes_sent": c.bytes_sent,
            "bytes_received": c.bytes_received,
            "exchanges": exchanges,
        }));
    }
    let show = |label: &str, v: &Option<String>| {
        println!("{label:<24} {}", v.as_deref().unwrap_or("(withheld)"));
    };
    println!("{:<24} {}", "卡识别码 card id", codec::hex_upper(&info.card_id));
    println!("{:<24} {}", "发卡地区 region", info.region.as_str());
    println!(
        "{:<24} {} (generation {}, {})",
        "规范版本 spec",
        info.spec_version,
        info.generation,
        info.algorithm.name()
    );
    show("卡号 card number", &info.card_number);
    show("社会保障号码 SSN", &info.ssn);
    show("姓名 name", &info.name);
    show("性别 sex", &info.sex);
    show("民族 ethnicity", &info.ethnicity);
    show("出生地 birthplace", &info.birthplace);
    show("出生日期 birth date", &info.birth_date.map(|d| d.to_string()));
    println!("{:<24} {}", "发卡日期 issued", info.issue_date);
    println!("{:<24} {}", "卡有效期 expires", info.expiry_date);
    println!("\niReadCardBas ({code} {})\n{national_string}", national::message(code));
    println!("\n{} APDUs on the wire", wire.counters().apdus);
    Ok(())
}
