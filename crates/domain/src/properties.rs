//! What the property tests of this crate share: their configuration and the text they draw.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Proptest's defaults (256 cases; `PROPTEST_CASES` changes them), without failure files in the
/// source tree: a failure prints its shrunk input, which is kept as an example test instead.
pub(crate) fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text of up to `max` characters, mostly from `pool` (the characters a rule cares about), now
/// and then any character at all.
pub(crate) fn text(pool: &str, max: usize) -> impl Strategy<Value = String> {
    let pool: Vec<char> = pool.chars().collect();
    let char = prop_oneof![4 => prop::sample::select(pool), 1 => any::<char>()];
    prop::collection::vec(char, 0..=max).prop_map(String::from_iter)
}
