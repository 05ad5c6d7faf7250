//! A throwaway AWS-compatible KMS for the `--kms aws` tests: moto's server (PyPI
//! `moto[server]`, installed by `scripts/setup-moto.sh`) on a port of its own, stopped when
//! dropped. Keys are created through its KMS JSON API; moto checks no signature, so the
//! requests carry a placeholder one naming the service and region.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::free_port;

/// The region the tests' nodes and keys use.
pub const REGION: &str = "us-east-1";

/// A running moto server.
#[derive(Debug)]
pub struct TestMoto {
    child: Child,
    port: u16,
}

fn binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let tools =
        std::env::var("CONFLUX_TOOLS_DIR").unwrap_or_else(|_| "/var/cache/conflux-tools".into());
    let p = PathBuf::from(tools).join("moto-venv/bin/moto_server");
    if p.exists() {
        Ok(p)
    } else {
        bail!(
            "moto_server not found at {} (run scripts/setup-moto.sh or set MOTO_SERVER)",
            p.display()
        )
    }
}

impl TestMoto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Result<TestMoto> {
        let port = free_port()?;
        let child = Command::new(binary()?)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto_server")?;
        let moto = TestMoto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while moto.call("ListKeys", json!({})).is_err() {
            if Instant::now() > deadline {
                bail!("moto_server did not answer on port {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a symmetric key; returns its ARN.
    pub fn create_key(&self) -> Result<String> {
        let out = self.call("CreateKey", json!({"Description": "conflux test KEK"}))?;
        out["KeyMetadata"]["Arn"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("CreateKey answered without an ARN: {out}"))
    }

    /// The environment a `--kms aws` node needs to reach this server.
    pub fn node_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The `conflux server` arguments of the aws provider with `key` as the current KEK.
    pub fn node_args(&self, key: &str) -> Vec<String> {
        vec![
            "--kms".into(),
            "aws".into(),
            "--kms-key-id".into(),
            key.into(),
            "--kms-endpoint".into(),
            self.endpoint(),
        ]
    }

    /// Stops the server (the KMS becomes unreachable; moto forgets its keys).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn call(&self, action: &str, body: Value) -> Result<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let credential = format!(
            "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/kms/aws4_request, \
             SignedHeaders=host, Signature=00"
        );
        let mut resp = agent
            .post(&self.endpoint())
            .header("X-Amz-Target", &format!("TrentService.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("Authorization", &credential)
            .send(body.to_string())
            .with_context(|| format!("moto {action}"))?;
        let text = resp.body_mut().read_to_string()?;
        serde_json::from_str(&text).with_context(|| format!("moto {action} answered {text:?}"))
    }
}

impl Drop for TestMoto {
    fn drop(&mut self) {
        self.stop();
    }
}
