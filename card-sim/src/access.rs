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

/// Who may read or update a file: card-core's reference COS access condition (one type for the issuer that
/// encodes it and the card that decodes it).
pub use card_core::reference_cos::Access as AccessCondition;

/// Checking a condition against the security state.
pub trait Check {
    /// Whether the condition holds. `mac_ok`: a line-protection MAC verified for this command.
    fn is_satisfied(&self, state: &SecurityState, mac_ok: bool) -> bool;
}

impl Check for AccessCondition {
    fn is_satisfied(&self, state: &SecurityState, mac_ok: bool) -> bool {
        let key = |k: u8| mac_ok || state.is_authenticated(k);
        match *self {
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
