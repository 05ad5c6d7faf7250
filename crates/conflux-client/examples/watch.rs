//! Watches one config and prints every change.
//!
//! ```sh
//! CONFLUX_TOKEN=<a reader token> cargo run -p conflux-client --example watch -- \
//!     http://127.0.0.1:8080,http://127.0.0.1:8082 acme/checkout/prod/app.yaml [k=v,...]
//! ```
//!
//! The first argument is the cluster's nodes (comma-separated, in failover order), the second
//! the config, the optional third this client's labels; `CONFLUX_TOKEN` is the bearer token
//! (a `reader` binding on the config's environment is enough). It keeps a [`ConfigHandle`] (with a
//! fallback copy under the system's temporary directory, so a second run starts even when no
//! node is up) and prints each change the handle receives, until the config is deleted or
//! Ctrl-C.
//!
//! [`ConfigHandle`]: conflux_client::ConfigHandle

use std::process::ExitCode;
use std::sync::Arc;

use conflux_client::{ChangeKind, ConfluxClient, StartMode};
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(endpoints), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: watch <http://node:port,...> <tenant/app/env/name> [k=v,...]");
        return ExitCode::from(2);
    };
    let parts: Vec<&str> = path.split('/').collect();
    let [tenant, app, env, name] = parts.as_slice() else {
        eprintln!("the config is tenant/app/env/name, not {path:?}");
        return ExitCode::from(2);
    };
    let labels: Vec<(String, String)> = args
        .get(2)
        .map(|l| {
            l.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();

    let mut builder = ConfluxClient::new(endpoints.split(','));
    if let Some(token) = std::env::var("CONFLUX_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        builder = builder.with_token(token.trim());
    }
    let client = match builder
        .with_labels(labels)
        .with_fallback_dir(std::env::temp_dir().join("conflux-example-fallback"))
        .start_mode(StartMode::FailSafe)
        .build()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {}", e.code(), e.message());
            return ExitCode::FAILURE;
        }
    };
    let handle = match client.handle(tenant, app, env, name).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {}: {}", e.code(), e.message());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{path}: version {} at revision {} ({} bytes{})",
        handle.version(),
        handle.revision(),
        handle.raw().len(),
        if handle.is_from_fallback() {
            ", from the fallback copy"
        } else {
            ""
        }
    );
    let deleted = Arc::new(Notify::new());
    let on_delete = deleted.clone();
    handle.on_change(move |change| match (change.kind, change.version) {
        (ChangeKind::Updated, Some(version)) => println!(
            "revision {} version {version} updated ({} bytes)",
            change.revision,
            change.content().map_or(0, |c| c.len())
        ),
        (ChangeKind::Updated, None) => {
            println!(
                "revision {} no version released to this client",
                change.revision
            )
        }
        (ChangeKind::Deleted, _) => {
            println!("revision {} deleted", change.revision);
            // A stored permit: not lost if nobody waits yet.
            on_delete.notify_one();
        }
    });
    tokio::select! {
        () = deleted.notified() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
