//! The contract's access rules for reading and deleting a file, as pure decisions.

use crate::file::FileRecord;
use crate::principal::Principal;

/// The configured `ACCESS_POLICY`, used when no permission service is configured.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum AccessPolicy {
    /// Only the owner reads (the default).
    #[default]
    Owner,
    /// Any principal of the file's account reads.
    Account,
}

/// What decides a read when neither direct rule (owner, same-account null user) applies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadFallback {
    /// `PERMISSION_CHECK_URL` is set: the permission service decides.
    PermissionService,
    /// No permission service: the access policy decides.
    Policy(AccessPolicy),
}

/// The outcome of [`decide_read`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadDecision {
    /// Read allowed.
    Allow,
    /// Ask the permission service, forwarding the principal's credential.
    AskPermissionService,
    /// Read refused.
    Deny,
}

/// Decides whether `principal` may read `record` (GET, HEAD, info, signed URL). A public file
/// is read by anyone, without asking the permission service.
pub fn decide_read(
    principal: &Principal,
    record: &FileRecord,
    fallback: ReadFallback,
) -> ReadDecision {
    let same_account = principal.account_id() == record.account_id();
    let account_level = principal.user_id().is_none() && record.user_id().is_none() && same_account;
    if is_owner(principal, record) || account_level || record.is_public() {
        return ReadDecision::Allow;
    }
    match fallback {
        ReadFallback::PermissionService => ReadDecision::AskPermissionService,
        ReadFallback::Policy(AccessPolicy::Account) if same_account => ReadDecision::Allow,
        ReadFallback::Policy(AccessPolicy::Account | AccessPolicy::Owner) => ReadDecision::Deny,
    }
}

/// Whether `principal` may delete `record`: only its owning user, so account-level uploads never.
pub fn may_delete(principal: &Principal, record: &FileRecord) -> bool {
    is_owner(principal, record)
}

/// The owner rule: a user id (never null), equal to the record's, in the record's account. A user
/// id is only meaningful within its account, so the same number in another account is someone else.
pub fn is_owner(principal: &Principal, record: &FileRecord) -> bool {
    principal.user_id().is_some()
        && principal.user_id() == record.user_id()
        && principal.account_id() == record.account_id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::tests::parts;
    use crate::{AccountId, Credential, CredentialForm, PrincipalKind, UserId};

    fn principal(user: Option<i64>, account: i64) -> Principal {
        let kind = if user.is_some() {
            PrincipalKind::User
        } else {
            PrincipalKind::Public
        };
        Principal::new(
            kind,
            user.map(UserId::new),
            AccountId::new(account),
            Credential::new(CredentialForm::Bearer, "t".to_owned()),
        )
    }

    fn record(user: Option<i64>, account: i64) -> FileRecord {
        FileRecord::new(parts(account, user))
    }

    const SERVICE: ReadFallback = ReadFallback::PermissionService;
    const OWNER: ReadFallback = ReadFallback::Policy(AccessPolicy::Owner);
    const ACCOUNT: ReadFallback = ReadFallback::Policy(AccessPolicy::Account);

    #[test]
    fn decide_read_applies_the_rules_in_order() {
        use ReadDecision::{Allow, AskPermissionService as Ask, Deny};
        // (principal user, principal account, record user, record account, fallback, expected)
        type Case = (
            Option<i64>,
            i64,
            Option<i64>,
            i64,
            ReadFallback,
            ReadDecision,
        );
        let cases: &[Case] = &[
            // 1. the owner, whatever the fallback
            (Some(1), 10, Some(1), 10, SERVICE, Allow),
            (Some(1), 10, Some(1), 10, OWNER, Allow),
            (Some(1), 10, Some(1), 10, ACCOUNT, Allow),
            // the same user id in another account is not the owner
            (Some(1), 20, Some(1), 10, SERVICE, Ask),
            (Some(1), 20, Some(1), 10, OWNER, Deny),
            (Some(1), 20, Some(1), 10, ACCOUNT, Deny),
            // 2. account-level caller, account-level file, same account
            (None, 10, None, 10, SERVICE, Allow),
            (None, 10, None, 10, OWNER, Allow),
            (None, 10, None, 10, ACCOUNT, Allow),
            // account-level caller, account-level file, other account
            (None, 20, None, 10, SERVICE, Ask),
            (None, 20, None, 10, OWNER, Deny),
            (None, 20, None, 10, ACCOUNT, Deny),
            // another user of the same account
            (Some(2), 10, Some(1), 10, SERVICE, Ask),
            (Some(2), 10, Some(1), 10, OWNER, Deny),
            (Some(2), 10, Some(1), 10, ACCOUNT, Allow),
            // another user of another account
            (Some(2), 20, Some(1), 10, SERVICE, Ask),
            (Some(2), 20, Some(1), 10, OWNER, Deny),
            (Some(2), 20, Some(1), 10, ACCOUNT, Deny),
            // a user reading an account-level file of the same account
            (Some(1), 10, None, 10, SERVICE, Ask),
            (Some(1), 10, None, 10, OWNER, Deny),
            (Some(1), 10, None, 10, ACCOUNT, Allow),
            // a user reading an account-level file of another account
            (Some(1), 20, None, 10, SERVICE, Ask),
            (Some(1), 20, None, 10, OWNER, Deny),
            (Some(1), 20, None, 10, ACCOUNT, Deny),
            // an account-level caller reading a user's file of the same account
            (None, 10, Some(1), 10, SERVICE, Ask),
            (None, 10, Some(1), 10, OWNER, Deny),
            (None, 10, Some(1), 10, ACCOUNT, Allow),
            // an account-level caller reading a user's file of another account
            (None, 20, Some(1), 10, SERVICE, Ask),
            (None, 20, Some(1), 10, OWNER, Deny),
            (None, 20, Some(1), 10, ACCOUNT, Deny),
        ];
        for &(p_user, p_account, r_user, r_account, fallback, expected) in cases {
            let decision = decide_read(
                &principal(p_user, p_account),
                &record(r_user, r_account),
                fallback,
            );
            assert_eq!(
                decision, expected,
                "principal {p_user:?}@{p_account}, record {r_user:?}@{r_account}, {fallback:?}"
            );
        }
    }

    #[test]
    fn a_public_file_is_read_by_anyone_and_deleted_only_by_its_owner() {
        let public = record(Some(1), 10).with_visibility(crate::Visibility::Public);
        for (user, account) in [(Some(2), 20), (None, 20), (Some(2), 10), (None, 10)] {
            for fallback in [SERVICE, OWNER, ACCOUNT] {
                let reader = principal(user, account);
                assert_eq!(decide_read(&reader, &public, fallback), ReadDecision::Allow);
                assert!(!may_delete(&reader, &public));
            }
        }
        assert!(may_delete(&principal(Some(1), 10), &public));
    }

    #[test]
    fn access_policy_defaults_to_owner() {
        assert_eq!(AccessPolicy::default(), AccessPolicy::Owner);
    }

    #[test]
    fn may_delete_only_for_the_owning_user() {
        // (principal user, principal account, record user, record account, expected)
        type Case = (Option<i64>, i64, Option<i64>, i64, bool);
        let cases: &[Case] = &[
            (Some(1), 10, Some(1), 10, true),
            // the same user id in another account
            (Some(1), 20, Some(1), 10, false),
            (Some(1), 10, Some(1), 20, false),
            (Some(2), 10, Some(1), 10, false),
            (Some(1), 10, None, 10, false),
            (None, 10, Some(1), 10, false),
            (None, 10, None, 10, false),
            (None, 20, None, 10, false),
        ];
        for &(p_user, p_account, r_user, r_account, expected) in cases {
            assert_eq!(
                may_delete(&principal(p_user, p_account), &record(r_user, r_account)),
                expected,
                "principal {p_user:?}@{p_account}, record {r_user:?}@{r_account}"
            );
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::{ACCOUNT, OWNER, SERVICE, principal, record};
        use crate::Visibility;
        use crate::access::*;
        use crate::properties::config;

        /// Ids from a handful of values, so that equal ids are common, or from anywhere.
        fn id() -> impl Strategy<Value = i64> {
            prop_oneof![0..=3i64, any::<i64>()]
        }

        fn user() -> impl Strategy<Value = Option<i64>> {
            prop::option::of(id())
        }

        fn visibility() -> impl Strategy<Value = Visibility> {
            prop::sample::select(vec![Visibility::Private, Visibility::Public])
        }

        fn fallback() -> impl Strategy<Value = ReadFallback> {
            prop::sample::select(vec![SERVICE, OWNER, ACCOUNT])
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn the_owner_always_reads_and_deletes(
                user in id(),
                account in id(),
                visibility in visibility(),
                fallback in fallback(),
            ) {
                let owner = principal(Some(user), account);
                let file = record(Some(user), account).with_visibility(visibility);
                prop_assert_eq!(decide_read(&owner, &file, fallback), ReadDecision::Allow);
                prop_assert!(may_delete(&owner, &file));
            }

            /// Null never equals null: account-level files are not deletable through the API.
            #[test]
            fn an_account_level_caller_never_deletes(
                account in id(),
                file_user in user(),
                file_account in prop_oneof![Just(None), id().prop_map(Some)],
                visibility in visibility(),
            ) {
                let caller = principal(None, account);
                let file = record(file_user, file_account.unwrap_or(account))
                    .with_visibility(visibility);
                prop_assert!(!may_delete(&caller, &file));
            }

            #[test]
            fn a_caller_of_another_account_is_never_allowed(
                caller_user in user(),
                file_user in user(),
                account in id(),
                offset in any::<i64>().prop_filter("another account", |o| *o != 0),
                visibility in visibility(),
            ) {
                let caller = principal(caller_user, account);
                let file = record(file_user, account.wrapping_add(offset))
                    .with_visibility(visibility);
                prop_assert!(!may_delete(&caller, &file));
                let (by_service, by_owner, by_account) = (
                    decide_read(&caller, &file, SERVICE),
                    decide_read(&caller, &file, OWNER),
                    decide_read(&caller, &file, ACCOUNT),
                );
                if file.is_public() {
                    prop_assert_eq!([by_service, by_owner, by_account], [ReadDecision::Allow; 3]);
                } else {
                    // Only the permission service may still let them in.
                    prop_assert_eq!(by_service, ReadDecision::AskPermissionService);
                    prop_assert_eq!([by_owner, by_account], [ReadDecision::Deny; 2]);
                }
            }

            #[test]
            fn account_level_callers_read_their_accounts_account_level_files(
                account in id(),
                visibility in visibility(),
                fallback in fallback(),
            ) {
                let file = record(None, account).with_visibility(visibility);
                let caller = principal(None, account);
                prop_assert_eq!(decide_read(&caller, &file, fallback), ReadDecision::Allow);
            }

            #[test]
            fn a_public_file_is_read_by_anyone(
                caller_user in user(),
                caller_account in id(),
                file_user in user(),
                file_account in id(),
                fallback in fallback(),
            ) {
                let file = record(file_user, file_account).with_visibility(Visibility::Public);
                let caller = principal(caller_user, caller_account);
                prop_assert_eq!(decide_read(&caller, &file, fallback), ReadDecision::Allow);
            }

            /// Whatever the ids: deleting needs a user id equal to the file's in its account, a
            /// deleter may always read, the fallback only decides what the direct rules leave
            /// open, and the `account` policy adds only callers of the file's account.
            #[test]
            fn the_rules_fit_together(
                caller_user in user(),
                caller_account in id(),
                file_user in user(),
                file_account in id(),
                visibility in visibility(),
            ) {
                let caller = principal(caller_user, caller_account);
                let file = record(file_user, file_account).with_visibility(visibility);
                let owner = caller_user.is_some()
                    && caller_user == file_user
                    && caller_account == file_account;
                prop_assert_eq!(may_delete(&caller, &file), owner);
                prop_assert_eq!(is_owner(&caller, &file), owner);

                let by_service = decide_read(&caller, &file, SERVICE);
                let by_owner = decide_read(&caller, &file, OWNER);
                let by_account = decide_read(&caller, &file, ACCOUNT);
                if owner {
                    prop_assert_eq!([by_service, by_owner, by_account], [ReadDecision::Allow; 3]);
                }
                prop_assert_ne!(by_service, ReadDecision::Deny);
                prop_assert_ne!(by_owner, ReadDecision::AskPermissionService);
                prop_assert_ne!(by_account, ReadDecision::AskPermissionService);
                prop_assert_eq!(
                    by_service == ReadDecision::Allow,
                    by_owner == ReadDecision::Allow
                );
                if by_owner == ReadDecision::Allow {
                    prop_assert_eq!(by_account, ReadDecision::Allow);
                } else if by_account == ReadDecision::Allow {
                    prop_assert_eq!(caller_account, file_account);
                }
            }
        }
    }
}
