//! Rekeying a card in circulation: every key whose version on the card (GET DATA key info) is below the
//! key store's highest active version for the card's algorithm is replaced with secure WRITE KEY under
//! the MK the DF holds now; a DF's MK is written last (its own WRITE KEY is protected by the old MK).
//! The key info must then show the new versions, and the journal records them.

use std::collections::BTreeMap;

use card_core::profile::{Df, KeySpec};
use serde::Serialize;

use crate::cos::{secure_write_key, select_aid, select_mf, Tx};
use crate::journal::{state, CardRow};
use crate::plan::store_name;
use crate::prepare::algorithm_of;
use crate::run::{chip_of, generation_of, Issuer};
use crate::{Defect, Error, InputError, JournalError, KeyError, Malformed, Mismatch, ProfileError, Row};

/// One key replaced on the card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rekeyed {
    /// The DF (`MF`, `SSSE`, `DF01`, …).
    pub df: String,
    /// The key's store name.
    pub name: String,
    /// The version the card held.
    pub from: u8,
    /// The version written.
    pub to: u8,
}

fn select(tx: &mut Tx<'_>, df: &Df) -> Result<(), Error> {
    if df.name == "MF" {
        return select_mf(tx);
    }
    let aid = df.aid.as_ref().ok_or_else(|| ProfileError::NoAid { df: df.name.clone() })?;
    select_aid(tx, aid)
}

impl Issuer<'_> {
    /// Updates the keys of the issued card in `t` (found by its chip serial) to the active versions; returns
    /// the card row (after the update) and the keys replaced (none if the card is up to date).
    pub fn rekey_card(&self, t: &mut dyn card_core::transport::Transport) -> Result<(CardRow, Vec<Rekeyed>), Error> {
        let chip = chip_of(t)?;
        let row = self.journal.last_card_of_chip(&hex::encode_upper(chip))?.ok_or(InputError::UnknownCard)?;
        if row.state != state::ISSUED {
            return Err(InputError::NotIssued { card_number: row.card_number, state: row.state }.into());
        }
        let g = generation_of(&row)?;
        let alg = algorithm_of(g);
        let target = self.keys.card_keys(&row.region, &chip, alg)?;
        let dfs: Vec<&Df> = std::iter::once(&self.profile.mf).chain(self.profile.dfs_for(g)).collect();
        let mut tx = t.transaction().map_err(card_core::Error::from)?;
        let tx: &mut Tx<'_> = &mut *tx;
        // the card must hold this row's card identifier before any of its keys is tried (an authentication with a
        // wrong key counts a try)
        crate::verify::ensure_card_id(tx, self.profile, g, &row)?;

        // what the card holds: store name → version, per DF
        let mut held = BTreeMap::new();
        for df in &dfs {
            select(tx, df)?;
            let info = self.cos.key_info(tx)?;
            for k in df.keys_for(g) {
                let v = info.iter().find(|i| i[0] == k.kid).map(|i| i[1]).ok_or_else(|| Malformed::KeyMissing {
                    df: df.name.clone(),
                    kid: k.kid,
                    name: k.name.clone(),
                })?;
                held.insert(store_name(&df.name, &k.name), v);
            }
        }
        let current = self.keys.card_keys_at(&row.region, &chip, alg, &held)?;

        let mut done = Vec::new();
        for df in &dfs {
            let stale = |k: &&KeySpec| -> Result<Option<Rekeyed>, Error> {
                let name = store_name(&df.name, &k.name);
                let to = target.get(&name).ok_or_else(|| KeyError::NoActive { name: name.clone() })?.1;
                let from = held.get(&name).copied().unwrap_or(0);
                Ok((from < to).then(|| Rekeyed { df: df.name.clone(), name, from, to }))
            };
            // the MK last
            let mut keys: Vec<&KeySpec> = df.keys_for(g).collect();
            keys.sort_by_key(|k| k.name == "MK");
            let mut todo = Vec::new();
            for k in keys {
                if let Some(r) = stale(&k)? {
                    todo.push((k, r));
                }
            }
            if todo.is_empty() {
                continue;
            }
            let mk_name = store_name(&df.name, "MK");
            let (mk, _) = current.get(&mk_name).ok_or_else(|| KeyError::NotAtCardVersion {
                version: held.get(&mk_name).copied().unwrap_or(0),
                name: mk_name.clone(),
            })?;
            select(tx, df)?;
            for (k, r) in &todo {
                let (new, v) = target.get(&r.name).ok_or_else(|| KeyError::NoActive { name: r.name.clone() })?;
                secure_write_key(tx, mk, k.kid, k.usage, k.max_tries, (new, v))?;
            }
            let info = self.cos.key_info(tx)?;
            for (k, r) in &todo {
                let found = info.iter().find(|i| i[0] == k.kid);
                if found.map(|i| (i[1], i[2])) != Some((r.to, alg.id())) {
                    return Err(Mismatch::KeyVersion {
                        df: df.name.clone(),
                        kid: k.kid,
                        name: r.name.clone(),
                        found: found.copied(),
                        expected: r.to,
                        after_rekey: true,
                    }
                    .into());
                }
            }
            done.extend(todo.into_iter().map(|(_, r)| r));
        }

        if !done.is_empty() {
            let mut versions: BTreeMap<String, u8> = serde_json::from_str(&row.key_versions)
                .map_err(|source| JournalError::KeyVersions { row: Row::Card(row.id), source })?;
            versions.extend(done.iter().map(|r| (r.name.clone(), r.to)));
            let text = serde_json::to_string(&versions).map_err(Defect::Json)?;
            self.journal.set_key_versions(row.id, &text)?;
        }
        Ok((self.journal.card(row.id)?, done))
    }
}
