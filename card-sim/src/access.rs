//! Access conditions (CARD-PROFILE §3) and the security state they are checked against.
//!
//! # Byte encoding (CREATE FILE)
//!
//! One byte per condition: the high nibble is the kind, the low nibble the key id (kid `0`–`F`)
//! of a key in the key file of the DF that holds the file.
//!
//! | byte | condition |
//! |---|---|
//! | `00` | free |
//! | `10` | PIN verified |
//! | `2k` | external authentication with key `k` |
//! | `3k` | PIN verified **or** key `k` (`PIN\|KEY`) |
//! | `4k` | PIN verified **and** key `k` (`PIN+KEY`) |
//! | `FF` | never |
//!
//! A line-protected update (`04 DC`, `04 D6`, `04 E2`) whose MAC under the DF's STK verifies counts as
//! the key part of a condition (it replaces the external authentication), never as the PIN part.
//!
//! # Security state
//!
//! [`SecurityState`] belongs to the current DF: it is cleared when another DF is selected, on reset
//! and on power-off (CARD-PROFILE §3).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Who may read or update a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessCondition {
    /// Always allowed.
    Free,
    /// After a successful VERIFY PIN.
    Pin,
    /// After a successful EXTERNAL AUTHENTICATE with the key of this kid.
    Key(u8),
    /// PIN verified or the key authenticated (`PIN|KEY`).
    PinOrKey(u8),
    /// PIN verified and the key authenticated (`PIN+KEY`).
    PinAndKey(u8),
    /// Never allowed.
    Never,
}

impl AccessCondition {
    /// Decodes the one-byte form (see the module documentation); `None` for an unassigned byte.
    pub fn from_byte(b: u8) -> Option<AccessCondition> {
        let kid = b & 0x0F;
        match b >> 4 {
            _ if b == 0xFF => Some(AccessCondition::Never),
            0x0 if b == 0x00 => Some(AccessCondition::Free),
            0x1 if b == 0x10 => Some(AccessCondition::Pin),
            0x2 => Some(AccessCondition::Key(kid)),
            0x3 => Some(AccessCondition::PinOrKey(kid)),
            0x4 => Some(AccessCondition::PinAndKey(kid)),
            _ => None,
        }
    }

    /// The one-byte form; `None` if the kid does not fit a nibble.
    pub fn to_byte(self) -> Option<u8> {
        let with = |kind: u8, kid: u8| (kid <= 0x0F).then_some(kind << 4 | kid);
        match self {
            AccessCondition::Free => Some(0x00),
            AccessCondition::Pin => Some(0x10),
            AccessCondition::Key(k) => with(2, k),
            AccessCondition::PinOrKey(k) => with(3, k),
            AccessCondition::PinAndKey(k) => with(4, k),
            AccessCondition::Never => Some(0xFF),
        }
    }

    /// Whether the condition holds. `mac_ok`: a line-protection MAC verified for this command.
    pub fn is_satisfied(self, state: &SecurityState, mac_ok: bool) -> bool {
        let key = |k: u8| mac_ok || state.is_authenticated(k);
        match self {
            AccessCondition::Free => true,
            AccessCondition::Pin => state.pin_verified,
            AccessCondition::Key(k) => key(k),
            AccessCondition::PinOrKey(k) => state.pin_verified || key(k),
            AccessCondition::PinAndKey(k) => state.pin_verified && key(k),
            AccessCondition::Never => false,
        }
    }
}

/// The security state of the current DF.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityState {
    /// VERIFY PIN succeeded since the DF became current.
    pub pin_verified: bool,
    authenticated: BTreeSet<u8>,
}

impl SecurityState {
    /// Whether EXTERNAL AUTHENTICATE succeeded with key `kid` since the DF became current.
    pub fn is_authenticated(&self, kid: u8) -> bool {
        self.authenticated.contains(&kid)
    }

    /// Records a successful external authentication.
    pub fn authenticate(&mut self, kid: u8) {
        self.authenticated.insert(kid);
    }

    /// Forgets an authentication (the key was replaced).
    pub fn forget(&mut self, kid: u8) {
        self.authenticated.remove(&kid);
    }

    /// Clears everything (DF change, reset, power-off).
    pub fn clear(&mut self) {
        *self = SecurityState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::AccessCondition as Ac;
    use super::*;

    #[test]
    fn byte_round_trip() {
        for ac in [Ac::Free, Ac::Pin, Ac::Key(4), Ac::PinOrKey(0x0A), Ac::PinAndKey(7), Ac::Never] {
            assert_eq!(Ac::from_byte(ac.to_byte().unwrap()), Some(ac));
        }
        assert_eq!(Ac::from_byte(0x01), None);
        assert_eq!(Ac::from_byte(0x55), None);
        assert_eq!(Ac::Key(0x10).to_byte(), None);
    }

    #[test]
    fn conditions() {
        let mut s = SecurityState::default();
        assert!(Ac::Free.is_satisfied(&s, false));
        assert!(!Ac::PinOrKey(4).is_satisfied(&s, false));
        assert!(Ac::Key(4).is_satisfied(&s, true));
        s.authenticate(4);
        assert!(Ac::PinOrKey(4).is_satisfied(&s, false));
        assert!(!Ac::PinAndKey(4).is_satisfied(&s, false));
        s.pin_verified = true;
        assert!(Ac::PinAndKey(4).is_satisfied(&s, false));
        assert!(!Ac::Never.is_satisfied(&s, true));
        s.clear();
        assert!(!Ac::Pin.is_satisfied(&s, true));
    }
}
