//! Starting the node's key provider for encrypted configs from its configuration.
//!
//! A node refuses to start when its KMS cannot be set up (unreadable key file, unknown AWS
//! key, no region): serving encrypted configs with the wrong key would fail later and
//! less clearly. The one exception to "the key file must exist" is the embedded single node,
//! which creates `<data-dir>/kek.key` so that it runs with no setup at all.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use conflux_kms::{AwsKms, AwsKmsOptions, KeyProvider, Kms, KmsOptions, LocalKms};

use crate::config::{KmsProvider, NodeConfig};
use crate::metrics::Metrics;

/// Deadline of one AWS KMS call (retries included): a fetch or write waiting on it answers
/// 503 `kms_unavailable` after this long.
const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn start(config: &NodeConfig, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Kms>> {
    let provider: Arc<dyn KeyProvider> = match &config.kms.provider {
        KmsProvider::Local {
            key_file,
            previous_key_files,
        } => {
            let path = key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("kek.key"));
            if key_file.is_none() && !path.exists() {
                if config.is_clustered() {
                    anyhow::bail!(
                        "{} does not exist: every node of a cluster needs the same KMS key \
                         file; create one (openssl rand -hex 32 > kek.key; chmod 600 kek.key), \
                         copy it to every node and pass --kms-key-file",
                        path.display()
                    );
                }
                std::fs::create_dir_all(&config.data_dir).with_context(|| {
                    format!("creating the data directory {}", config.data_dir.display())
                })?;
                conflux_kms::generate_key_file(&path)?;
                tracing::info!(path = %path.display(), "created the local KMS key file");
            }
            Arc::new(LocalKms::open(&path, previous_key_files)?)
        }
        KmsProvider::Aws { key_id, endpoint } => Arc::new(
            AwsKms::connect(&AwsKmsOptions {
                key_id: key_id.clone(),
                endpoint: endpoint.clone(),
                timeout: AWS_CALL_TIMEOUT,
            })
            .await?,
        ),
    };
    tracing::info!(kek = provider.current_kek_id(), "KMS ready");
    let options = KmsOptions {
        cache_ttl: config.kms.cache_ttl,
        ..KmsOptions::default()
    };
    Ok(Arc::new(Kms::new(provider, options).with_observer(
        Box::new(move |call| metrics.observe_kms_call(call)),
    )))
}
