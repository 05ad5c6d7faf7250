//! The crate's one error type.

/// Why sealing, opening or rewrapping failed. The server maps these to HTTP: `Unavailable`
/// is 503 `kms_unavailable`, `Corrupt` is 503 `content_corrupt`, `Key` is 503 `kms_key_error`.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The KMS could not be reached or did not answer in time; nothing was changed.
    #[error("the KMS is unavailable: {0}")]
    Unavailable(String),

    /// The KMS answered but refused the key: unknown id, disabled, no permission, or a data
    /// key wrapped by a KEK this node does not hold.
    #[error("key-encryption key {kek_id}: {message}")]
    Key { kek_id: String, message: String },

    /// A ciphertext or wrapped key failed authentication: it was altered or belongs elsewhere.
    #[error("{what} failed authentication (altered, truncated, or not this config's)")]
    Corrupt { what: &'static str },

    /// Start-up configuration: unreadable key file, bad key length, missing key id.
    #[error("{0}")]
    Config(String),
}

impl KmsError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::Unavailable(_) => "kms_unavailable",
            KmsError::Key { .. } => "kms_key_error",
            KmsError::Corrupt { .. } => "content_corrupt",
            KmsError::Config(_) => "kms_config",
        }
    }
}
