//! TLS: the configured certificate files, or a self-signed certificate made at start (openvidu-
//! browser always connects with `wss`, so TLS is on by default).

use std::path::Path;

use thiserror::Error;

/// A certificate chain and its key, in PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Certificate chain.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").field("cert_pem", &self.cert_pem.len()).finish_non_exhaustive()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

impl TlsMaterial {
    /// Reads a certificate chain and key from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| TlsError::Read { path: p.display().to_string(), source })
        };
        Ok(Self { cert_pem: read(cert)?, key_pem: read(key)? })
    }

    /// A self-signed certificate for `localhost`, `127.0.0.1`, `::1` and the given names.
    pub fn self_signed(extra_names: &[String]) -> Result<Self, TlsError> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        names.extend(extra_names.iter().filter(|n| !n.is_empty()).cloned());
        names.dedup();
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(Self { cert_pem: certified.cert.pem(), key_pem: certified.signing_key.serialize_pem() })
    }
}
