//! `results.md` and `results.svg` from the JSON files of one `cargo xtask bench` run:
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `reads.json` | `sscard-bench reads` | [`ReadRow`]s |
//! | `agent.json` | `cargo bench -p terminal-agent --bench agent` | direct / raw / agent p50, p99 with 1, 4, 16 clients, unpaced and paced at 9600 bit/s |
//! | `issuance.json` | `cargo bench -p issuance-cli --bench pcscd` | per card APDUs, bytes, modeled and wall seconds; cards per hour on 1 and 2 readers; the plan's floor |
//! | `keysets.json` | `cargo bench -p key-mgmt --bench derive` | card key sets per second, in memory, from the store per call and per batch |
//! | `python-keysets.json` | `bench/python_keysets.py` | the same diversification in Python `cryptography` |
//!
//! Every file must be there (the run is one invocation); a missing or malformed one is an error naming it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::measure::ReadRow;
use crate::reads::Pattern;

/// Largest JSON file read.
const MAX_JSON: u64 = 4 * 1024 * 1024;

fn load(dir: &Path, name: &str) -> Result<Value> {
    let path = dir.join(name);
    let text = card_core::read_limited_string(&path, MAX_JSON).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The number at `path` in `v` (of the JSON file `file`, named in the error).
pub(crate) fn num(v: &Value, path: &[&str], file: &str) -> Result<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| anyhow!("{file}: no {}", path.join(".")))?;
    }
    cur.as_f64().ok_or_else(|| anyhow!("{file}: {} is not a number", path.join(".")))
}

/// The machine, the date and the commit of the run.
pub fn provenance() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let run = |prog: &str, args: &[&str]| {
        std::process::Command::new(prog)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let commit = run("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| l[12..].trim_matches('"').to_owned()))
        .unwrap_or_default();
    format!(
        "{date} · commit `{commit}`{} · {cpu}, {cores} cores, {mem_gib:.0} GiB, {os}",
        if dirty { " (with uncommitted changes)" } else { "" }
    )
}

/// The README's markers around the latest results.
const README_START: &str = "<!-- bench-results:start -->";
const README_END: &str = "<!-- bench-results:end -->";

/// Puts `section` between the README's markers (replacing what was there).
pub fn replace_section(readme: &str, section: &str) -> Result<String> {
    let start = readme.find(README_START).ok_or_else(|| anyhow!("README: no {README_START}"))?;
    let end = readme
        .find(README_END)
        .filter(|e| *e > start)
        .ok_or_else(|| anyhow!("README: no {README_END} after the start"))?;
    Ok(format!("{}{README_START}\n{}\n{}", &readme[..start], section.trim(), &readme[end..]))
}

/// Writes `results.md` and `results.svg` into `out` from the JSON files in `results`, and the same tables between
/// the markers of `readme` when given.
pub fn write(results: &Path, out: &Path, readme: Option<&Path>) -> Result<()> {
    let reads: Vec<ReadRow> = serde_json::from_value(load(results, "reads.json")?).context("reads.json")?;
    let agent = load(results, "agent.json")?;
    let issuance = load(results, "issuance.json")?;
    let keysets = load(results, "keysets.json")?;
    let python = load(results, "python-keysets.json")?;
    check_python(&python)?;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let provenance = provenance();
    let md = markdown(&provenance, "results.svg", &reads, &agent, &issuance, &keysets, &python)?;
    std::fs::write(out.join("results.md"), format!("# Performance, side by side\n\n{md}")).context("results.md")?;
    if let Some(readme) = readme {
        let text = std::fs::read_to_string(readme).with_context(|| readme.display().to_string())?;
        let svg = out.join("results.svg");
        let relative = readme
            .parent()
            .and_then(|dir| svg.strip_prefix(dir).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| svg.display().to_string());
        let section = markdown(&provenance, &relative, &reads, &agent, &issuance, &keysets, &python)?;
        let section = section.replace("\n## ", "\n### ");
        std::fs::write(readme, replace_section(&text, &section)?).with_context(|| readme.display().to_string())?;
    }
    crate::plot::svg(&out.join("results.svg"), &reads, &agent)?;
    Ok(())
}

/// The Python baseline computed the same keys: its key set for `check_factor` equals card-core's
/// `Div(Div(issuer key, region factor), card factor)` for every key of the test key file, both algorithms.
pub fn check_python(python: &Value) -> Result<usize> {
    use card_core::crypto::{region_factor, Algorithm};
    let f = "python-keysets.json";
    let path = testkit::fixture("cards/test-keys.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let keys = card_sim::fixture::TestKeys::from_toml(&text)?;
    let factor: [u8; 8] = python
        .get("check_factor")
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("{f}: no check_factor of 8 bytes"))?;
    let region = python.get("region").and_then(Value::as_str).ok_or_else(|| anyhow!("{f}: no region"))?;
    let region = region_factor(region).map_err(|e| anyhow!("{f}: region: {e}"))?;
    let mut compared = 0;
    for (key, alg) in [("tdes", Algorithm::Tdes), ("sm4", Algorithm::Sm4)] {
        let names = keys.names(alg);
        let check = python
            .get(key)
            .and_then(|v| v.get("check"))
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{f}: no {key}.check"))?;
        if names.is_empty() || check.len() != names.len() {
            return Err(anyhow!("{f}: {key}.check has {} keys, the test key file {}", check.len(), names.len()));
        }
        for name in names {
            let card = keys.issuer(alg, name)?.div(&region).div(&factor);
            let ours = hex::encode_upper(card.expose_secret());
            if check.get(name).and_then(Value::as_str) != Some(ours.as_str()) {
                return Err(anyhow!("{f}: Python's {key} {name} differs from card-core's derivation"));
            }
            compared += 1;
        }
    }
    Ok(compared)
}

/// The row of one card, bit rate and way of reading.
pub(crate) fn read_row(rows: &[ReadRow], generation: u8, bit_rate: u32, pattern: Pattern) -> Option<&ReadRow> {
    rows.iter().find(|r| r.generation == generation && r.bit_rate == bit_rate && r.pattern == pattern)
}

/// The report's text.
pub fn markdown(
    provenance: &str,
    svg: &str,
    reads: &[ReadRow],
    agent: &Value,
    issuance: &Value,
    keysets: &Value,
    python: &Value,
) -> Result<String> {
    let mut m = String::new();
    let _ = writeln!(m, "Written by `cargo xtask bench` — {provenance}.\n");
    let _ = writeln!(
        m,
        "The card is card-sim **paced** (`card-sim --pace`): every answer waits for the modeled time of a real card \
         (ISO 7816-3 T=0, 12 etu a character at the bit rate; 0.3 ms a command, 0.1 ms a block cipher operation, 3 ms \
         an EEPROM page: `card-sim/COS.md`, \"Timing model\"), through pcscd and vsmartcard-vpcd. APDUs, bytes and \
         modeled time are deterministic (asserted in `bench/tests/counts.rs`, `issuance-cli/tests/issue.rs`); wall \
         times are this run's.\n"
    );
    let _ = writeln!(m, "![reads and agent]({svg})\n");

    let _ = writeln!(m, "## The clerk's wait: reading the basic information\n");
    let _ = writeln!(
        m,
        "The project (card-core, as the agent and libsscard read), the vendors' record-by-record pattern of the public \
         traces (SELECT by FID, one READ RECORD per item: `docs/card-profile.md` §4.2) and the project's own APDUs sent as \
         bare PC/SC transmits. One read of a card the reader already knows.\n"
    );
    let _ = writeln!(m, "| card | bit/s | way | APDUs | bytes | modeled card ms | wall p50 ms | wall p99 ms |");
    let _ = writeln!(m, "|---|---:|---|---:|---:|---:|---:|---:|");
    for bit_rate in [9600u32, 115_200] {
        for generation in [2u8, 3] {
            for pattern in Pattern::ALL {
                if let Some(r) = read_row(reads, generation, bit_rate, pattern) {
                    let _ = writeln!(
                        m,
                        "| gen {generation} | {bit_rate} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                        pattern.label(),
                        r.costs.apdus,
                        r.costs.bytes,
                        r.costs.modeled_us as f64 / 1000.0,
                        r.wall_p50_ms,
                        r.wall_p99_ms
                    );
                }
            }
        }
    }
    let _ = writeln!(m);
    for bit_rate in [9600u32, 115_200] {
        for generation in [2u8, 3] {
            let (Some(p), Some(v), Some(r)) = (
                read_row(reads, generation, bit_rate, Pattern::Project),
                read_row(reads, generation, bit_rate, Pattern::Vendor),
                read_row(reads, generation, bit_rate, Pattern::Raw),
            ) else {
                continue;
            };
            let _ = writeln!(
                m,
                "- gen {generation} at {bit_rate} bit/s: the vendor pattern waits {:.2}× the project's p50 ({:.0} ms more \
                 per read); card-core costs {:+.1} ms over bare PC/SC.",
                v.wall_p50_ms / p.wall_p50_ms,
                v.wall_p50_ms - p.wall_p50_ms,
                p.wall_p50_ms - r.wall_p50_ms
            );
        }
    }
    let _ = writeln!(m);

    agent_section(&mut m, agent)?;
    issuance_section(&mut m, issuance)?;
    keysets_section(&mut m, keysets, python)?;
    Ok(m)
}

fn agent_section(m: &mut String, agent: &Value) -> Result<()> {
    let f = "agent.json";
    let _ = writeln!(m, "## The agent's overhead\n");
    let _ = writeln!(
        m,
        "`GET /v1/readers/{{i}}/basic` over HTTP keep-alive against the same read through card-core directly and as \
         bare PC/SC transmits, generation 2 fixture card. Goal: agent p50 ≤ 1.2× direct unpaced, ≤ 1.01× paced.\n"
    );
    let _ = writeln!(m, "| card | way | clients | p50 ms | p99 ms | requests/s |");
    let _ = writeln!(m, "|---|---|---:|---:|---:|---:|");
    for (key, label) in [("unpaced", "unpaced"), ("paced_9600", "paced, 9600 bit/s")] {
        let run = agent.get(key).ok_or_else(|| anyhow!("{f}: no {key}"))?;
        for way in ["direct", "raw"] {
            let _ = writeln!(
                m,
                "| {label} | {way} | 1 | {:.2} | {:.2} | |",
                num(run, &[way, "p50_ms"], f)?,
                num(run, &[way, "p99_ms"], f)?
            );
        }
        // the agent's HTTP round trip with no card in it (a static file), when the run measured it
        if run.get("http").is_some() {
            let _ = writeln!(
                m,
                "| {label} | HTTP alone (no card) | 1 | {:.3} | {:.3} | |",
                num(run, &["http", "p50_ms"], f)?,
                num(run, &["http", "p99_ms"], f)?
            );
        }
        for clients in ["1", "4", "16"] {
            let c = &["agent", "clients", clients];
            let field = |name: &str| -> Result<f64> {
                let mut p = c.to_vec();
                p.push(name);
                num(run, &p, f)
            };
            let _ = writeln!(
                m,
                "| {label} | agent (HTTP) | {clients} | {:.2} | {:.2} | {:.1} |",
                field("p50_ms")?,
                field("p99_ms")?,
                field("rps")?
            );
        }
    }
    let _ = writeln!(m);
    for (key, label, goal) in [("unpaced", "unpaced", 1.2), ("paced_9600", "paced at 9600 bit/s", 1.01)] {
        let ratio = num(agent, &[key, "ratio_p50"], f)?;
        let _ = writeln!(
            m,
            "- {label}: agent p50 / direct p50 = **{ratio:.3}** (goal ≤ {goal}: {})",
            if ratio <= goal { "met" } else { "not met" }
        );
    }
    let _ = writeln!(m);
    Ok(())
}

fn issuance_section(m: &mut String, issuance: &Value) -> Result<()> {
    let f = "issuance.json";
    let generation = num(issuance, &["generation"], f)?;
    let bit_rate = num(issuance, &["bit_rate"], f)?;
    let _ = writeln!(m, "## The desk: personalization with verification\n");
    let _ = writeln!(
        m,
        "`issuance` through pcscd on paced blank cards (generation {generation}, {bit_rate} bit/s): insertion, the plan, \
         read-back verification of every record and key, removal; journal on disk, keys from the store. The floor is \
         the plan's own minimum: its state-changing commands alone, their wire bytes and EEPROM pages.\n"
    );
    let _ = writeln!(m, "| per card | APDUs | bytes | modeled card s | wall s |");
    let _ = writeln!(m, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        m,
        "| issued and verified | {} | {} | {:.2} | {:.2} |",
        num(issuance, &["per_card", "apdus"], f)?,
        num(issuance, &["per_card", "bytes"], f)?,
        num(issuance, &["per_card", "modeled_s"], f)?,
        num(issuance, &["per_card", "wall_s"], f)?
    );
    let floor = issuance.get("floor").filter(|v| !v.is_null());
    let verified = issuance.get("verified_floor").filter(|v| !v.is_null());
    for (label, fl) in [("the plan's floor", floor), ("the floor of a verified card", verified)] {
        if let Some(fl) = fl {
            let _ = writeln!(
                m,
                "| {label} | {} | {} | {:.2} | |",
                num(fl, &["apdus"], f)?,
                num(fl, &["bytes"], f)?,
                num(fl, &["modeled_s"], f)?
            );
        }
    }
    let ratios = |fl: &Value| -> Result<(f64, f64, f64)> {
        Ok((
            num(issuance, &["per_card", "apdus"], f)? / num(fl, &["apdus"], f)?,
            num(issuance, &["per_card", "bytes"], f)? / num(fl, &["bytes"], f)?,
            num(issuance, &["per_card", "modeled_s"], f)? / num(fl, &["modeled_s"], f)?,
        ))
    };
    let _ = writeln!(m);
    if let Some(fl) = floor {
        let (a, b, t) = ratios(fl)?;
        let _ = writeln!(
            m,
            "- Issued / the plan's floor (its state-changing commands alone): **{a:.2}×** APDUs, {b:.2}× bytes, \
             {t:.2}× modeled time. The goal of ≤ 1.3× APDUs is not met against this floor: proving every key by an \
             authentication of its own cannot fit in it (`issuance-cli/tests/issue.rs`, `proofs`)."
        );
    }
    if let (Some(fl), Some(vf)) = (floor, verified) {
        let (a, b, t) = ratios(vf)?;
        let _ = writeln!(
            m,
            "- Issued / the floor of a verified card (the plan's floor plus the least verification of CARD-PROFILE \
             §8 step 7: one proof per key, the PIN, each EF read back once — {} APDUs more; `Plan::verified_floor`): \
             **{a:.3}×** APDUs, **{b:.3}×** bytes, {t:.3}× modeled time (goal ≤ 1.3: {}).",
            num(vf, &["apdus"], f)? - num(fl, &["apdus"], f)?,
            if a <= 1.3 && b <= 1.3 { "met" } else { "not met" }
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(m, "| readers | cards | seconds | cards per hour |");
    let _ = writeln!(m, "|---:|---:|---:|---:|");
    for r in issuance.get("readers").and_then(Value::as_array).ok_or_else(|| anyhow!("{f}: no readers"))? {
        let _ = writeln!(
            m,
            "| {} | {} | {:.1} | {:.0} |",
            num(r, &["readers"], f)?,
            num(r, &["cards"], f)?,
            num(r, &["seconds"], f)?,
            num(r, &["cards_per_hour"], f)?
        );
    }
    let _ = writeln!(m);
    Ok(())
}

fn keysets_section(m: &mut String, keysets: &Value, python: &Value) -> Result<()> {
    let (f, pf) = ("keysets.json", "python-keysets.json");
    let _ = writeln!(m, "## The key service: card key sets per second\n");
    let _ = writeln!(
        m,
        "A card's full key set, `Div(region key, card factor)` for every key of the profile (CARD-PROFILE §5.2): \
         key-mgmt from region keys in memory, from the store per call (row checks, TR-31 unwrap, region Div) and per \
         batch (the region level unwrapped once and cached for the batch), against Python `cryptography` doing the \
         same diversification from region keys in memory (its output checked equal to key-mgmt's). Goal from the \
         store ≥ 5 000/s.\n"
    );
    let _ = writeln!(m, "| algorithm | in memory | store, per call | store, per batch | Python `cryptography` |");
    let _ = writeln!(m, "|---|---:|---:|---:|---:|");
    for (key, label) in [("tdes", "3DES"), ("sm4", "SM4")] {
        let _ = writeln!(
            m,
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} |",
            num(keysets, &[key, "in_memory_per_s"], f)?,
            num(keysets, &[key, "store_per_call_per_s"], f)?,
            num(keysets, &[key, "store_batch_per_s"], f)?,
            num(python, &[key, "per_s"], pf)?
        );
    }
    let _ = writeln!(m);
    Ok(())
}
