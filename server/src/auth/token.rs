//! Bearer tokens: how they look, how they are made and how they are stored.
//!
//! A token the server issues is `<prefix><id>_<secret>`: `cfxs_` for service tokens, `cfxu_`
//! for user sessions, a 16-character hex id (what `token:<id>` principals, lists and audit
//! records name) and 32 random bytes as URL-safe base64. The prefix makes a leaked token
//! recognisable to secret scanners; the id lets an operator find it without the secret.
//! Only the SHA-256 digest of the whole token is stored (the metadata DB never holds a usable
//! secret) and requests are authenticated by looking that digest up in memory. A plain
//! digest is enough: the secrets carry 256 bits of entropy, so there is nothing to brute
//! force, and a look-up by digest compares no secret bytes, so timing tells nothing.

use base64::Engine;
use sha2::{Digest, Sha256};

pub const SERVICE_PREFIX: &str = "cfxs_";
pub const SESSION_PREFIX: &str = "cfxu_";

/// Longest token the server accepts (the contract's bootstrap tokens are 32 to 256
/// characters; issued ones are 59).
pub const MAX_TOKEN_LEN: usize = 256;

/// The SHA-256 digest of a token: what is stored and looked up.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

pub fn digest_hex(token: &str) -> String {
    hex::encode(digest(token))
}

/// Parses a stored hex digest; `None` for anything else (a corrupt row never matches).
pub fn parse_digest(hex_digest: &str) -> Option<TokenDigest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut out).ok()?;
    Some(out)
}

/// A token just made: the secret to hand out once, its id and the digest to store.
pub struct IssuedToken {
    pub id: String,
    pub token: String,
    pub digest_hex: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Makes a new token with `prefix` ([`SERVICE_PREFIX`] or [`SESSION_PREFIX`]).
pub fn issue(prefix: &str) -> IssuedToken {
    let id = hex::encode(random_bytes::<8>());
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let token = format!("{prefix}{id}_{secret}");
    IssuedToken {
        digest_hex: digest_hex(&token),
        id,
        token,
    }
}

/// Random bytes from the operating system. A machine that cannot provide them cannot issue
/// secrets at all; there is no safe fallback.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

/// Whether `token` can be a token at all: 1 to [`MAX_TOKEN_LEN`] visible ASCII characters.
/// Anything else is rejected before any look-up.
pub fn well_formed(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a bootstrap token (from `--bootstrap-token-file`, trimmed): 32 to 256 printable
/// ASCII characters without spaces.
pub fn check_bootstrap_token(token: &str) -> Result<(), String> {
    if !(32..=MAX_TOKEN_LEN).contains(&token.len()) {
        return Err(format!(
            "the bootstrap token must be 32 to {MAX_TOKEN_LEN} characters long, this one has {}",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the bootstrap token must be printable ASCII without spaces or control characters"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_unique_well_formed_and_carry_their_id() {
        let a = issue(SERVICE_PREFIX);
        let b = issue(SERVICE_PREFIX);
        assert_ne!(a.token, b.token);
        assert_ne!(a.id, b.id);
        assert!(well_formed(&a.token));
        assert!(a.token.starts_with("cfxs_"));
        assert!(a.token[5..].starts_with(&a.id));
        assert!(conflux_domain::access::is_token_id(&a.id));
        assert_eq!(a.digest_hex, digest_hex(&a.token));
        assert_eq!(parse_digest(&a.digest_hex), Some(digest(&a.token)));
        assert!(issue(SESSION_PREFIX).token.starts_with("cfxu_"));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!well_formed(""));
        assert!(!well_formed("has space"));
        assert!(!well_formed("tab\there"));
        assert!(!well_formed("é"));
        assert!(!well_formed(&"x".repeat(MAX_TOKEN_LEN + 1)));
        assert!(well_formed(&"x".repeat(MAX_TOKEN_LEN)));
    }

    #[test]
    fn bootstrap_tokens_are_checked() {
        assert!(check_bootstrap_token(&"a".repeat(31)).is_err());
        assert!(check_bootstrap_token(&"a".repeat(32)).is_ok());
        assert!(check_bootstrap_token(&"a".repeat(257)).is_err());
        assert!(check_bootstrap_token(&format!("{} x", "a".repeat(40))).is_err());
        assert!(parse_digest("zz").is_none());
    }
}
