//! `storage/`: the files of the chat (images and PDFs) in an object store, through the
//! `object_store` crate: a local directory (the embedded default) or any S3-compatible service
//! (Supabase Storage's S3 endpoint in production). [`inspect`] tells what a file is from its
//! bytes (type, pixel size) and strips metadata; [`signing`] makes and checks short-lived
//! download links.
//!
//! Owns bytes and keys only. Must not touch: the database (upload rows and message rows are
//! `db/`'s), who may read what (`attachments.rs` decides), HTTP.

pub(crate) mod inspect;
pub(crate) mod signing;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::StorageSettings;

/// What went wrong in the object store. Never shown to clients as is (it may name hosts).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    #[error("no such object")]
    NotFound,
    /// A bucket the relay is not configured to read (`storage.readable_buckets`).
    #[error("bucket '{0}' is not one the relay reads")]
    UnknownBucket(String),
    #[error("not a valid object key")]
    BadKey,
    #[error("object store: {0}")]
    Backend(String),
    #[error("storage configuration: {0}")]
    Config(String),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            object_store::Error::InvalidPath { .. } => StorageError::BadKey,
            e => StorageError::Backend(e.to_string()),
        }
    }
}

/// An object's bytes as they arrive from the store (object_store's own stream type).
pub(crate) type ObjectStream =
    futures_util::stream::BoxStream<'static, Result<Bytes, object_store::Error>>;

/// The relay's buckets, each an [`ObjectStore`], built once at start.
pub(crate) struct ObjectStorage {
    /// Where uploads go, and what a row without a bucket means.
    default_bucket: String,
    /// Every readable bucket (the default one first): a row naming another is not served, so a
    /// row cannot make the relay fetch from anywhere its keys happen to reach.
    stores: HashMap<String, Arc<dyn ObjectStore>>,
    /// "local" or "s3", for the log and health.
    backend: &'static str,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("backend", &self.backend)
            .field("default_bucket", &self.default_bucket)
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// Builds the stores `settings` describe. `data_dir` is the embedded database's directory:
    /// the local backend's default home.
    pub(crate) fn from_settings(
        settings: &StorageSettings,
        data_dir: &Path,
    ) -> Result<ObjectStorage, StorageError> {
        let buckets = settings.buckets();
        let mut stores: HashMap<String, Arc<dyn ObjectStore>> = HashMap::new();
        let backend = match settings.backend.as_str() {
            "local" => {
                let root = if settings.local_dir.trim().is_empty() {
                    data_dir.join("attachments")
                } else {
                    Path::new(settings.local_dir.trim()).to_path_buf()
                };
                for bucket in &buckets {
                    let dir = root.join(bucket);
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        StorageError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                    let store = LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| StorageError::Config(e.to_string()))?;
                    stores.insert(bucket.clone(), Arc::new(store));
                }
                "local"
            }
            "s3" => {
                let endpoint = settings.s3_endpoint.trim().trim_end_matches('/');
                for bucket in &buckets {
                    let mut builder = AmazonS3Builder::new()
                        .with_bucket_name(bucket)
                        .with_region(settings.s3_region.trim())
                        .with_access_key_id(settings.s3_access_key_id.trim())
                        .with_secret_access_key(settings.s3_secret_access_key.trim())
                        .with_virtual_hosted_style_request(!settings.s3_path_style);
                    if !endpoint.is_empty() {
                        // Plain http only where the operator wrote it (a local S3 server).
                        builder = builder
                            .with_endpoint(endpoint)
                            .with_allow_http(endpoint.starts_with("http://"));
                    }
                    let store = builder
                        .build()
                        .map_err(|e| StorageError::Config(e.to_string()))?;
                    stores.insert(bucket.clone(), Arc::new(store));
                }
                "s3"
            }
            other => {
                return Err(StorageError::Config(format!(
                    "unknown storage backend '{other}'"
                )))
            }
        };
        Ok(ObjectStorage {
            default_bucket: buckets[0].clone(),
            stores,
            backend,
        })
    }

    /// The bucket uploads go to.
    pub(crate) fn default_bucket(&self) -> &str {
        &self.default_bucket
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.backend
    }

    /// The store of `bucket` (None: the default one) and the key as an object path.
    fn locate(
        &self,
        bucket: Option<&str>,
        key: &str,
    ) -> Result<(&Arc<dyn ObjectStore>, ObjectPath), StorageError> {
        let bucket = bucket.unwrap_or(&self.default_bucket);
        let store = self
            .stores
            .get(bucket)
            .ok_or_else(|| StorageError::UnknownBucket(bucket.to_owned()))?;
        // `parse` refuses empty segments, "." and ".." (no way out of the bucket).
        let path = ObjectPath::parse(key).map_err(|_| StorageError::BadKey)?;
        if path.as_ref().is_empty() {
            return Err(StorageError::BadKey);
        }
        Ok((store, path))
    }

    /// Stores `bytes` under `key` in the default bucket.
    pub(crate) async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let (store, path) = self.locate(None, key)?;
        store.put(&path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The object as a stream of chunks, and its size. Never read whole: a staff portal's own
    /// files (uploaded to Supabase Storage, not through the relay) have no size limit, and twenty
    /// downloads of ten megabytes at once would otherwise hold two hundred in memory.
    pub(crate) async fn get(
        &self,
        bucket: Option<&str>,
        key: &str,
    ) -> Result<(ObjectStream, u64), StorageError> {
        let (store, path) = self.locate(bucket, key)?;
        let found = store.get(&path).await?;
        let size = found.meta.size;
        Ok((found.into_stream(), size))
    }

    /// Removes an object; one that is already gone is not an error.
    pub(crate) async fn delete(&self, bucket: Option<&str>, key: &str) -> Result<(), StorageError> {
        let (store, path) = self.locate(bucket, key)?;
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
