//! AutoMTLS, the plugin side: a fresh self-signed server certificate for each run, and a
//! client-certificate check that accepts exactly the certificate Terraform handed over in
//! `PLUGIN_CLIENT_CERT`.
//!
//! Terraform's client certificate is a self-signed ECDSA P-521 CA certificate. A standard
//! WebPKI verifier refuses it (a CA certificate used as an end entity), so [`PinnedClient`]
//! compares the presented certificate byte for byte with the expected one and then checks the
//! handshake signature with that certificate's key. A Go TLS client only sends its
//! certificate when the server lists its signature scheme (`ecdsa_secp521r1_sha512`) as
//! acceptable; `ring` cannot verify P-521, so that one scheme is verified with RustCrypto's
//! `p521`, everything else with `ring`. (rustls' `aws-lc-rs` provider would do P-521 too,
//! but compiling two providers into the workspace breaks tonic's server TLS elsewhere, which
//! relies on the process-default provider.)

use std::sync::Arc;

use p521::ecdsa::signature::Verifier;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    SignatureVerificationAlgorithm, UnixTime, alg_id,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::error::{Error, Result};

/// The server side of one plugin run: its certificate (sent to Terraform in the handshake
/// line) and the TLS configuration that requires Terraform's certificate.
#[derive(Debug)]
pub struct PluginTls {
    /// DER of the server certificate.
    pub server_cert_der: Vec<u8>,
    pub config: Arc<ServerConfig>,
}

/// Builds the TLS setup from the PEM certificate Terraform passed in `PLUGIN_CLIENT_CERT`.
pub fn plugin_tls(client_cert_pem: &str) -> Result<PluginTls> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| Error::Env {
            var: "PLUGIN_CLIENT_CERT",
            message: format!("not a PEM certificate: {e}"),
        })?
        .into_owned();

    let (server_cert_der, key_der) = server_certificate()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedClient::new(client_cert, provider.clone()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .map_err(|e| Error::Tls(e.to_string()))?;
    // gRPC clients insist on HTTP/2 being negotiated.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(PluginTls {
        server_cert_der,
        config: Arc::new(config),
    })
}

/// A self-signed certificate for `localhost` (the name go-plugin's client checks), usable as
/// its own trust anchor, as go-plugin's own servers make them. Returns (cert DER, PKCS#8 key).
fn server_certificate() -> Result<(Vec<u8>, Vec<u8>)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let tls = |e: rcgen::Error| Error::Tls(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(tls)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "terraform-provider-conflux");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(60)).into();
    params.not_after = (now + std::time::Duration::from_secs(30 * 24 * 3600)).into();
    let cert = params.self_signed(&key).map_err(tls)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

/// Accepts exactly one client certificate, and checks handshake signatures made with it.
#[derive(Debug)]
pub struct PinnedClient {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
    /// The provider's schemes plus ECDSA P-521/SHA-512.
    schemes: Vec<SignatureScheme>,
}

impl PinnedClient {
    pub fn new(expected: CertificateDer<'static>, provider: Arc<CryptoProvider>) -> Self {
        let mut schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        if !schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512) {
            schemes.push(SignatureScheme::ECDSA_NISTP521_SHA512);
        }
        PinnedClient {
            expected,
            provider,
            schemes,
        }
    }

    fn algorithms(&self, scheme: SignatureScheme) -> &WebPkiSupportedAlgorithms {
        if scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            &P521_ONLY
        } else {
            &self.provider.signature_verification_algorithms
        }
    }
}

impl ClientCertVerifier for PinnedClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the client certificate is not the one Terraform announced".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms(dss.scheme))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms(dss.scheme))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// ECDSA over P-521 with SHA-512, for WebPKI's signature checks.
#[derive(Debug)]
struct EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> std::result::Result<(), InvalidSignature> {
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

static P521: EcdsaP521Sha512 = EcdsaP521Sha512;

static P521_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&P521],
    mapping: &[(SignatureScheme::ECDSA_NISTP521_SHA512, &[&P521])],
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate like go-plugin's client certificate (pinning compares
    /// bytes, so the curve does not matter here).
    fn ca_cert_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn pins_exactly_the_announced_certificate() {
        let pem = ca_cert_pem();
        let tls = plugin_tls(&pem).unwrap();
        assert_eq!(tls.config.alpn_protocols, vec![b"h2".to_vec()]);
        let expected = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let other = CertificateDer::from_pem_slice(ca_cert_pem().as_bytes()).unwrap();
        let v = PinnedClient::new(
            expected.clone().into_owned(),
            Arc::new(rustls::crypto::ring::default_provider()),
        );
        assert!(
            v.supported_verify_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
        );
        assert!(
            v.verify_client_cert(&expected, &[], UnixTime::now())
                .is_ok()
        );
        assert!(v.verify_client_cert(&other, &[], UnixTime::now()).is_err());
    }

    #[test]
    fn p521_signatures_verify() {
        use p521::ecdsa::signature::Signer;
        let mut scalar = [0u8; 66];
        scalar[65] = 7;
        scalar[10] = 42;
        let key = p521::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let message = b"TLS 1.3, client CertificateVerify";
        let sig: p521::ecdsa::Signature = key.sign(message);
        let der = sig.to_der();
        let public = key.verifying_key().to_sec1_point(false);
        assert!(
            P521.verify_signature(public.as_bytes(), message, der.as_bytes())
                .is_ok()
        );
        assert!(
            P521.verify_signature(public.as_bytes(), b"another message", der.as_bytes())
                .is_err()
        );
        assert!(
            P521.verify_signature(public.as_bytes(), message, &der.as_bytes()[1..])
                .is_err()
        );
    }

    #[test]
    fn a_non_pem_client_certificate_is_refused() {
        assert!(matches!(
            plugin_tls("not a certificate"),
            Err(Error::Env { .. })
        ));
    }
}
