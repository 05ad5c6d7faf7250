//! Unified diffs between two versions' contents (for `GET .../diff/{b}`).

use similar::TextDiff;

/// A unified diff with three lines of context. Binary (non-UTF-8) content is compared
/// lossily, which is good enough for a human-facing diff.
pub fn unified_diff(old: &[u8], new: &[u8], old_label: &str, new_label: &str) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn shows_changed_lines() {
        let d = super::unified_diff(b"a\nb\nc\n", b"a\nB\nc\n", "v1", "v2");
        assert!(d.starts_with("--- v1\n+++ v2\n"), "{d}");
        assert!(d.contains("-b\n") && d.contains("+B\n"), "{d}");
    }
}
