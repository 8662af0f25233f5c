//! Everything that can go wrong in issuance, grouped by who is at fault (rustls `error/mod.rs`): the holder's
//! data, the operator (arguments, files, the card presented), the card (the link, a refusal, nonsense, not the
//! card written), the key store, the profile, the journal, a defect. Each group is a typed enum carrying the
//! facts (line and field, key name and version, DF and EF, expected and found values) and keeping its source;
//! the words the user reads are made only by `Display`. [`Error::fault`] says who is at fault, the one thing
//! the command line's exit code is made from.
//!
//! No PIN and no key is in any of these: a PIN refused is named as "the initial PIN", never shown.

use std::fmt;
use std::path::PathBuf;

use card_core::codec::{CodecError, Format};

/// Everything that can go wrong in issuance, grouped by who is at fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The holder's data cannot go on a card: its line and field, as the holders file's refusals
    /// ([`crate::holders::HolderError`]).
    Holder(HolderFault),
    /// The operator: an argument, a file, a card that is not the one the command is for, or a card in a state
    /// that does not allow it.
    Input(InputError),
    /// The card, the link to it, or the APDU layer failed; the card refused a command (status word).
    Card(card_core::Error),
    /// The card answered something that makes no sense.
    Malformed(Malformed),
    /// The card does not hold what was written (read-back, key info, authentication): not the card written.
    Verify(Mismatch),
    /// The key store refused (locked, wrong passphrase, damaged) or failed.
    KeyStore(key_mgmt::Error),
    /// A key the card needs is not in the key set.
    Keys(KeyError),
    /// The profile is not usable for issuance.
    Profile(ProfileError),
    /// The journal (SQLite) failed.
    Sqlite(rusqlite::Error),
    /// The journal (PostgreSQL) failed: the server, the link to it, or a statement it refused.
    Postgres(postgres::Error),
    /// The journal's content is inconsistent.
    Journal(JournalError),
    /// A defect of this program.
    Internal(Defect),
}

/// Who is at fault for an [`Error`]: what the command line's exit code says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The holder's data or the operator's input (arguments, files, the card presented).
    Input,
    /// The reader, the link to the card, pcscd.
    Reader,
    /// The card refused a command.
    CardRefused,
    /// The card answered nonsense or is not the card written: it is rejected.
    CardRejected,
    /// The key store: locked, wrong passphrase, a key missing.
    KeyStore,
    /// Anything else: the profile, the journal, a defect.
    Other,
}

impl Error {
    /// Who is at fault (the exit code of the command line is made from this, and from nothing else).
    pub fn fault(&self) -> Fault {
        use card_core::Error as C;
        match self {
            Error::Holder(_) | Error::Input(_) => Fault::Input,
            Error::Card(C::Transport(_)) => Fault::Reader,
            Error::Card(C::Card(_) | C::WrongPin { .. } | C::Blocked(_) | C::PinBlocked | C::AuthFailed { .. }) => {
                Fault::CardRefused
            }
            Error::Card(C::Protocol(_) | C::Tlv(_)) | Error::Malformed(_) | Error::Verify(_) => Fault::CardRejected,
            Error::Card(_) => Fault::Other,
            Error::KeyStore(_) | Error::Keys(_) => Fault::KeyStore,
            Error::Profile(_) | Error::Sqlite(_) | Error::Postgres(_) | Error::Journal(_) | Error::Internal(_) => {
                Fault::Other
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Holder(e) => e.fmt(f),
            Error::Input(e) => e.fmt(f),
            Error::Card(e) => e.fmt(f),
            Error::Malformed(e) => write!(f, "malformed card answer: {e}"),
            Error::Verify(e) => write!(f, "verification failed: {e}"),
            Error::KeyStore(e) => e.fmt(f),
            Error::Keys(e) => write!(f, "keys: {e}"),
            Error::Profile(e) => write!(f, "profile: {e}"),
            Error::Sqlite(e) => write!(f, "journal: {e}"),
            // the server's own words (the crate's Display says only "db error")
            Error::Postgres(e) => match e.as_db_error() {
                // a hot standby (or a read-only default) refuses every write with this code
                Some(db) if *db.code() == postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION => write!(
                    f,
                    "journal server: {}: the journal server is read-only (a standby?): desks write to the primary",
                    db.message()
                ),
                Some(db) => write!(f, "journal server: {}", db.message()),
                None => write!(f, "journal: {e}"),
            },
            Error::Journal(e) => write!(f, "journal: {e}"),
            Error::Internal(e) => write!(f, "internal: {e}"),
        }
    }
}

impl std::error::Error for Error {
    /// The source of the group's error: a group is what went wrong, not why, so its own source is this one's.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Holder(e) => e.source(),
            Error::Input(e) => e.source(),
            Error::Card(e) => e.source(),
            Error::Malformed(e) => e.source(),
            Error::Verify(e) => e.source(),
            Error::KeyStore(e) => e.source(),
            Error::Keys(e) => e.source(),
            Error::Profile(e) => e.source(),
            Error::Sqlite(e) => Some(e),
            Error::Postgres(e) => Some(e),
            Error::Journal(e) => e.source(),
            Error::Internal(e) => e.source(),
        }
    }
}

macro_rules! from_group {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$v(e)
            }
        }
    )*};
}

from_group! {
    HolderFault => Holder,
    InputError => Input,
    card_core::Error => Card,
    Malformed => Malformed,
    Mismatch => Verify,
    key_mgmt::Error => KeyStore,
    KeyError => Keys,
    ProfileError => Profile,
    rusqlite::Error => Sqlite,
    postgres::Error => Postgres,
    JournalError => Journal,
    Defect => Internal,
}

impl From<card_core::apdu::ApduError> for Error {
    fn from(e: card_core::apdu::ApduError) -> Self {
        Error::Card(e.into())
    }
}

impl From<card_core::transport::TransportError> for Error {
    fn from(e: card_core::transport::TransportError) -> Self {
        Error::Card(e.into())
    }
}

/// A holder whose data cannot go on a card, found after validation: its line and field.
#[derive(Debug, thiserror::Error)]
#[error("holder line {line}, field {field}: {problem}")]
pub struct HolderFault {
    /// Line of the holders file.
    pub line: u64,
    /// The field (`region_code`, `photo`, or the profile's field name: `name`, `birth_date`, …).
    pub field: &'static str,
    /// What is wrong with it.
    #[source]
    pub problem: HolderProblem,
}

/// What is wrong with a holder's field ([`HolderFault`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HolderProblem {
    /// Not a region code.
    #[error("{0}")]
    Region(#[source] CodecError),
    /// The value does not fit its card item.
    #[error("{ef} tag {tag:02X} ({format}, {len} bytes): {source}")]
    DoesNotFit {
        /// The EF (`EF05`, `EF06`).
        ef: String,
        /// The item's tag.
        tag: u8,
        /// The item's format.
        format: Format,
        /// The item's length in bytes.
        len: usize,
        /// Why it does not fit.
        #[source]
        source: CodecError,
    },
    /// The photo file cannot be read.
    #[error("{}: {source}", .path.display())]
    Photo {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The operator's input: arguments, files, the card presented, a card's state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The journal's `postgresql://` URL cannot be read (the URL is not repeated: it may hold a secret).
    #[error("the journal URL is not a valid postgresql:// URL")]
    JournalUrl,
    /// The journal's URL holds a password: passwords are never given on the command line.
    #[error(
        "the journal URL holds a password: remove it, and give it in --journal-password-file \
         (ISSUANCE_JOURNAL_PASSWORD_FILE) or PGPASSWORD"
    )]
    JournalPasswordInUrl,
    /// A desk id that is not 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[error("desk id {id} is not valid: 1 to 64 letters, digits, '.', '_' or '-' (--desk, ISSUANCE_DESK)")]
    DeskId {
        /// The id given (escaped, cut).
        id: String,
    },
    /// An operator name that is empty, too long or holds control characters.
    #[error("operator {operator} is not valid: 1 to 64 printable characters (--operator, ISSUANCE_OPERATOR)")]
    Operator {
        /// The name given (escaped, cut).
        operator: String,
    },
    /// The card in the reader has no card in the journal.
    #[error("this card is not in the journal")]
    UnknownCard,
    /// The card in the reader is not the card the command is for.
    #[error("the card in the reader (chip {chip}) is not card {card_number} (chip {expected_chip})")]
    WrongCard {
        /// The chip serial of the card in the reader.
        chip: String,
        /// The card asked for.
        card_number: String,
        /// Its chip serial in the journal.
        expected_chip: String,
    },
    /// A blank card was expected and the card in the reader is not one: nothing was sent to it but SELECT MF and
    /// GET DATA, nothing was journalled.
    #[error(
        "the card in the reader (chip {chip}) is not a blank card: its MF key is {}{}; insert a blank card",
        mf_key_version.map_or_else(|| "missing".to_owned(), |v| format!("version {v}")),
        known.as_deref().map(|k| format!(" — the journal has it as {k}")).unwrap_or_default()
    )]
    NotBlank {
        /// The chip serial of the card in the reader.
        chip: String,
        /// The MF master key's version on it (`00` is the transport key of a blank card).
        mf_key_version: Option<u8>,
        /// What the journal knows of this chip (card number, state, holder line), if anything.
        known: Option<String>,
    },
    /// The card in the reader is not the journal's card of its chip (another card answers with this chip serial,
    /// or the card holds another card identifier): nothing that writes or counts a try was sent.
    #[error("the card in the reader holds card identifier {found}, not {expected} (card {card_number}): not this journal's card")]
    NotThisCard {
        /// The card identifier the card holds (hex), or a description when it could not be read.
        found: String,
        /// The journal's card identifier.
        expected: String,
        /// The journal's card number.
        card_number: String,
    },
    /// The card in the reader is not the card the operator named: nothing that changes it or counts a try was sent.
    #[error("the card in the reader is card {found}, not card {expected}: nothing was sent to it")]
    OtherCard {
        /// The card number the card holds (or a description when it could not be read).
        found: String,
        /// The card number named on the command line.
        expected: String,
    },
    /// The card in the reader is an unfinished card of the journal: `resume` finishes it.
    #[error("this card (chip {chip}) is card {card_number} of holder line {holder_line}, not finished: use `issuance resume`")]
    Unfinished {
        /// The chip serial.
        chip: String,
        /// Its card number.
        card_number: String,
        /// Its holder's line.
        holder_line: i64,
    },
    /// The card is not `issued`, which the command needs.
    #[error("card {card_number} is {state}, not issued")]
    NotIssued {
        /// The card.
        card_number: String,
        /// Its state.
        state: String,
    },
    /// Only an `issued` card can be replaced.
    #[error("card {card_number} is {state}, not issued: it cannot be replaced")]
    NotReplaceable {
        /// The card.
        card_number: String,
        /// Its state.
        state: String,
    },
    /// The holder has an own initial PIN, which is never journalled: the holders file must be given again.
    #[error("holder line {line} has an own initial PIN: give --holders")]
    PinNeeded {
        /// The holder's line.
        line: i64,
    },
    /// The initial PIN does not fit the card's PIN record.
    #[error("the initial PIN does not fit the card's PIN of {bytes} bytes")]
    PinTooLong {
        /// The PIN record's length in bytes (BCD).
        bytes: usize,
    },
    /// The region has issued card numbers up to 99999999.
    #[error("region {region} has used up its card numbers")]
    RegionExhausted {
        /// The region code.
        region: String,
    },
    /// The issue date plus the validity is not a date.
    #[error("expiry date: {source}")]
    Expiry {
        /// The issue date (`YYYYMMDD`).
        issue_date: String,
        /// The validity in years.
        validity_years: u16,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// Cards of the batch failed (see `status`, then `resume`).
    #[error("{failed} cards failed: see `issuance status`, then `issuance resume`")]
    CardsFailed {
        /// How many.
        failed: usize,
    },
    /// The journal URL's `sslmode` is not one of libpq's (`allow` is not supported either).
    #[error("sslmode={0} in the journal URL: use disable, prefer, require, verify-ca or verify-full")]
    JournalSslMode(String),
    /// `sslmode=verify-ca` or `verify-full` without the CA to verify with.
    #[error(
        "sslmode={0} in the journal URL needs sslrootcert=FILE, the CA certificate (PEM) that signs the journal \
         server's certificate (the system's roots are not used)"
    )]
    JournalRootCertMissing(&'static str),
    /// The CA file of the journal URL (`sslrootcert`) cannot be read or holds no usable certificate.
    #[error("sslrootcert {} of the journal URL: {source}", .path.display())]
    JournalRootCert {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `sslcert` without `sslkey` in the journal URL, or the other way round.
    #[error(
        "{given}=FILE in the journal URL without {missing}=FILE: a client certificate needs both sslcert (the \
         certificate, PEM) and sslkey (its private key, PEM)"
    )]
    JournalClientCertIncomplete {
        /// The parameter given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// `sslcert` and `sslkey` with `sslmode=disable` in the journal URL.
    #[error("sslcert and sslkey in the journal URL need TLS, and sslmode=disable turns it off")]
    JournalClientCertWithoutTls,
    /// The client certificate file of the journal URL (`sslcert`) cannot be read or holds no usable certificate.
    #[error("sslcert {} of the journal URL: {source}", .path.display())]
    JournalClientCert {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        #[source]
        source: std::io::Error,
    },
    /// The private key file of the journal URL (`sslkey`) cannot be read, holds no usable key, or not the key of
    /// the certificate.
    #[error("sslkey {} of the journal URL: {source}", .path.display())]
    JournalClientKey {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        #[source]
        source: std::io::Error,
    },
    /// A journal or dump to import cannot be: not a journal, a newer schema, a dump cut short.
    #[error(transparent)]
    Transfer(crate::journal::transfer::TransferError),
}

/// The card answered something that makes no sense.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The ATR has no historical bytes (the card factor is there).
    #[error("ATR without historical bytes")]
    NoHistoricalBytes,
    /// GET DATA key info cannot be parsed.
    #[error("key info of {len} bytes")]
    KeyInfo {
        /// The bytes received.
        len: usize,
        /// Why.
        #[source]
        source: card_core::Error,
    },
    /// A key the profile puts in a DF is not in its key info.
    #[error("{df} key {kid:02X} ({name}) missing from key info")]
    KeyMissing {
        /// The DF.
        df: String,
        /// The key id.
        kid: u8,
        /// The key's store name.
        name: String,
    },
}

/// The card does not hold what was written: read back, key info, authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// Key info lists a written key at another version or algorithm, or not at all.
    #[error("{df} key {kid:02X} ({name}): key info {found:02X?}{}, expected version {expected}",
            if *.after_rekey { " after rekey" } else { "" })]
    KeyVersion {
        /// The DF.
        df: String,
        /// The key id.
        kid: u8,
        /// The key's store name.
        name: String,
        /// The key info entry found (kid, version, algorithm, tries), if any.
        found: Option<[u8; 4]>,
        /// The version written.
        expected: u8,
        /// Whether this was after a rekey (secure WRITE KEY) rather than the read-back of a new card.
        after_rekey: bool,
    },
    /// INTERNAL AUTHENTICATE answered another cryptogram than IRK gives.
    #[error("{df}: internal authentication answer does not match IRK")]
    InternalAuth {
        /// The DF.
        df: String,
    },
    /// The initial PIN does not verify.
    #[error("initial PIN does not verify: {0}")]
    Pin(#[source] card_core::Error),
    /// A record reads back differently.
    #[error("{ef} record {record} (tag {tag:02X}) reads back differently")]
    Record {
        /// The EF.
        ef: String,
        /// The record number.
        record: u8,
        /// The item's tag.
        tag: u8,
    },
    /// A binary EF reads back differently.
    #[error("{ef} reads back differently")]
    Binary {
        /// The EF.
        ef: String,
    },
    /// After APPLICATION BLOCK, the application still answers SELECT.
    #[error("after APPLICATION BLOCK, SELECT {df} still answers 9000")]
    NotBlocked {
        /// The DF blocked.
        df: String,
    },
    /// The MF's key is neither the transport key nor the MF MK of the card's key set.
    #[error("MF key version {found}: neither transport key nor MK_MF")]
    MfKeyVersion {
        /// The version the card holds.
        found: u8,
        /// The transport key's version.
        transport: u8,
        /// MK_MF's version in the card's key set.
        mk_mf: u8,
    },
}

/// A key the card needs is not in the key set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A profile key has no active version of the generation's algorithm: what the store holds of it, and what
    /// to do.
    #[error("{}", missing_message(.name, *.generation, .absent))]
    Missing {
        /// The key's store name.
        name: String,
        /// The card generation.
        generation: card_core::profile::Generation,
        /// What the store holds of it.
        absent: crate::prepare::Absent,
    },
    /// The card's key set has no key of that name.
    #[error("no key {name}")]
    NotInSet {
        /// The key's store name.
        name: String,
    },
    /// The key store has no active version of the key.
    #[error("no active {name}")]
    NoActive {
        /// The key's store name.
        name: String,
    },
    /// The key store has no version of the key that the card holds.
    #[error("no {name} at the card's version {version}")]
    NotAtCardVersion {
        /// The key's store name.
        name: String,
        /// The version the card holds.
        version: u8,
    },
    /// This key source gives only the active versions.
    #[error("this key source gives no key versions but the active ones")]
    NoVersions,
    /// This key source gives no region keys.
    #[error("this key source gives no region keys")]
    NoRegionKeys,
}

/// The card generations whose cards use `alg`, in words.
fn generations_of(alg: card_core::crypto::Algorithm) -> &'static str {
    use card_core::crypto::Algorithm;
    match alg {
        Algorithm::Tdes => "for generations 1–2",
        Algorithm::Sm4 => "for generation 3",
        Algorithm::Aes128 => "for no card generation",
    }
}

/// The `keymgmt --alg` name of `alg`.
fn keymgmt_alg(alg: card_core::crypto::Algorithm) -> &'static str {
    use card_core::crypto::Algorithm;
    match alg {
        Algorithm::Tdes => "3des",
        Algorithm::Sm4 => "sm4",
        Algorithm::Aes128 => "aes",
    }
}

/// [`KeyError::Missing`] in words: what the store holds of the key, and what to do — generate the generation's
/// algorithm's keys, activate them, or issue cards of the generation whose algorithm the store has.
fn missing_message(name: &str, g: card_core::profile::Generation, a: &crate::prepare::Absent) -> String {
    use card_core::crypto::Algorithm;
    let alg = crate::prepare::algorithm_of(g);
    let keymgmt = match &a.store {
        Some(p) => format!("keymgmt --store {p} --passphrase-file FILE"),
        None => "keymgmt …".to_owned(),
    };
    let mut msg = format!("no active {} {name} in the key store (generation {g} cards use {}", alg.name(), alg.name());
    let mut todo = format!(
        "generate them with `{keymgmt} generate-profile-keys --alg {} --version {} --activate`",
        keymgmt_alg(alg),
        a.next_version.max(1)
    );
    if !a.held.is_empty() {
        let held: Vec<String> = a
            .held
            .iter()
            .map(|(al, v, st)| {
                let st = if st == "active" { String::new() } else { format!(" ({st})") };
                format!("{} v{v}{st}, {}", al.name(), generations_of(*al))
            })
            .collect();
        msg.push_str(&format!("; the store has {name} as {}", held.join("; ")));
        if let Some((_, v, _)) =
            a.held.iter().filter(|(al, _, st)| *al == alg && st == "pre-active").max_by_key(|h| h.1)
        {
            todo = format!("activate it with `{keymgmt} activate --name {name} --version {v}`");
        }
        let other = a.held.iter().find(|(al, _, st)| *al != alg && st == "active").map(|h| h.0);
        let other_gen = match other {
            Some(Algorithm::Tdes) => Some(2),
            Some(Algorithm::Sm4) => Some(3),
            _ => None,
        };
        if let Some(n) = other_gen.filter(|n| *n != g.number()) {
            todo.push_str(&format!(", or issue generation {n} cards with `--generation {n}`"));
        }
    }
    msg.push_str(&format!("): {todo}"));
    msg
}

/// The profile is not usable for issuance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The profile has no such DF.
    #[error("no DF {df}")]
    NoDf {
        /// The DF.
        df: String,
    },
    /// The DF has no AID (issuance selects DFs by name).
    #[error("{df} has no AID")]
    NoAid {
        /// The DF.
        df: String,
    },
    /// The DF has no such key.
    #[error("{df} has no {key}")]
    NoKey {
        /// The DF.
        df: String,
        /// The key's profile name (`MK`, `UKMF`, …).
        key: String,
    },
    /// An EF cannot be created on the reference COS as the profile has it.
    #[error("{df} {ef}: {source}")]
    Ef {
        /// The DF.
        df: String,
        /// The EF.
        ef: String,
        /// Why.
        #[source]
        source: card_core::Error,
    },
    /// A key usage the reference COS does not know.
    #[error("key usage {usage} unknown to the reference COS")]
    KeyUsage {
        /// The usage's profile name.
        usage: String,
    },
    /// More records in an EF than a record number holds.
    #[error("{ef}: record number {record}")]
    RecordNumber {
        /// The EF.
        ef: String,
        /// The record's position (1-based).
        record: usize,
    },
}

/// What the journal's content says of itself when it is inconsistent, and what row it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// A card (row id).
    Card(i64),
    /// A batch.
    Batch(i64),
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Row::Card(id) => write!(f, "card {id}"),
            Row::Batch(id) => write!(f, "batch {id}"),
        }
    }
}

/// The journal's content is inconsistent (its I/O is [`Error::Sqlite`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal server could not be reached again within the wait (`--journal-wait`).
    #[error("the journal server did not answer for {waited} s: {source}")]
    Unreachable {
        /// Seconds waited.
        waited: u64,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },
    /// Written by a newer program.
    #[error("journal schema {found} is newer than this program ({supported})")]
    NewerSchema {
        /// The journal's schema version.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// A journalled holder cannot be read.
    #[error("holder of batch {batch}{}: {source}", .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Holder {
        /// The batch.
        batch: i64,
        /// The holder's line, when known.
        line: Option<i64>,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A region's highest sequence number is negative.
    #[error("negative sequence {seq} in region {region}")]
    NegativeSequence {
        /// The region.
        region: String,
        /// The sequence number.
        seq: i64,
    },
    /// A card's sequence number is negative.
    #[error("{row}: sequence {seq}")]
    Sequence {
        /// The card.
        row: Row,
        /// The sequence number.
        seq: i64,
    },
    /// A card or batch of a generation this program does not know.
    #[error("{row}: generation {generation}")]
    Generation {
        /// The card or batch.
        row: Row,
        /// The generation journalled.
        generation: i64,
    },
    /// A card without a batch (its holder is in the batch).
    #[error("{row} has no batch")]
    NoBatch {
        /// The card.
        row: Row,
    },
    /// Preparing the card again gives another card id or number than the journal's.
    #[error("{row}: card id or number differs from the journal")]
    Differs {
        /// The card.
        row: Row,
    },
    /// A card's key versions cannot be read.
    #[error("{row} key versions: {source}")]
    KeyVersions {
        /// The card.
        row: Row,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A batch's settings cannot be read.
    #[error("{row}: settings: {source}")]
    Settings {
        /// The batch.
        row: Row,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A batch's issue date is not a date.
    #[error("{row}: issue date: {source}")]
    IssueDate {
        /// The batch.
        row: Row,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// The journal server's certificate does not chain to the CA of `sslrootcert`.
    #[error("the journal server's certificate is not signed by the CA in {}", .ca.display())]
    ServerNotTrusted {
        /// The CA file (`sslrootcert`).
        ca: PathBuf,
        /// rustls' refusal.
        #[source]
        source: rustls::Error,
    },
    /// The journal server's certificate is not for the URL's host (`sslmode=verify-full`).
    #[error("the journal server's certificate is not for {host} (sslmode=verify-full)")]
    ServerName {
        /// The host(s) of the journal URL.
        host: String,
        /// rustls' refusal.
        #[source]
        source: rustls::Error,
    },
    /// The journal server's certificate is refused otherwise (expired, not for a server, …).
    #[error("the journal server's certificate is refused: {0}")]
    ServerCertificate(#[source] rustls::Error),
    /// The journal server answered the TLS request with no, and the URL's `sslmode` requires TLS.
    #[error("the journal server does not offer TLS (sslmode={0})")]
    NoTls(&'static str),
    /// The journal server refuses connections without TLS, and the URL's `sslmode` gave none.
    #[error(
        "the journal server refuses connections without TLS (sslmode={mode}): set sslmode=verify-full and \
         sslrootcert=FILE in the journal URL ({source})"
    )]
    TlsRequired {
        /// The URL's `sslmode`.
        mode: &'static str,
        /// The server's refusal.
        #[source]
        source: postgres::Error,
    },
    /// The journal server requires a client certificate, and the journal URL gives none.
    #[error(
        "the journal server requires a client certificate: set sslcert=FILE and sslkey=FILE in the journal URL \
         (a certificate whose CN is the database user, signed by the CA the server trusts)"
    )]
    ClientCertRequired,
    /// The journal server refused the client certificate during the handshake (not signed by a CA it trusts,
    /// expired).
    #[error("the journal server refuses the client certificate in {} (not signed by a CA it trusts, or expired): {source}", .cert.display())]
    ClientCertRefused {
        /// The certificate file (`sslcert`).
        cert: PathBuf,
        /// The server's alert, as rustls reports it.
        #[source]
        source: rustls::Error,
    },
    /// The journal server took the certificate's chain, but its CN is not the database user.
    #[error("the client certificate in {} is not for database user {user} (its CN must be the user)", .cert.display())]
    ClientCertUser {
        /// The certificate file (`sslcert`).
        cert: PathBuf,
        /// The user of the journal URL.
        user: String,
    },
}

/// A defect of this program: what cannot happen if the program is right.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Defect {
    /// A thread panicked holding the journal's connection.
    #[error("journal connection lock poisoned")]
    JournalLock,
    /// A holder was claimed without the claim having made its card keys.
    #[error("a holder was claimed without its card keys")]
    ClaimWithoutKeys,
    /// A count or size above what the journal keeps (2^63 - 1).
    #[error("{0} is too big for the journal")]
    TooBig(u64),
    /// A value could not be written as JSON.
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    /// A thread panicked holding the key store.
    #[error("key store lock poisoned")]
    KeyStoreLock,
    /// A plan of a generation that does not exist.
    #[error("generation {0}")]
    Generation(u8),
    /// A card number from a sequence number below 10^8 is refused.
    #[error("card number of sequence {seq}: {source}")]
    CardNumber {
        /// The sequence number.
        seq: u64,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// An item value longer than a TLV length byte.
    #[error("tag {tag:02X} too long ({len} bytes)")]
    ValueTooLong {
        /// The tag.
        tag: u8,
        /// The value's length.
        len: usize,
    },
    /// A binary longer than a 15-bit offset reaches.
    #[error("binary too long ({len} bytes)")]
    BinaryTooLong {
        /// The binary's length.
        len: usize,
    },
    /// An imported row refers to a row the import did not make (the dump was checked before).
    #[error("an imported row refers to a row not imported")]
    ImportReference,
    /// rustls refused a TLS configuration that is fixed in this program.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
}

#[cfg(test)]
mod tests {
    use card_core::transport::TransportError;

    use super::*;

    /// The words the user reads are those of the `String` variants these replaced.
    #[test]
    fn display_keeps_the_words() {
        let cases: Vec<(Error, &str)> = vec![
            (
                InputError::NotReplaceable { card_number: "00000001X".into(), state: "failed".into() }.into(),
                "card 00000001X is failed, not issued: it cannot be replaced",
            ),
            (
                InputError::WrongCard {
                    chip: "01".into(),
                    card_number: "00000001X".into(),
                    expected_chip: "02".into(),
                }
                .into(),
                "the card in the reader (chip 01) is not card 00000001X (chip 02)",
            ),
            (
                InputError::Unfinished { chip: "01".into(), card_number: "00000001X".into(), holder_line: 3 }.into(),
                "this card (chip 01) is card 00000001X of holder line 3, not finished: use `issuance resume`",
            ),
            (InputError::PinNeeded { line: 6 }.into(), "holder line 6 has an own initial PIN: give --holders"),
            (InputError::UnknownCard.into(), "this card is not in the journal"),
            (Malformed::NoHistoricalBytes.into(), "malformed card answer: ATR without historical bytes"),
            (
                Malformed::KeyMissing { df: "SSSE".into(), kid: 0x0A, name: "RKSSSE".into() }.into(),
                "malformed card answer: SSSE key 0A (RKSSSE) missing from key info",
            ),
            (
                Mismatch::KeyVersion {
                    df: "DF01".into(),
                    kid: 1,
                    name: "UK_DF01".into(),
                    found: Some([1, 2, 3, 4]),
                    expected: 2,
                    after_rekey: false,
                }
                .into(),
                "verification failed: DF01 key 01 (UK_DF01): key info Some([01, 02, 03, 04]), expected version 2",
            ),
            (
                Mismatch::KeyVersion {
                    df: "MF".into(),
                    kid: 0,
                    name: "MK_MF".into(),
                    found: None,
                    expected: 2,
                    after_rekey: true,
                }
                .into(),
                "verification failed: MF key 00 (MK_MF): key info None after rekey, expected version 2",
            ),
            (
                Mismatch::Record { ef: "EF05".into(), record: 7, tag: 0x07 }.into(),
                "verification failed: EF05 record 7 (tag 07) reads back differently",
            ),
            (
                Mismatch::NotBlocked { df: "SSSE".into() }.into(),
                "verification failed: after APPLICATION BLOCK, SELECT SSSE still answers 9000",
            ),
            (
                Mismatch::MfKeyVersion { found: 5, transport: 0, mk_mf: 1 }.into(),
                "verification failed: MF key version 5: neither transport key nor MK_MF",
            ),
            (KeyError::NotInSet { name: "RKSSSE".into() }.into(), "keys: no key RKSSSE"),
            (KeyError::NoActive { name: "MK_MF".into() }.into(), "keys: no active MK_MF"),
            (ProfileError::NoAid { df: "DF01".into() }.into(), "profile: DF01 has no AID"),
            (ProfileError::NoKey { df: "SSSE".into(), key: "UKMF".into() }.into(), "profile: SSSE has no UKMF"),
            (
                JournalError::NewerSchema { found: 9, supported: 3 }.into(),
                "journal: journal schema 9 is newer than this program (3)",
            ),
            (JournalError::NoBatch { row: Row::Card(4) }.into(), "journal: card 4 has no batch"),
            (JournalError::Generation { row: Row::Batch(2), generation: 7 }.into(), "journal: batch 2: generation 7"),
            (Defect::KeyStoreLock.into(), "internal: key store lock poisoned"),
        ];
        for (e, words) in cases {
            assert_eq!(e.to_string(), words);
        }
    }

    /// A holder's field that does not fit names its line and field, as the holders file's refusals do, and keeps
    /// the codec's error as its source.
    #[test]
    fn a_holder_fault_names_line_and_field_and_keeps_its_source() {
        let source = card_core::codec::encode(Format::An, "x".repeat(31).as_str(), 30).unwrap_err();
        let e = Error::from(HolderFault {
            line: 5,
            field: "name",
            problem: HolderProblem::DoesNotFit { ef: "EF06".into(), tag: 0x09, format: Format::An, len: 30, source },
        });
        let words = e.to_string();
        assert!(words.starts_with("holder line 5, field name: EF06 tag 09 (an, 30 bytes): "), "{words}");
        let mut chain = std::error::Error::source(&e);
        let mut causes = 0;
        while let Some(s) = chain {
            assert!(words.ends_with(&s.to_string()), "{s}");
            causes += 1;
            chain = s.source();
        }
        assert!(causes >= 1);
        assert_eq!(e.fault(), Fault::Input);
    }

    /// Who is at fault, by group: what the exit codes are made from.
    #[test]
    fn fault_by_group() {
        use card_core::apdu::StatusWord;
        let card = |e: card_core::Error| Error::from(e).fault();
        assert_eq!(Error::from(InputError::UnknownCard).fault(), Fault::Input);
        assert_eq!(card(TransportError::CardRemoved.into()), Fault::Reader);
        assert_eq!(card(card_core::Error::Card(StatusWord::CONDITIONS_NOT_SATISFIED)), Fault::CardRefused);
        assert_eq!(card(card_core::Error::WrongPin { tries_left: 2 }), Fault::CardRefused);
        assert_eq!(card(card_core::Error::PinBlocked), Fault::CardRefused);
        assert_eq!(Error::from(Malformed::NoHistoricalBytes).fault(), Fault::CardRejected);
        assert_eq!(Error::from(Mismatch::Binary { ef: "EF08".into() }).fault(), Fault::CardRejected);
        assert_eq!(Error::from(KeyError::NoRegionKeys).fault(), Fault::KeyStore);
        assert_eq!(Error::from(ProfileError::NoDf { df: "SSSE".into() }).fault(), Fault::Other);
        assert_eq!(Error::from(JournalError::Differs { row: Row::Card(1) }).fault(), Fault::Other);
        assert_eq!(Error::from(Defect::Generation(9)).fault(), Fault::Other);
    }

    /// No PIN in an error: a PIN that does not fit says how many bytes the card has, not what the PIN is.
    #[test]
    fn a_pin_error_holds_no_pin() {
        let pin = crate::Pin::parse("135790", 4..=6).unwrap();
        let e = Error::from(InputError::PinTooLong { bytes: 2 });
        assert!(pin.bcd(2).is_none());
        assert!(!e.to_string().contains("135790") && !format!("{e:?}").contains("135790"));
    }
}
