//! Unified diffs between two versions' contents (for `GET .../diff/{b}`).
//!
//! Myers' algorithm costs `O((N+M)·D)`: two 4 MiB versions whose lines recur in a different
//! order take seconds of CPU. The diff therefore has a time limit; once it has passed, the
//! remaining differences are reported as whole replaced blocks. The result is coarser (not
//! the shortest edit script) but still a correct diff: applying it to the old content gives
//! the new one. This is the one function of the crate whose output depends on the clock;
//! nothing in `apply` uses it.

use std::time::Duration;

use similar::TextDiff;

/// How long one diff may refine its result. Configs of ordinary size diff in microseconds
/// and never reach it.
pub const DIFF_TIME_LIMIT: Duration = Duration::from_secs(1);

/// A unified diff with three lines of context, refined for at most `time_limit` (normally
/// [`DIFF_TIME_LIMIT`]). Binary (non-UTF-8) content is compared lossily, which is good
/// enough for a human-facing diff.
pub fn unified_diff(
    old: &[u8],
    new: &[u8],
    old_label: &str,
    new_label: &str,
    time_limit: Duration,
) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    TextDiff::configure()
        .timeout(time_limit)
        .diff_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{DIFF_TIME_LIMIT, unified_diff};

    /// Applies a unified diff to `old` (hunks in order, context and removed lines checked).
    fn patch(old: &str, diff: &str) -> String {
        let old: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut at = 0; // next line of `old` not yet copied
        let mut lines = diff.split_inclusive('\n').skip(2).peekable();
        while let Some(header) = lines.next() {
            let start: usize = header
                .strip_prefix("@@ -")
                .and_then(|h| h.split([',', ' ']).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a hunk header: {header:?}"));
            // An empty old range is numbered after the line it follows.
            let start = if header.starts_with(&format!("@@ -{start},0 ")) {
                start
            } else {
                start - 1
            };
            out.extend(old[at..start].iter().copied());
            at = start;
            while let Some(line) = lines.next_if(|l| !l.starts_with("@@")) {
                let (tag, text) = line.split_at(1);
                match tag {
                    " " | "-" => {
                        assert_eq!(old[at], text, "the diff does not fit the old text");
                        if tag == " " {
                            out.push_str(text);
                        }
                        at += 1;
                    }
                    "+" => out.push_str(text),
                    _ => panic!("unexpected diff line {line:?}"),
                }
            }
        }
        out.extend(old[at..].iter().copied());
        out
    }

    /// Lines from a small alphabet, in a different order on each side: costly for Myers.
    fn scrambled(lines: usize, seed: u64) -> String {
        let mut x = seed;
        (0..lines)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("line {}\n", x % 50)
            })
            .collect()
    }

    #[test]
    fn shows_changed_lines() {
        let d = unified_diff(b"a\nb\nc\n", b"a\nB\nc\n", "v1", "v2", DIFF_TIME_LIMIT);
        assert!(d.starts_with("--- v1\n+++ v2\n"), "{d}");
        assert!(d.contains("-b\n") && d.contains("+B\n"), "{d}");
    }

    #[test]
    fn a_diff_cut_short_by_its_time_limit_is_coarser_but_still_correct() {
        let (old, new) = (scrambled(3000, 7), scrambled(3000, 11));
        let full = unified_diff(old.as_bytes(), new.as_bytes(), "a", "b", DIFF_TIME_LIMIT);
        let cut = unified_diff(old.as_bytes(), new.as_bytes(), "a", "b", Duration::ZERO);
        assert_eq!(patch(&old, &full), new);
        assert_eq!(patch(&old, &cut), new);
        let changed = |d: &str| d.lines().filter(|l| l.starts_with(['-', '+'])).count();
        assert!(
            changed(&cut) > changed(&full),
            "no time to refine: more lines reported as changed ({} vs {})",
            changed(&cut),
            changed(&full)
        );
    }
}
