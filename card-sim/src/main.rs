//! `card-sim`: put the virtual social security card into a vsmartcard-vpcd reader, or make card images.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use card_core::profile::Profile;
use card_sim::fixture::{make_card, FixtureSpecs, TestKeys};
use card_sim::vpcd::{self, Ended};
use card_sim::{BlankParams, Card, Hostile, KeyAlgorithm, SimTransport, Tear, TearPoint, TimingModel};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code when the card was torn out by `--tear-after`.
const EXIT_TORN: u8 = 3;

#[derive(Parser)]
#[command(
    name = "card-sim",
    version,
    about = "The virtual social security card (社会保障卡): a reference COS that sits in a vsmartcard-vpcd reader",
    long_about = "The virtual social security card (社会保障卡).\n\n\
        Without a subcommand, puts the card of --image into the vpcd reader at --vpcd: pcscd then sees it in\n\
        'Virtual PCD 00 00' (127.0.0.1:35963) or 'Virtual PCD 00 01' (127.0.0.1:35964), and every PC/SC program\n\
        (opensc-tool, pcsc_scan, the project's tools) talks to it as to a real card. The card stays in the\n\
        reader until SIGTERM/Ctrl-C, reconnecting when pcscd restarts; --save writes the card's state back\n\
        to the image on exit.",
    after_help = "Examples:\n  \
        card-sim --vpcd 127.0.0.1:35963 --image fixtures/cards/gen2-personalized.json\n  \
        card-sim new --gen 2 --region 371700 --serial 1 --transport-key 404142434445464748494A4B4C4D4E4F --out blank.json\n  \
        card-sim --vpcd 127.0.0.1:35963 --image fixtures/cards/gen2-personalized.json --pace --bit-rate 9600\n  \
        card-sim --vpcd 127.0.0.1:35963 --image fixtures/cards/gen2-personalized.json --hostile non-gbk-name\n  \
        card-sim fixtures --out fixtures/cards\n\n\
        Exit codes: 0 stopped normally, 1 error, 2 bad arguments, 3 the card was torn out (--tear-after).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// vpcd to connect to, as the card of its reader.
    #[arg(long, value_name = "HOST:PORT", requires = "image")]
    vpcd: Option<String>,
    /// Card image to load.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Write the card's state back to the image on exit (SIGTERM, Ctrl-C, tear).
    #[arg(long)]
    save: bool,
    /// T=0 behaviour: SELECT answers 61xx, a wrong Le answers 6Cxx.
    #[arg(long)]
    t0: bool,
    /// A COS without READ RECORD "all from P1" (P2 …101): it answers 6A86.
    #[arg(long)]
    no_read_all: bool,
    /// FCIs without the algorithm (A5 → 9F0C → 86), as on COSes that do not carry it: hosts read EF05 record 3.
    #[arg(long)]
    no_fci_algorithm: bool,
    /// FCIs with the spec version (A5 → 9F08), this project's earlier profile decision; real cards have none.
    #[arg(long)]
    fci_spec_version: bool,
    /// Remove the card at the Nth APDU (1-based).
    #[arg(long, value_name = "N")]
    tear_after: Option<u64>,
    /// Whether the Nth APDU's write happens before the card goes.
    #[arg(long, value_enum, default_value = "after-write")]
    tear_point: TearPointArg,
    /// Transmission rate of the timing model, bit/s: 9600 (the ISO 7816-3 initial rate) or 115200 (after PPS).
    #[arg(long, default_value_t = 9600, value_name = "BPS", value_parser = parse_bit_rate)]
    bit_rate: u32,
    /// Take the modeled card time in real time: every answer waits until the command's transmission at --bit-rate,
    /// its processing and its EEPROM writes would be over on a real card (COS.md "Timing model").
    #[arg(long)]
    pace: bool,
    /// A hostile card (COS.md "Hostile cards"): non-gbk-name, empty, empty:INS, empty-after:N, long-tlv, oversized,
    /// endless-61, loop-6c, short-atr, one-byte, fci-86-length, fci-86-unknown or fci-overrun.
    #[arg(long, value_name = "KIND")]
    hostile: Option<Hostile>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TearPointArg {
    /// The command is not executed.
    BeforeWrite,
    /// The command is executed and committed; the response is lost.
    AfterWrite,
}

#[derive(Subcommand)]
enum Command {
    /// Make a blank card image (only the MF and the chip maker's transport key).
    New(NewArgs),
    /// Regenerate the fixture card images from fixtures.toml and test-keys.toml.
    Fixtures {
        /// Directory with fixtures.toml and test-keys.toml; images are written there.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Summarize a card image: generation, region, serial, lifecycle, ATR and file tree.
    Show {
        /// The image.
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
    },
}

#[derive(Args)]
struct NewArgs {
    /// Card generation: 1, 2 (3DES) or 3 (SM4).
    #[arg(long = "gen", value_parser = clap::value_parser!(u8).range(1..=3))]
    generation: u8,
    /// Issuing region code (6 digits), carried in the ATR.
    #[arg(long)]
    region: String,
    /// Chip serial (decimal or 0x-hex): the last 8 historical bytes, the card factor.
    #[arg(long, value_parser = parse_serial)]
    serial: u64,
    /// Transport key, 32 hex digits (test material: the virtual card's chip-maker key).
    #[arg(long, value_name = "HEX")]
    transport_key: String,
    /// Key algorithm; default: 3DES for generations 1 and 2, SM4 for 3.
    #[arg(long, value_name = "3des|sm4|aes128")]
    alg: Option<String>,
    /// Where to write the image.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

fn parse_bit_rate(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(r @ (9600 | 19200 | 38400 | 57600 | 115_200)) => Ok(r),
        _ => Err(format!("{s}: use 9600, 19200, 38400, 57600 or 115200")),
    }
}

fn parse_serial(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s}: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CARD_SIM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.command.is_some() {
        // `show … | head`: a closed pipe ends the program quietly, as it does other Unix tools (not the card in its
        // reader, which must save its image on the way out)
        sigpipe::reset();
    }
    let result = match cli.command {
        Some(Command::New(a)) => new(a),
        Some(Command::Fixtures { out }) => fixtures(&out),
        Some(Command::Show { image }) => show(&image),
        None => run(cli.run),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("card-sim: {e:#}");
            if is_bad_file(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A file argument that is not a regular file (`/dev/zero`, a FIFO), too large or not text: bad arguments (exit 2).
fn is_bad_file(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(io.kind(), ErrorKind::InvalidInput | ErrorKind::FileTooLarge | ErrorKind::InvalidData)
        })
    })
}

fn new(a: NewArgs) -> Result<u8> {
    let algorithm = match a.alg.as_deref() {
        Some(s) => s.parse::<KeyAlgorithm>().map_err(|_| anyhow::anyhow!("--alg {s}: use 3des, sm4 or aes128"))?,
        None if a.generation == 3 => KeyAlgorithm::Sm4,
        None => KeyAlgorithm::Tdes,
    };
    let key = hex::decode(&a.transport_key).context("--transport-key is not hex")?;
    let transport_key: [u8; 16] =
        key.as_slice().try_into().map_err(|_| anyhow::anyhow!("--transport-key must be 16 bytes (32 hex digits)"))?;
    let card = Card::new_blank(BlankParams {
        generation: a.generation,
        region: a.region,
        serial: a.serial,
        transport_key,
        algorithm,
    })?;
    card.save(&a.out)?;
    println!("{}: blank generation {} card, ATR {}", a.out.display(), a.generation, hex::encode_upper(card.atr()));
    Ok(0)
}

/// Largest fixture spec file read (`fixtures.toml`, `test-keys.toml`).
const MAX_SPEC_FILE: u64 = 1024 * 1024;

fn fixtures(dir: &Path) -> Result<u8> {
    let read = |name: &str| {
        let p = dir.join(name);
        card_core::read_limited_string(&p, MAX_SPEC_FILE).with_context(|| format!("cannot read {}", p.display()))
    };
    let specs = FixtureSpecs::from_toml(&read("fixtures.toml")?)?;
    let keys = TestKeys::from_toml(&read("test-keys.toml")?)?;
    for spec in &specs.card {
        let card = make_card(spec, Profile::builtin(), &keys).with_context(|| spec.file.clone())?;
        let path = dir.join(&spec.file);
        card.save(&path)?;
        println!("{}: generation {}, {:?}", path.display(), spec.generation, card.lifecycle());
    }
    Ok(0)
}

fn show(image: &Path) -> Result<u8> {
    let card = Card::load(image)?;
    println!("generation {}  region {}  serial {:016X}", card.generation(), card.region(), card.serial());
    println!("lifecycle  {:?}{}", card.lifecycle(), if card.is_card_blocked() { " (card blocked)" } else { "" });
    println!("ATR        {}", hex::encode_upper(card.atr()));
    print_df(card.mf(), 0);
    Ok(0)
}

fn print_df(df: &card_sim::fs::Df, depth: usize) {
    let pad = "  ".repeat(depth);
    let aid = df.aid().map(hex::encode_upper).unwrap_or_default();
    let keys: Vec<String> = df.key_info().iter().map(|k| format!("{:02X}v{}", k[0], k[1])).collect();
    println!(
        "{pad}DF {:04X} {aid}{}  keys [{}]{}",
        df.fid,
        if df.blocked { " (blocked)" } else { "" },
        keys.join(" "),
        if df.has_pin() { "  PIN" } else { "" }
    );
    for ef in df.files() {
        println!("{pad}  EF {:04X} SFI {:02X}  read {:?} update {:?}", ef.fid, ef.sfi, ef.read, ef.update);
    }
    for child in df.dfs() {
        print_df(child, depth + 1);
    }
}

fn run(args: RunArgs) -> Result<u8> {
    let (Some(addr), Some(image)) = (args.vpcd, args.image) else {
        bail!("give --vpcd HOST:PORT and --image FILE, or a subcommand (see --help)");
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot install the signal handler")?;
    }
    let mut card = Card::load(&image)?;
    card.set_t0_mode(args.t0);
    if args.no_read_all {
        card.set_read_all(false);
    }
    if args.no_fci_algorithm {
        card.set_fci_algorithm(false);
    }
    if args.fci_spec_version {
        card.set_fci_spec_version(true);
    }
    let mut sim = SimTransport::with_timing(card, TimingModel::with_bit_rate(args.bit_rate));
    sim.set_pace(args.pace);
    if args.pace {
        eprintln!("card-sim: paced: answers take the modeled time at {} bit/s", args.bit_rate);
    }
    if let Some(hostile) = args.hostile {
        sim.set_hostile(Some(hostile));
        eprintln!("card-sim: hostile card: {hostile}");
    }
    if let Some(n) = args.tear_after {
        let when = match args.tear_point {
            TearPointArg::BeforeWrite => TearPoint::BeforeWrite,
            TearPointArg::AfterWrite => TearPoint::AfterWrite,
        };
        sim.arm_tear(Tear { after_apdu: n, when });
    }
    let mut torn = false;
    let mut waiting_logged = false;
    while !stop.load(Ordering::SeqCst) {
        let mut sock = match TcpStream::connect(&addr) {
            Ok(s) => s,
            Err(e) => {
                if !waiting_logged {
                    eprintln!("card-sim: waiting for vpcd at {addr} ({e}); is pcscd running?");
                    waiting_logged = true;
                }
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
        };
        waiting_logged = false;
        eprintln!(
            "card-sim: card inserted at {addr} (ATR {})",
            hex::encode_upper(card_core::transport::Transport::atr(&sim))
        );
        match vpcd::serve(&mut sock, &mut sim, &stop) {
            Ok(Ended::Stopped) => break,
            Ok(Ended::Torn) => {
                eprintln!("card-sim: card torn out at APDU {}", sim.apdu_count());
                torn = true;
                break;
            }
            Ok(Ended::ReaderGone) => {
                eprintln!("card-sim: vpcd closed the connection (pcscd stopped?); reconnecting");
                sim.card_mut().power_off();
            }
            Err(e) => {
                eprintln!("card-sim: connection to vpcd failed: {e}; reconnecting");
                sim.card_mut().power_off();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if args.save {
        sim.card().save(&image)?;
        eprintln!("card-sim: saved {}", image.display());
    }
    let t = sim.modeled_time();
    eprintln!(
        "card-sim: {} APDUs, modeled card time {}.{:03} s ({} bit/s)",
        sim.apdu_count(),
        t.as_secs(),
        t.subsec_millis(),
        args.bit_rate
    );
    Ok(if torn { EXIT_TORN } else { 0 })
}
