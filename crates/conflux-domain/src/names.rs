//! Naming rules of the contract, checked by hand (they are simple enough that a regex engine
//! would only add a dependency and a compile step).

use crate::error::DomainError;

/// Tenants, apps and environments: `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn validate_name(field: &str, value: &str) -> Result<(), DomainError> {
    check(field, value, 63, |c| c.is_ascii_lowercase() || c.is_ascii_digit(), |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
    .map_err(|why| DomainError::InvalidName {
        field: field.to_owned(),
        message: format!("{why}; names use lower-case letters, digits and '-', start with a letter or digit and are 1-63 characters"),
    })
}

/// Config names: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` (e.g. `database.toml`).
pub fn validate_config_name(field: &str, value: &str) -> Result<(), DomainError> {
    check(field, value, 128, |c| c.is_ascii_alphanumeric(), |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    })
    .map_err(|why| DomainError::InvalidName {
        field: field.to_owned(),
        message: format!("{why}; config names use letters, digits, '.', '_' and '-', start with a letter or digit and are 1-128 characters"),
    })
}

/// Label keys: `^[a-z0-9][a-z0-9._-]{0,62}$`. Keys arrive lower-cased from headers, so rules
/// with upper-case keys could never match; they are rejected instead of silently dead.
pub fn validate_label_key(field: &str, value: &str) -> Result<(), DomainError> {
    check(field, value, 63, |c| c.is_ascii_lowercase() || c.is_ascii_digit(), |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
    })
    .map_err(|why| DomainError::InvalidLabel {
        field: field.to_owned(),
        message: format!("{why}; label keys use lower-case letters, digits, '.', '_' and '-' and are 1-63 characters"),
    })
}

fn check(
    _field: &str,
    value: &str,
    max_len: usize,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
) -> Result<(), String> {
    let mut chars = value.chars();
    let Some(c0) = chars.next() else {
        return Err("must not be empty".to_owned());
    };
    if value.len() > max_len {
        return Err(format!(
            "is {} characters long, the maximum is {max_len}",
            value.len()
        ));
    }
    if !first(c0) {
        return Err(format!("{value:?} starts with {c0:?}"));
    }
    if let Some(bad) = chars.find(|c| !rest(*c)) {
        return Err(format!("{value:?} contains {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        for ok in ["a", "0", "team-a", "a1-b2", &"a".repeat(63)] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "ä", &"a".repeat(64), "a b"] {
            let err = validate_name("name", bad).unwrap_err();
            assert_eq!(err.code(), "invalid_name");
            assert_eq!(err.field(), Some("name"));
        }
    }

    #[test]
    fn config_names_follow_the_contract() {
        for ok in ["database.toml", "A", "x_y-z.1", &"a".repeat(128)] {
            assert!(validate_config_name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "_x",
            "a/b",
            &"a".repeat(129),
            "a b",
            "..",
            "é",
        ] {
            assert!(validate_config_name("name", bad).is_err(), "{bad}");
        }
    }
}
