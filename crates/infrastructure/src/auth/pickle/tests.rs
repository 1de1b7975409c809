//! Unit tests of the pickle reader.

use super::*;

#[test]
fn refuses_global_and_reduce() {
    // cos\nsystem\n(S'id'\ntR.  — protocol 0 GLOBAL + REDUCE
    let evil = b"cos\nsystem\n(S'id'\ntR.";
    assert_eq!(decode(evil), Err(PickleError::Refused(b'c')));
    // \x80\x04 STACK_GLOBAL
    assert_eq!(
        decode(b"\x80\x04\x8c\x02os\x8c\x06system\x93."),
        Err(PickleError::Refused(0x93))
    );
}

#[test]
fn reads_negative_and_wide_ints() {
    assert_eq!(
        decode(b"\x80\x02J\xff\xff\xff\xff."),
        Ok(PickleValue::Int(-1))
    );
    assert_eq!(decode(b"\x80\x02\x8a\x01\xff."), Ok(PickleValue::Int(-1)));
    assert_eq!(
        decode(b"\x80\x02\x8a\x02\x00\x01."),
        Ok(PickleValue::Int(256))
    );
    assert_eq!(decode(b"\x80\x02\x8a\x00."), Ok(PickleValue::Int(0)));
    assert!(decode(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.").is_err());
}

#[test]
fn refuses_truncated_and_cyclic_input() {
    assert!(decode(b"\x80\x05}\x94(\x8c\x01a").is_err());
    assert!(decode(b"").is_err());
    // a list that appends itself: ]q\x00h\x00a.
    assert_eq!(decode(b"\x80\x02]q\x00h\x00a."), Err(PickleError::TooBig));
}

#[test]
fn memo_references_cannot_amplify_a_small_pickle() {
    // L0 = [1]; L(i+1) = [Li, Li], 60 times: ~600 bytes naming 2^60 values.
    let mut data = b"\x80\x02]q\x00K\x01a".to_vec();
    for i in 0u8..60 {
        data.extend_from_slice(&[b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
    }
    data.push(b'.');
    assert_eq!(decode(&data), Err(PickleError::TooBig));

    // One 100 KB string referenced 1000 times.
    let mut wide = b"\x80\x02]X".to_vec();
    wide.extend_from_slice(&100_000u32.to_le_bytes());
    wide.extend_from_slice(&[b'a'; 100_000]);
    wide.extend_from_slice(b"q\x000");
    wide.push(b'(');
    for _ in 0..1000 {
        wide.extend_from_slice(b"h\x00");
    }
    wide.extend_from_slice(b"e.");
    assert_eq!(decode(&wide), Err(PickleError::TooBig));
}

#[test]
fn a_key_set_twice_keeps_its_place_and_the_last_value() {
    // {"user_id": 1, "account_id": 7, "user_id": 2} through SETITEMS, as Python reads it:
    // {'user_id': 2, 'account_id': 7}.
    let setitems = b"\x80\x02}q\x00(X\x07\x00\x00\x00user_idK\x01X\n\x00\x00\x00account_idK\x07X\x07\x00\x00\x00user_idK\x02u.";
    let v = decode(setitems).unwrap();
    assert_eq!(v.get("user_id"), Some(&PickleValue::Int(2)));
    assert_eq!(
        v,
        PickleValue::Dict(vec![
            (PickleValue::Str("user_id".into()), PickleValue::Int(2)),
            (PickleValue::Str("account_id".into()), PickleValue::Int(7)),
        ])
    );
    // The same through DICT: {'user_id': 2}.
    let dict = b"\x80\x02(X\x07\x00\x00\x00user_idK\x01X\x07\x00\x00\x00user_idK\x02d.";
    assert_eq!(
        decode(dict).unwrap(),
        PickleValue::Dict(vec![(
            PickleValue::Str("user_id".into()),
            PickleValue::Int(2)
        )])
    );
    // And through SETITEM: {'a': 3, 'b': 2}.
    let setitem =
        b"\x80\x02}X\x01\x00\x00\x00aK\x01sX\x01\x00\x00\x00bK\x02sX\x01\x00\x00\x00aK\x03s.";
    assert_eq!(
        decode(setitem).unwrap(),
        PickleValue::Dict(vec![
            (PickleValue::Str("a".into()), PickleValue::Int(3)),
            (PickleValue::Str("b".into()), PickleValue::Int(2)),
        ])
    );
}

#[test]
fn equal_numbers_are_one_key_as_in_python() {
    // {1: 'a', True: 'b', 1.0: 'c'} is {1: 'c'} in Python.
    let data = b"\x80\x02}(K\x01X\x01\x00\x00\x00a\x88X\x01\x00\x00\x00bG?\xf0\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00cu.";
    assert_eq!(
        decode(data).unwrap(),
        PickleValue::Dict(vec![(PickleValue::Int(1), PickleValue::Str("c".into()))])
    );
}

#[test]
fn memo_shares_mutated_containers() {
    // {"a": L, "b": L} where L is memoised while empty and filled afterwards.
    let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00a]q\x01K\x01aX\x01\x00\x00\x00bh\x01u.";
    let v = decode(data).unwrap();
    assert_eq!(
        v.get("b"),
        Some(&PickleValue::List(vec![PickleValue::Int(1)]))
    );
}
