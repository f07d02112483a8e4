//! TLS 1.3 only, with rustls. `auto` makes a self-signed certificate in the data dir at first
//! start (for the demo and for trying Articula out); production points at real files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Settings, TlsMode};

/// Where the self-signed certificate lives.
pub fn auto_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn make_self_signed(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let ck = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(cert_path, ck.cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(key_path, ck.signing_key.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert_path.display(), "made a self-signed TLS certificate");
    Ok(())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// The rustls server configuration, or `None` with `tls = off`.
pub fn server_config(settings: &Settings) -> anyhow::Result<Option<rustls::ServerConfig>> {
    let (cert_path, key_path) = match settings.tls_mode()? {
        TlsMode::Off => {
            tracing::warn!(
                "TLS is off (ARTICULA_TLS=off): only run like this behind a proxy that terminates TLS 1.3"
            );
            return Ok(None);
        }
        TlsMode::Files { cert, key } => (cert, key),
        TlsMode::Auto => {
            let (cert, key) = auto_paths(&settings.data_dir);
            if !cert.exists() || !key.exists() {
                make_self_signed(&cert, &key)?;
            }
            (cert, key)
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(config))
}
