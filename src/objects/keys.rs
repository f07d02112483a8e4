//! The key hierarchy: master key → organisation keys → data keys (see `crypto`).

use std::sync::Arc;

use anyhow::Context;
use articula_actors::clock::now_ms;
use articula_protocol::OrgId;
use dashmap::DashMap;

use super::crypto::{Key, org_key_context};
use crate::config::Settings;
use crate::store::{Db, StoreError};

/// Master keys and the organisation keys they unwrap (cached once unwrapped).
pub struct Keyring {
    master: Key,
    old_masters: Vec<Key>,
    db: Db,
    cache: DashMap<String, Arc<Key>>,
}

/// A key could not be found or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No master key unwraps it, or it was destroyed.
    #[error("key {0} is not available")]
    Unavailable(String),
}

impl Keyring {
    /// The master key from the settings, or the one in the data dir (made at first start).
    pub fn load(settings: &Settings, db: Db) -> anyhow::Result<Self> {
        let master = match &settings.master_key {
            Some(k) => Key::from_base64(k.expose()).context("ARTICULA_MASTER_KEY")?,
            None => {
                let path = settings.data_dir.join("keys").join("master.key");
                if path.exists() {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Key::from_base64(&text)
                        .with_context(|| format!("{} is not a base64 key", path.display()))?
                } else {
                    let key = Key::generate();
                    std::fs::create_dir_all(path.parent().context("keys dir")?)?;
                    crate::tls::write_private(&path, key.to_base64().as_bytes())?;
                    tracing::warn!(
                        path = %path.display(),
                        "made a new master key; back it up (without it stored files cannot be read) or set ARTICULA_MASTER_KEY"
                    );
                    key
                }
            }
        };
        let old_masters = match &settings.master_keys_old {
            Some(list) => list.expose().split(',').map(Key::from_base64).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(Self { master, old_masters, db, cache: DashMap::new() })
    }

    /// The key that signs download links (derived from the master key, so every node agrees).
    pub fn link_key(&self) -> [u8; 32] {
        self.master.derive("articula/link-signing-key/v1")
    }

    /// The organisation's current key, made on first use.
    pub async fn org_key(&self, org: OrgId) -> Result<(String, Arc<Key>), KeyError> {
        if let Some((id, wrapped, master_id)) = self.db.current_org_key(org).await? {
            let key = self.unwrap_org_key(org, &id, &wrapped, &master_id)?;
            return Ok((id, key));
        }
        let key = Key::generate();
        let id = hex::encode(rand::random::<[u8; 8]>());
        let wrapped = self.master.wrap(&key, &org_key_context(&org.to_string(), &id));
        self.db.insert_org_key(&id, org, &wrapped, &self.master.id(), now_ms()).await?;
        let key = Arc::new(key);
        self.cache.insert(id.clone(), key.clone());
        Ok((id, key))
    }

    /// An organisation key by id (for reading files sealed under it).
    pub async fn key_by_id(&self, id: &str) -> Result<Arc<Key>, KeyError> {
        if let Some(k) = self.cache.get(id) {
            return Ok(k.clone());
        }
        let (org, wrapped, master_id) =
            self.db.org_key_by_id(id).await?.ok_or_else(|| KeyError::Unavailable(id.to_owned()))?;
        self.unwrap_org_key(org, id, &wrapped, &master_id)
    }

    fn unwrap_org_key(
        &self,
        org: OrgId,
        id: &str,
        wrapped: &str,
        master_id: &str,
    ) -> Result<Arc<Key>, KeyError> {
        if let Some(k) = self.cache.get(id) {
            return Ok(k.clone());
        }
        let context = org_key_context(&org.to_string(), id);
        let key = std::iter::once(&self.master)
            .chain(&self.old_masters)
            .filter(|m| m.id() == master_id)
            .find_map(|m| m.unwrap_key(wrapped, &context).ok())
            .ok_or_else(|| KeyError::Unavailable(id.to_owned()))?;
        let key = Arc::new(key);
        self.cache.insert(id.to_owned(), key.clone());
        Ok(key)
    }
}
