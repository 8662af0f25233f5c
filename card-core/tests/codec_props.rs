//! Property tests of `card_core::codec` and `card_core::tlv`, and the ISO/IEC 7064 vector files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use card_core::codec::{
    decode, decode_an, decode_cn, decode_dec, encode, encode_an, encode_cn, encode_dec, gbk_encode, mod11_2_check,
    mod37_2_check, Format,
};
use card_core::tlv::{parse_ber, Limits, RecordTlv};
use proptest::prelude::*;

/// Characters GBK can encode: ASCII without NUL, common Chinese, and anything the encoder takes.
fn gbk_char() -> impl Strategy<Value = char> {
    prop_oneof![
        (0x01u8..0x7F).prop_map(char::from),
        prop::sample::select(
            "张三李四王五赵钱孙李周吴郑社会保障卡号姓名民族汉壮满回藏维吾尔·、（）".chars().collect::<Vec<_>>()
        ),
        any::<char>().prop_filter("GBK-encodable, not NUL", |c| *c != '\0' && gbk_encode(&c.to_string()).is_ok()),
    ]
}

/// GBK text that does not end in a space (trailing spaces read back as padding).
fn gbk_text() -> impl Strategy<Value = String> {
    prop::collection::vec(gbk_char(), 0..20)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("no trailing space", |s| !s.ends_with(' '))
}

proptest! {
    #[test]
    fn cn_round_trips(digits in "[0-9]{0,24}", extra in 0usize..4) {
        let len = digits.len().div_ceil(2) + extra;
        let bytes = encode_cn(&digits, len).unwrap();
        prop_assert_eq!(bytes.len(), len);
        prop_assert_eq!(decode_cn(&bytes).unwrap(), digits);
    }

    #[test]
    fn cn_too_long_is_an_error(digits in "[0-9]{3,24}") {
        let len = digits.len().div_ceil(2) - 1;
        prop_assert!(encode_cn(&digits, len).is_err());
    }

    #[test]
    fn an_round_trips(text in gbk_text(), extra in 0usize..4) {
        let gbk_len = gbk_encode(&text).unwrap().len();
        let bytes = encode_an(&text, gbk_len + extra).unwrap();
        prop_assert_eq!(bytes.len(), gbk_len + extra);
        prop_assert_eq!(decode_an(&bytes).unwrap(), text.clone());
        prop_assert_eq!(decode(Format::An, &encode(Format::An, &text, gbk_len + extra).unwrap()).unwrap(), text.clone());
        if gbk_len > 0 {
            prop_assert!(encode_an(&text, gbk_len - 1).is_err());
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for f in [Format::Cn, Format::An, Format::B, Format::Dec, Format::Hex] {
            let _ = decode(f, &bytes);
        }
    }

    #[test]
    fn dec_round_trips(value in any::<u64>(), len in 0usize..12) {
        match encode_dec(value, len) {
            Ok(bytes) => {
                prop_assert_eq!(bytes.len(), len);
                prop_assert_eq!(decode_dec(&bytes).unwrap(), value);
                prop_assert_eq!(decode(Format::Dec, &bytes).unwrap(), value.to_string());
            }
            Err(_) => prop_assert!(len < 8 && value >> (8 * len) != 0),
        }
    }

    #[test]
    fn b_and_hex_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        for f in [Format::B, Format::Hex] {
            let text = decode(f, &bytes).unwrap();
            prop_assert_eq!(&text, &text.to_uppercase());
            prop_assert_eq!(encode(f, &text, bytes.len()).unwrap(), bytes.clone());
            prop_assert_eq!(encode(f, &text.to_lowercase(), bytes.len()).unwrap(), bytes.clone());
        }
    }

    #[test]
    fn record_tlv_round_trips(tag in 1u8..0xFF, value in prop::collection::vec(any::<u8>(), 0..=255), pad in 0usize..8) {
        let rec = RecordTlv { tag, value };
        let mut bytes = rec.encode().unwrap();
        prop_assert_eq!(RecordTlv::parse(&bytes).unwrap(), rec.clone());
        bytes.extend(std::iter::repeat_n(0xFF, pad));
        prop_assert_eq!(RecordTlv::parse(&bytes).unwrap(), rec);
    }

    #[test]
    fn record_sequences_round_trip(items in prop::collection::vec((1u8..0xFF, prop::collection::vec(any::<u8>(), 0..40)), 0..10)) {
        let items: Vec<RecordTlv> = items.into_iter().map(|(tag, value)| RecordTlv { tag, value }).collect();
        let bytes = RecordTlv::encode_all(&items).unwrap();
        prop_assert_eq!(RecordTlv::parse_all(&bytes).unwrap(), items.clone());
        prop_assert_eq!(RecordTlv::parse_nested(&bytes).unwrap(), items);
    }

    #[test]
    fn record_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = RecordTlv::parse(&bytes);
        let _ = RecordTlv::parse_all(&bytes);
    }

    #[test]
    fn ber_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_ber(&bytes, Limits::default());
        let _ = card_core::tlv::parse_fci(&bytes);
    }

    /// Deep nesting of 6F/70/A5 templates with consistent or wild lengths: an error, never a
    /// stack overflow.
    #[test]
    fn ber_deep_nesting_never_overflows(
        tags in prop::collection::vec(prop::sample::select(vec![0x6Fu8, 0x70, 0xA5, 0x61]), 1..20_000),
        wild in any::<bool>(),
        leaf in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut data = Vec::new();
        let n = tags.len();
        for (i, tag) in tags.iter().enumerate() {
            data.push(*tag);
            data.push(0x84);
            let inner = 6 * (n - i - 1) + leaf.len();
            let len = if wild { u32::MAX - i as u32 } else { inner as u32 };
            data.extend(len.to_be_bytes());
        }
        data.extend(&leaf);
        let limits = Limits { max_len: usize::MAX, max_items: usize::MAX, ..Limits::default() };
        let result = parse_ber(&data, limits);
        if n > limits.max_depth {
            prop_assert!(result.is_err());
        }
    }

    /// A valid structure within the limits parses back to the same bytes.
    #[test]
    fn ber_nested_valid_round_trips(depth in 1usize..8, value in prop::collection::vec(any::<u8>(), 0..100)) {
        let mut data = [vec![0x04, value.len() as u8], value].concat();
        for _ in 1..depth {
            let mut outer = vec![0x70];
            outer.extend(if data.len() < 0x80 { vec![data.len() as u8] } else { vec![0x81, data.len() as u8] });
            outer.extend(data);
            data = outer;
        }
        let tlvs = parse_ber(&data, Limits::default()).unwrap();
        prop_assert_eq!(tlvs.len(), 1);
        prop_assert_eq!(tlvs[0].to_vec(), data);
    }

    #[test]
    fn mod11_2_appended_check_validates(body in "[0-9]{1,30}") {
        let check = mod11_2_check(&body).unwrap();
        let value = |c: char| if c == 'X' { 10 } else { c.to_digit(10).unwrap() };
        let p = format!("{body}{check}").chars().fold(0, |p, c| (2 * p + value(c)) % 11);
        prop_assert_eq!(p, 1);
    }

    #[test]
    fn mod37_2_appended_check_validates(body in "[0-9A-Z]{1,30}") {
        const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
        let check = mod37_2_check(&body).unwrap();
        let p = format!("{body}{check}").chars().fold(0, |p, c| (2 * p + ALPHABET.find(c).unwrap()) % 37);
        prop_assert_eq!(p, 1);
    }
}
