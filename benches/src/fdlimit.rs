//! Raising the open-file limit: every watch connection is a descriptor on both sides.

/// Raises the soft limit of open files as far as allowed: to `want` when the process may
/// raise its hard limit (root), else to the hard limit. Returns the new soft limit.
pub fn raise(want: u64) -> u64 {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if want > hard && rlimit::Resource::NOFILE.set(want, want).is_ok() {
        return want;
    }
    let target = want.min(hard).max(soft);
    match rlimit::Resource::NOFILE.set(target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    }
}
