//! Passwords: argon2id hashes in PHC string format, verified in constant time by the argon2
//! crate. Hashing costs tens of milliseconds on purpose, so it runs off the async workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted (contract section 6).
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted: hashing cost grows with length, so an unbounded one would be
/// a cheap way to burn CPU.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why a new password is refused (a sentence for the 400 that names the `password` field).
pub fn check_new_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD_LEN} characters long"
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password must be at most {MAX_PASSWORD_LEN} bytes long"
        ));
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = super::token::random_bytes::<16>();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail on a bounded password")
        .to_string()
}

/// Whether `password` matches `stored` (a PHC string). A corrupt stored hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// A hash of a password nobody has, verified against when the user does not exist, so that
/// "unknown user" and "wrong password" take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&hex::encode(super::token::random_bytes::<16>())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery"), "salts differ");
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_new_password("elevenchars").is_err());
        assert!(check_new_password("twelve chars").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }
}
