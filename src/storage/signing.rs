//! Short-lived download links: `?expires=<unix seconds>&sig=<HMAC-SHA256>` over the message id
//! and the expiry, so a browser can load an attachment with a plain `<img src>` (which sends no
//! Authorization header) and the link stops working after `storage.signed_url_seconds`.
//!
//! The key is derived from the database's relay event key (sql/0180), which every relay of one
//! database shares: a link made by one replica works on the others. Must not touch: I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks download links.
pub(crate) struct UrlSigner {
    /// HMAC key for links only, derived from the shared relay key with its own label, so a link
    /// signature can never pass for a relayed event's and the other way round.
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("the link has expired")]
    Expired,
    #[error("the link's signature is not valid")]
    BadSignature,
}

impl UrlSigner {
    pub(crate) fn new(shared_key: &[u8]) -> UrlSigner {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(shared_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"gre-relay attachment download links v1");
        UrlSigner {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, message_id: Uuid, expires: u64) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message_id.as_bytes());
        mac.update(&expires.to_be_bytes());
        mac
    }

    /// The `sig` of a link to `message_id`'s attachment valid until `expires` (unix seconds).
    pub(crate) fn sign(&self, message_id: Uuid, expires: u64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(message_id, expires).finalize().into_bytes())
    }

    /// Checks a link's `expires` and `sig` at `now` (unix seconds); constant time in the
    /// signature.
    pub(crate) fn verify(
        &self,
        message_id: Uuid,
        expires: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), LinkError> {
        let given = URL_SAFE_NO_PAD
            .decode(sig.as_bytes())
            .map_err(|_| LinkError::BadSignature)?;
        self.mac(message_id, expires)
            .verify_slice(&given)
            .map_err(|_| LinkError::BadSignature)?;
        if now > expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_valid_until_it_expires_and_only_for_its_message() {
        let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef");
        let id = Uuid::new_v4();
        let sig = signer.sign(id, 1_000);
        assert_eq!(signer.verify(id, 1_000, &sig, 999), Ok(()));
        assert_eq!(signer.verify(id, 1_000, &sig, 1_000), Ok(()));
        assert_eq!(
            signer.verify(id, 1_000, &sig, 1_001),
            Err(LinkError::Expired)
        );
        // Another message, a later expiry, another key, junk: refused.
        assert_eq!(
            signer.verify(Uuid::new_v4(), 1_000, &sig, 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(id, 2_000, &sig, 0),
            Err(LinkError::BadSignature)
        );
        let other = UrlSigner::new(b"another key, just as long as the first");
        assert_eq!(
            other.verify(id, 1_000, &sig, 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(id, 1_000, "not base64!", 0),
            Err(LinkError::BadSignature)
        );
    }
}
