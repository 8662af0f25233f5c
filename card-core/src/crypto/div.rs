//! Diversification factors (CARD-PROFILE §5.2). `Div` itself is [`super::CardKey::div`].

use super::CryptoError;

/// Region factor, CARD-PROFILE §5.2: the ASCII of the 6-digit region code followed by `sx`
/// (`73 78`); `"371700"` → `33 37 31 37 30 30 73 78`.
///
/// The code must be exactly 6 ASCII digits (no trimming). A provincial factor is the same
/// with the province's code (e.g. `"370000"`).
pub fn region_factor(region_code: &str) -> Result<[u8; 8], CryptoError> {
    let bytes = region_code.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(CryptoError::InvalidRegionCode(region_code.chars().take(32).collect()));
    }
    let mut out = [0u8; 8];
    out[..6].copy_from_slice(bytes);
    out[6] = b's';
    out[7] = b'x';
    Ok(out)
}

/// Card factor, CARD-PROFILE §5.2: the last 8 bytes of the ATR historical bytes.
///
/// Fewer than 8 historical bytes give [`CryptoError::WrongDataLength`].
pub fn card_factor(historical_bytes: &[u8]) -> Result<[u8; 8], CryptoError> {
    let got = historical_bytes.len();
    let tail = got
        .checked_sub(8)
        .and_then(|start| historical_bytes.get(start..))
        .ok_or(CryptoError::WrongDataLength { expected: "at least 8", got })?;
    let mut out = [0u8; 8];
    out.copy_from_slice(tail);
    Ok(out)
}
