//! Images and files in the chat, the rules: what an upload must be (an allowed type sniffed from
//! its bytes, within the size and pixel limits), what is done to it (metadata stripped from the
//! images players send), where it goes (the object store, and an upload row until a message
//! takes it), who may download a message's attachment (whoever may read the session: a player
//! only its own; or anyone holding an unexpired signed link), and the sweep of uploads never
//! sent.
//!
//! Takes the [`Store`] and the [`ObjectStorage`] it needs. Must not touch: HTTP (the body is
//! streamed to a spool file by `http/attachments.rs`), the hub, sockets.

use bytes::Bytes;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

use crate::auth::Identity;
use crate::chat::{store_error, ChatError};
use crate::config::StorageSettings;
use crate::db::{owner_key, NewUpload, Store};
use crate::shutdown::stopped;
use crate::storage::inspect::{self, InspectError, Kind};
use crate::storage::signing::{LinkError, UrlSigner};
use crate::storage::{ObjectStorage, StorageError};

/// Uploads removed per sweep query (the next tick takes the rest).
const SWEEP_BATCH: i64 = 500;

/// Why an upload or a download is refused, or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachmentError {
    #[error("the file exceeds {max} bytes")]
    TooLarge { max: u64 },
    #[error("only JPEG, PNG, WebP and GIF images and PDF files can be sent")]
    UnsupportedType,
    #[error("{0}")]
    Image(#[from] InspectError),
    #[error("no such attachment")]
    NotFound,
    #[error("not your attachment")]
    Forbidden,
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The object store failed; the details stay in the log.
    #[error("file storage unavailable, try again")]
    Storage,
    #[error(transparent)]
    Chat(#[from] ChatError),
}

impl From<StorageError> for AttachmentError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound | StorageError::UnknownBucket(_) | StorageError::BadKey => {
                tracing::debug!(error = %e, "attachment object not served");
                AttachmentError::NotFound
            }
            e => {
                tracing::warn!(error = %e, "object store failed");
                AttachmentError::Storage
            }
        }
    }
}

/// The limits of `[storage]`, read once.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_upload_bytes: u64,
    pub(crate) max_pixels: u64,
    pub(crate) upload_timeout: Duration,
    pub(crate) strip_player_metadata: bool,
    pub(crate) unused_after: Duration,
    pub(crate) sweep_every: Duration,
    pub(crate) link_lifetime: Duration,
    pub(crate) spool_dir: PathBuf,
}

/// An accepted upload, as the uploader is told (`POST /api/gre-chat/attachments`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Uploaded {
    /// What `send_message` / `send` / `reply` name as `attachmentId`.
    pub(crate) id: Uuid,
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) mime: &'static str,
    pub(crate) size: u64,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    /// "image" or "file", as in a message's `attachment`.
    pub(crate) kind: &'static str,
}

/// A file to send back.
pub(crate) struct Download {
    /// The object's bytes, streamed from the store to the client.
    pub(crate) body: crate::storage::ObjectStream,
    /// Its size in bytes (Content-Length).
    pub(crate) size: u64,
    pub(crate) name: String,
    pub(crate) mime: String,
    /// Images are shown in the page; anything else is a download (`Content-Disposition`).
    pub(crate) is_image: bool,
}

// By hand: the stream has no Debug of its own.
impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("is_image", &self.is_image)
            .finish_non_exhaustive()
    }
}

/// Who asks for a download.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reader<'a> {
    /// A signed-in caller (bearer token or API key).
    Caller(&'a Identity),
    /// A signed link's `expires` and `sig`.
    Link { expires: u64, sig: &'a str },
}

/// The attachment service: the object store, the link signer, the limits.
pub(crate) struct Attachments {
    storage: ObjectStorage,
    signer: UrlSigner,
    limits: Limits,
    /// Uploads being processed at once (each holds its file in memory): bounds that memory to
    /// `storage.processing_concurrency` x `storage.max_upload_bytes`.
    processing: Semaphore,
}

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachments")
            .field("storage", &self.storage)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The file name shown to people: the last path component of what the client said, without
/// control characters, at most 255 characters; a neutral name when nothing is left.
pub(crate) fn clean_name(given: &str, kind: Kind) -> String {
    let last = given.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        let stem = if kind.is_image() { "photo" } else { "file" };
        format!("{stem}.{}", kind.extension())
    } else {
        cleaned.to_owned()
    }
}

/// The spooled file, read into one buffer allocated here, on the runtime's worker thread.
/// (`tokio::fs::read` allocates it on a blocking-pool thread instead: with glibc each such
/// thread gets its own malloc arena, which keeps the freed megabytes, and 20 uploads at once
/// left the relay ~100 MiB larger; docs/performance.md.)
async fn read_spooled(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut buf).await?;
    Ok(buf)
}

impl Attachments {
    /// Builds the object store of `settings`; `data_dir` is the embedded database's directory
    /// (the local backend's default home), `shared_key` the relay event key links derive from.
    pub(crate) fn new(
        settings: &StorageSettings,
        data_dir: &Path,
        shared_key: &[u8],
    ) -> Result<Attachments, StorageError> {
        let storage = ObjectStorage::from_settings(settings, data_dir)?;
        let spool_dir = if settings.spool_dir.trim().is_empty() {
            std::env::temp_dir()
        } else {
            PathBuf::from(settings.spool_dir.trim())
        };
        Ok(Attachments {
            storage,
            signer: UrlSigner::new(shared_key),
            limits: Limits {
                max_upload_bytes: settings.max_upload_bytes,
                max_pixels: settings.max_pixels,
                upload_timeout: Duration::from_secs(settings.upload_timeout_seconds.max(1)),
                strip_player_metadata: settings.strip_player_metadata,
                unused_after: Duration::from_secs(settings.unused_upload_seconds),
                sweep_every: Duration::from_secs(settings.sweep_interval_seconds.max(1)),
                link_lifetime: Duration::from_secs(settings.signed_url_seconds.max(1)),
                spool_dir,
            },
            processing: Semaphore::new(settings.processing_concurrency.max(1)),
        })
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.storage.backend()
    }

    /// The verdict on a file's first bytes (at least [`inspect::SNIFF_BYTES`], or the whole
    /// file when shorter): the allowed type they show.
    pub(crate) fn sniff(head: &[u8]) -> Result<Kind, AttachmentError> {
        inspect::sniff(head).ok_or(AttachmentError::UnsupportedType)
    }

    /// Takes a complete upload of `kind` spooled at `spooled` (`size` bytes, within the limit):
    /// checks the image's pixel size, strips a player's image of its metadata, stores it and
    /// records the upload for `uploader`.
    pub(crate) async fn accept(
        &self,
        store: &Store,
        uploader: &Identity,
        name: &str,
        kind: Kind,
        spooled: &Path,
    ) -> Result<Uploaded, AttachmentError> {
        let _permit = self
            .processing
            .acquire()
            .await
            .map_err(|_| AttachmentError::Storage)?;
        let mut bytes = Bytes::from(read_spooled(spooled).await.map_err(|e| {
            tracing::warn!(error = %e, "could not read a spooled upload");
            AttachmentError::Storage
        })?);
        let mut dims = None;
        if kind.is_image() {
            dims = Some(inspect::dimensions(&bytes, self.limits.max_pixels)?);
            if self.limits.strip_player_metadata && matches!(uploader, Identity::Player { .. }) {
                bytes = inspect::strip_metadata(kind, bytes)?;
            }
        }
        let size = bytes.len() as u64;
        if size == 0 {
            return Err(AttachmentError::UnsupportedType);
        }
        let key = format!("uploads/{}.{}", Uuid::new_v4(), kind.extension());
        self.storage.put(&key, bytes).await?;
        let (sender, sender_id) = match uploader {
            Identity::Player { player_id } => ("player", player_id.to_string()),
            Identity::Staff { staff_id, .. } => ("gre", staff_id.clone()),
        };
        let name = clean_name(name, kind);
        let upload = NewUpload {
            owner: owner_key(sender, &sender_id),
            bucket: self.storage.default_bucket().to_owned(),
            key: key.clone(),
            name: name.clone(),
            mime: kind.mime().to_owned(),
            size: size as i64,
            width: dims.map(|d| d.0 as i32),
            height: dims.map(|d| d.1 as i32),
        };
        let id = match store.insert_upload(&upload).await {
            Ok(id) => id,
            Err(e) => {
                // Not recorded, so no sweep would find it: remove the object now.
                if let Err(d) = self.storage.delete(None, &key).await {
                    tracing::warn!(error = %d, "could not remove an unrecorded upload");
                }
                return Err(ChatError::from(e).into());
            }
        };
        Ok(Uploaded {
            id,
            name,
            mime: kind.mime(),
            size,
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
            kind: if kind.is_image() { "image" } else { "file" },
        })
    }

    /// The attachment of message `message_id` for `reader`: a player only of its own sessions,
    /// staff any, a signed link the message it was made for until it expires.
    pub(crate) async fn open(
        &self,
        store: &Store,
        reader: Reader<'_>,
        message_id: Uuid,
    ) -> Result<Download, AttachmentError> {
        if let Reader::Link { expires, sig } = reader {
            self.signer.verify(message_id, expires, sig, now_unix())?;
        }
        let found = store
            .message_attachment(message_id)
            .await
            .map_err(store_error)?
            .ok_or(AttachmentError::NotFound)?;
        if let Reader::Caller(identity) = reader {
            if !identity.may_access_player(found.player_id) {
                return Err(AttachmentError::Forbidden);
            }
        }
        let (body, size) = self
            .storage
            .get(found.bucket.as_deref(), &found.key)
            .await?;
        let is_image = Kind::from_mime(&found.mime).is_some_and(Kind::is_image);
        Ok(Download {
            body,
            size,
            name: found.name,
            mime: found.mime,
            is_image,
        })
    }

    /// A signed link to message `message_id`'s attachment for `caller`, checked like a
    /// download: (path with query, expiry in unix seconds).
    pub(crate) async fn link(
        &self,
        store: &Store,
        caller: &Identity,
        message_id: Uuid,
    ) -> Result<(String, u64), AttachmentError> {
        let found = store
            .message_attachment(message_id)
            .await
            .map_err(store_error)?
            .ok_or(AttachmentError::NotFound)?;
        if !caller.may_access_player(found.player_id) {
            return Err(AttachmentError::Forbidden);
        }
        let expires = now_unix() + self.limits.link_lifetime.as_secs();
        let sig = self.signer.sign(message_id, expires);
        Ok((
            format!("/api/gre-chat/attachments/{message_id}?expires={expires}&sig={sig}"),
            expires,
        ))
    }

    /// Removes uploads older than `storage.unused_upload_seconds` that no message took, objects
    /// included. Returns how many.
    pub(crate) async fn sweep(&self, store: &Store) -> usize {
        let mut removed = 0;
        loop {
            let batch = match store
                .take_expired_uploads(self.limits.unused_after, SWEEP_BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "attachment sweep: database unavailable");
                    return removed;
                }
            };
            let n = batch.len();
            for (bucket, key) in batch {
                if let Err(e) = self.storage.delete(Some(&bucket), &key).await {
                    // The row is gone already: the object stays until someone removes it.
                    tracing::warn!(error = %e, %key, "attachment sweep: could not delete an object");
                }
            }
            removed += n;
            if (n as i64) < SWEEP_BATCH {
                return removed;
            }
        }
    }

    /// Sweeps every `storage.sweep_interval_seconds` until shutdown.
    pub(crate) async fn run_sweeper(
        self: Arc<Self>,
        store: Store,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.limits.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Time for a sweep.
                _ = tick.tick() => {
                    let removed = self.sweep(&store).await;
                    if removed > 0 {
                        tracing::info!(removed, "removed uploads that were never sent");
                    }
                }
                // The relay is stopping.
                _ = stopped(&mut shutdown) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("receipt.jpg", Kind::Jpeg), "receipt.jpg");
        assert_eq!(clean_name("../../etc/passwd", Kind::Pdf), "passwd");
        assert_eq!(
            clean_name("C:\\Users\\anna\\scan.pdf", Kind::Pdf),
            "scan.pdf"
        );
        assert_eq!(clean_name("a\u{0}b\nc.png", Kind::Png), "abc.png");
        assert_eq!(clean_name("  ", Kind::Png), "photo.png");
        assert_eq!(clean_name("dir/", Kind::Pdf), "file.pdf");
        assert_eq!(clean_name("..", Kind::Gif), "photo.gif");
        assert_eq!(clean_name(&"x".repeat(300), Kind::Gif).chars().count(), 255);
    }
}
