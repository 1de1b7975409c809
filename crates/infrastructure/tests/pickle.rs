//! The safe pickle reader against pickles written by CPython's own `pickle` module.

#![allow(missing_docs, clippy::unwrap_used)]

use stowage_infrastructure::auth::pickle::{PickleError, PickleValue, decode};
use stowage_infrastructure::auth::redis_tokens::{claims_of, decode_value};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/pickle/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn pickle_reads_django_token_dicts_of_every_protocol() {
    for name in [
        "user_p2.pickle",
        "user_p3.pickle",
        "user_p4.pickle",
        "user_p5.pickle",
    ] {
        let value = decode(&fixture(name)).unwrap();
        let claims = claims_of(&value).unwrap();
        assert_eq!(claims.user_id.map(|u| u.get()), Some(42), "{name}");
        assert_eq!(claims.account_id.get(), 7, "{name}");
    }
}

#[test]
fn pickle_reads_null_user_and_rich_plain_values() {
    let claims = claims_of(&decode(&fixture("null_user_p4.pickle")).unwrap()).unwrap();
    assert_eq!(claims.user_id, None);
    assert_eq!(claims.account_id.get(), 5);

    let public = decode(&fixture("public_p5.pickle")).unwrap();
    assert_eq!(public.get("account_id"), Some(&PickleValue::Int(9)));
    assert_eq!(
        public.get("name"),
        Some(&PickleValue::Str("Контакт".into()))
    );
    assert_eq!(public.get("enabled"), Some(&PickleValue::Bool(true)));
    assert_eq!(public.get("ratio"), Some(&PickleValue::Float(0.5)));
    assert_eq!(public.get("extra"), Some(&PickleValue::None));
    assert_eq!(
        public.get("tags"),
        Some(&PickleValue::List(vec![
            PickleValue::Str("a".into()),
            PickleValue::Str("b".into())
        ]))
    );

    let big = decode(&fixture("big_ids_p5.pickle")).unwrap();
    assert_eq!(big.get("user_id"), Some(&PickleValue::Int(1 << 40)));
    assert_eq!(big.get("account_id"), Some(&PickleValue::Int(1 << 62)));
}

#[test]
fn pickle_refuses_reduce_and_objects_without_running_them() {
    let marker = std::path::Path::new("/tmp/stowage-pwned");
    let _ = std::fs::remove_file(marker);
    for name in [
        "evil_reduce_p5.pickle",
        "evil_reduce_p2.pickle",
        "object_p4.pickle",
        "ordered_dict_p4.pickle",
    ] {
        let err = decode(&fixture(name)).unwrap_err();
        assert!(matches!(err, PickleError::Refused(_)), "{name}: {err}");
        assert!(decode_value(&fixture(name)).is_err());
    }
    assert!(!marker.exists());
}

#[test]
fn token_value_that_is_not_a_dict_gives_no_claims() {
    let list = decode(&fixture("list_p5.pickle")).unwrap();
    assert_eq!(claims_of(&list), None);
}

#[test]
fn json_token_values_are_read_too() {
    let value = decode_value(br#"{"user_id": 3, "account_id": 4}"#).unwrap();
    let claims = claims_of(&value).unwrap();
    assert_eq!(
        (claims.user_id.map(|u| u.get()), claims.account_id.get()),
        (Some(3), 4)
    );
}

#[test]
fn pickle_refuses_every_truncation_of_a_valid_pickle() {
    let data = fixture("public_p5.pickle");
    for len in 0..data.len() {
        assert!(decode(&data[..len]).is_err(), "prefix of {len} bytes");
    }
}
