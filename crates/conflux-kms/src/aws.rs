//! The `aws` provider: AWS KMS (or a KMS-compatible endpoint) through aws-sdk-kms.
//!
//! Data keys come from `GenerateDataKey` under the configured key, unwrap with `Decrypt`
//! and rewrap with `ReEncrypt` (the plaintext key never leaves KMS for a rewrap).
//! Credentials and region come from the standard AWS chain (environment, profile, instance
//! or container role). The key id given (id, ARN or alias) is resolved to its ARN at start-up,
//! which also proves that the key exists and that this node may use it.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState};
use bytes::Bytes;
use conflux_domain::WrappedKey;
use futures::future::{BoxFuture, FutureExt};
use zeroize::Zeroizing;

use crate::{DataKey, KeyProvider, KmsError};

/// How to reach AWS KMS.
#[derive(Debug, Clone)]
pub struct AwsKmsOptions {
    /// Key id, key ARN, alias name (`alias/...`) or alias ARN of the current KEK.
    pub key_id: String,
    /// A KMS-compatible endpoint instead of AWS's (`http://127.0.0.1:4566`, a VPC endpoint).
    pub endpoint: Option<String>,
    /// Deadline of one KMS call, retries included.
    pub timeout: Duration,
}

/// AWS KMS as a [`KeyProvider`].
#[derive(Debug)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    /// The ARN the configured key id resolved to: the id recorded with every wrapped key.
    key_arn: String,
}

impl AwsKms {
    /// Builds the client and resolves the key (a clear error if it does not exist, is not
    /// enabled, or KMS cannot be reached).
    pub async fn connect(options: &AwsKmsOptions) -> Result<AwsKms, KmsError> {
        // The SDK's default HTTPS client brings a second TLS crypto provider (aws-lc-rs);
        // this one is rustls on ring like the rest of the workspace.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(options.timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(KmsError::Config(
                "--kms aws needs an AWS region: set AWS_REGION (or a profile with a region)".into(),
            ));
        }
        let client = aws_sdk_kms::Client::new(&config);
        let described = client
            .describe_key()
            .key_id(&options.key_id)
            .send()
            .await
            .map_err(|e| classify(e, &options.key_id))?;
        let meta = described.key_metadata().ok_or_else(|| KmsError::Key {
            kek_id: options.key_id.clone(),
            message: "KMS described no key".into(),
        })?;
        if meta.key_state() != Some(&KeyState::Enabled) {
            return Err(KmsError::Key {
                kek_id: options.key_id.clone(),
                message: format!("the key is not enabled (state {:?})", meta.key_state()),
            });
        }
        let key_arn = meta
            .arn()
            .map(str::to_owned)
            .unwrap_or_else(|| meta.key_id().to_owned());
        Ok(AwsKms { client, key_arn })
    }
}

impl KeyProvider for AwsKms {
    fn current_kek_id(&self) -> &str {
        &self.key_arn
    }

    fn generate_data_key(&self) -> BoxFuture<'_, Result<(DataKey, WrappedKey), KmsError>> {
        async move {
            let out = self
                .client
                .generate_data_key()
                .key_id(&self.key_arn)
                .key_spec(DataKeySpec::Aes256)
                .send()
                .await
                .map_err(|e| classify(e, &self.key_arn))?;
            let key = data_key(out.plaintext, &self.key_arn)?;
            let wrapped = wrapped(out.ciphertext_blob, out.key_id, &self.key_arn)?;
            Ok((key, wrapped))
        }
        .boxed()
    }

    fn unwrap_key<'a>(&'a self, key: &'a WrappedKey) -> BoxFuture<'a, Result<DataKey, KmsError>> {
        async move {
            let out = self
                .client
                .decrypt()
                .key_id(&key.kek_id)
                .ciphertext_blob(Blob::new(key.ciphertext.to_vec()))
                .send()
                .await
                .map_err(|e| classify(e, &key.kek_id))?;
            data_key(out.plaintext, &key.kek_id)
        }
        .boxed()
    }

    fn rewrap_key<'a>(
        &'a self,
        key: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<WrappedKey, KmsError>> {
        async move {
            let out = self
                .client
                .re_encrypt()
                .source_key_id(&key.kek_id)
                .destination_key_id(&self.key_arn)
                .ciphertext_blob(Blob::new(key.ciphertext.to_vec()))
                .send()
                .await
                .map_err(|e| classify(e, &key.kek_id))?;
            wrapped(out.ciphertext_blob, out.key_id, &self.key_arn)
        }
        .boxed()
    }
}

fn data_key(plaintext: Option<Blob>, kek_id: &str) -> Result<DataKey, KmsError> {
    let bytes = Zeroizing::new(plaintext.map(Blob::into_inner).unwrap_or_default());
    let key: [u8; 32] = bytes[..].try_into().map_err(|_| KmsError::Key {
        kek_id: kek_id.to_owned(),
        message: format!("KMS returned a {}-byte data key, not 32", bytes.len()),
    })?;
    Ok(Zeroizing::new(key))
}

fn wrapped(
    blob: Option<Blob>,
    key_id: Option<String>,
    kek_id: &str,
) -> Result<WrappedKey, KmsError> {
    let ciphertext = blob.map(Blob::into_inner).ok_or_else(|| KmsError::Key {
        kek_id: kek_id.to_owned(),
        message: "KMS returned no ciphertext".into(),
    })?;
    Ok(WrappedKey {
        kek_id: key_id.unwrap_or_else(|| kek_id.to_owned()),
        ciphertext: Bytes::from(ciphertext),
    })
}

/// Unreachable or overloaded KMS → `Unavailable` (retry later); a refused key → `Key`; a
/// ciphertext KMS cannot decrypt → `Corrupt`.
fn classify<E, R>(e: SdkError<E, R>, kek_id: &str) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown");
            let message = s.err().message().unwrap_or_default().to_owned();
            match code {
                "InvalidCiphertextException" => KmsError::Corrupt {
                    what: "wrapped data key",
                },
                "KMSInternalException" | "DependencyTimeoutException" | "ThrottlingException" => {
                    KmsError::Unavailable(format!("{code}: {message}"))
                }
                _ => KmsError::Key {
                    kek_id: kek_id.to_owned(),
                    message: format!("{code}: {message}"),
                },
            }
        }
        SdkError::ConstructionFailure(_) => KmsError::Config(format!(
            "building a KMS request: {}",
            DisplayErrorContext(&e)
        )),
        _ => KmsError::Unavailable(DisplayErrorContext(&e).to_string()),
    }
}
