//! Token values read from Django's cache: the plain-value pickle reader and the JSON-or-pickle
//! decoder in front of it, then the claims read from the value. Nothing may import or call, and
//! no input may expand past the reader's bounds (`-rss_limit_mb` catches one that does).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_infrastructure::auth::pickle::{self, PickleValue};
use stowage_infrastructure::auth::redis_tokens::{claims_of, decode_value};

fn depth(value: &PickleValue) -> usize {
    match value {
        PickleValue::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        PickleValue::Dict(items) => {
            1 + items
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let picked = pickle::decode(data);
    if let Ok(value) = &picked {
        // The reader refuses values nested deeper than 64 levels below the top one.
        assert!(depth(value) <= 65, "nested {} deep", depth(value));
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    let decoded = decode_value(data);
    if !matches!(first, Some(b'{' | b'[')) {
        // Compared as text: a float NaN is not equal to itself.
        let picked = picked.map_err(|e| e.to_string());
        assert_eq!(format!("{decoded:?}"), format!("{picked:?}"));
    }
    if let Ok(value) = &decoded
        && let Some(claims) = claims_of(value)
    {
        let account = value.get("account_id");
        assert!(matches!(account, Some(PickleValue::Int(a)) if *a == claims.account_id.get()));
    }
});
