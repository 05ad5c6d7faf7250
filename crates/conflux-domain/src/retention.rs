//! Retention: which old versions of a config may be purged.
//!
//! Decided inside apply from the state at that log index (never from an earlier read), so
//! every node purges exactly the same versions.

use std::collections::BTreeSet;

use crate::error::DomainError;
use crate::model::{RetentionKind, RetentionPolicy, RetentionStrategy, UnixMillis, VersionId};

pub const MS_PER_DAY: u64 = 86_400_000;
/// A policy has at most this many rules.
pub const MAX_RETENTION_RULES: usize = 8;

/// Versions to purge, in ascending order. `versions` lists the config's existing versions
/// as `(version, created_at)` in ascending version order. The latest version and every
/// version in `referenced` (used by a release rule) are always kept; a policy without rules
/// keeps everything.
pub fn versions_to_purge(
    policy: &RetentionPolicy,
    versions: &[(VersionId, UnixMillis)],
    latest: VersionId,
    referenced: &BTreeSet<VersionId>,
    now: UnixMillis,
) -> Vec<VersionId> {
    if policy.rules.is_empty() {
        return Vec::new();
    }
    let total = versions.len();
    versions
        .iter()
        .enumerate()
        .filter(|&(_, &(v, _))| v != latest && !referenced.contains(&v))
        .filter(|&(pos, &(_, created_at))| {
            // How many versions are newer than this one.
            let newer = (total - 1 - pos) as u64;
            let mut keeps = policy.rules.iter().map(|r| match r.kind {
                RetentionKind::Count => newer < r.keep,
                RetentionKind::Days => {
                    now.saturating_sub(created_at) < r.keep.saturating_mul(MS_PER_DAY)
                }
            });
            let kept = match policy.strategy {
                RetentionStrategy::And => keeps.all(|k| k),
                RetentionStrategy::Or => keeps.any(|k| k),
            };
            !kept
        })
        .map(|(_, &(v, _))| v)
        .collect()
}

/// Checks a policy a client sent.
pub fn validate_policy(policy: &RetentionPolicy) -> Result<(), DomainError> {
    if policy.rules.is_empty() {
        return Err(DomainError::invalid_argument(
            "retention.rules",
            "a retention policy needs at least one rule",
        ));
    }
    if policy.rules.len() > MAX_RETENTION_RULES {
        return Err(DomainError::invalid_argument(
            "retention.rules",
            format!("at most {MAX_RETENTION_RULES} rules are allowed"),
        ));
    }
    for (i, r) in policy.rules.iter().enumerate() {
        if r.keep == 0 {
            return Err(DomainError::invalid_argument(
                format!("retention.rules[{i}].keep"),
                "keep must be at least 1",
            ));
        }
        if r.kind == RetentionKind::Days && r.keep > 36_500 {
            return Err(DomainError::invalid_argument(
                format!("retention.rules[{i}].keep"),
                "days rules keep at most 36500 days",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RetentionRule;

    fn policy(strategy: RetentionStrategy, rules: &[(RetentionKind, u64)]) -> RetentionPolicy {
        RetentionPolicy {
            strategy,
            rules: rules
                .iter()
                .map(|&(kind, keep)| RetentionRule { kind, keep })
                .collect(),
        }
    }

    #[test]
    fn count_keeps_newest() {
        let p = policy(RetentionStrategy::And, &[(RetentionKind::Count, 2)]);
        let vs: Vec<_> = (1..=5).map(|v| (v, 0)).collect();
        assert_eq!(
            versions_to_purge(&p, &vs, 5, &BTreeSet::new(), 0),
            vec![1, 2, 3]
        );
        assert_eq!(
            versions_to_purge(&p, &vs, 5, &BTreeSet::from([2]), 0),
            vec![1, 3]
        );
    }

    #[test]
    fn and_or_combine_rules() {
        let day = MS_PER_DAY;
        // v1 old, v2 old, v3 recent, v4 recent
        let vs = vec![(1, 0), (2, 0), (3, 9 * day), (4, 9 * day)];
        let now = 10 * day;
        let and = policy(
            RetentionStrategy::And,
            &[(RetentionKind::Count, 3), (RetentionKind::Days, 2)],
        );
        assert_eq!(
            versions_to_purge(&and, &vs, 4, &BTreeSet::new(), now),
            vec![1, 2]
        );
        let or = policy(
            RetentionStrategy::Or,
            &[(RetentionKind::Count, 3), (RetentionKind::Days, 2)],
        );
        assert_eq!(
            versions_to_purge(&or, &vs, 4, &BTreeSet::new(), now),
            vec![1]
        );
    }
}
