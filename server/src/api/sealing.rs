//! Where the API meets envelope encryption: new versions of encrypted configs are validated
//! and sealed here, on the node that receives them, before they are proposed (so plaintext
//! never enters the Raft log); stored versions are opened here when a fetch or a management
//! read needs their plaintext.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use conflux_domain::{ConfigId, SealedContent, VersionCheck, VersionId};
use conflux_kms::content_aad;

use super::AppState;
use super::error::ApiError;
use super::mgt::with_config;
use crate::serving::ServedVersion;

/// The content a new version's command carries: the plaintext for a plain config; for an
/// encrypted one, the ciphertext and its seal, after the plaintext passed the same checks
/// apply runs on plain contents (size, format, schema).
pub async fn prepare_content(
    app: &AppState,
    id: ConfigId,
    plaintext: Bytes,
) -> Result<(Bytes, Option<SealedContent>), ApiError> {
    let prepared = with_config(app, id, |s, c| {
        c.encrypted.then(|| {
            (
                VersionCheck::of(s, c),
                SealedContent::digest_of_schema(c.schema.as_deref()),
                content_aad(c.id, c.created_revision),
            )
        })
    })?;
    let Some((check, schema_digest, aad)) = prepared else {
        return Ok((plaintext, None));
    };
    let checked = plaintext.clone();
    app.heavy_jobs()
        .run(move || Ok(check.check(&checked)?))
        .await?;
    let sealed = app.kms().seal(&plaintext, &aad, schema_digest).await?;
    Ok((sealed.ciphertext, Some(sealed.sealed)))
}

/// The plaintext of a served version. Sealed ones open from the unwrapped-key cache without
/// waiting; the first fetch after a key left the cache unwraps it through the KMS.
pub async fn served_plaintext(app: &AppState, version: &ServedVersion) -> Result<Bytes, ApiError> {
    let Some(sealed) = &version.sealed else {
        return Ok(version.content.clone());
    };
    if let Some(opened) = &*sealed.opened.load()
        && Instant::now() < opened.0
    {
        return Ok(opened.1.clone());
    }
    let kms = app.kms();
    let opened = match kms.open_cached(
        &sealed.cache_key,
        &sealed.seal,
        &version.content,
        &sealed.aad,
    ) {
        Some(opened) => opened,
        None => kms.open(&sealed.seal, &version.content, &sealed.aad).await,
    }?;
    let plaintext = Bytes::from(opened.plaintext);
    sealed
        .opened
        .store(Some(Arc::new((opened.keep_until, plaintext.clone()))));
    Ok(plaintext)
}

/// The plaintext of a stored version (management reads: content, diff).
pub async fn stored_plaintext(
    app: &AppState,
    id: ConfigId,
    version: VersionId,
    stored: Bytes,
) -> Result<Bytes, ApiError> {
    let opening = with_config(app, id, |s, c| {
        s.version(id, version)
            .and_then(|v| v.seal.clone())
            .map(|seal| (seal, content_aad(c.id, c.created_revision)))
    })?;
    match opening {
        None => Ok(stored),
        Some((seal, aad)) => Ok(Bytes::from(
            app.kms().open(&seal, &stored, &aad).await?.plaintext,
        )),
    }
}
