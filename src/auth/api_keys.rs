//! Supabase API keys: `sb_secret_...` keys grant the service role, `sb_publishable_...` keys
//! grant nothing here (they only identify the project to Supabase's own gateway).
//!
//! The configured keys are kept as SHA-256 digests and compared in constant time, all of them
//! every time, so neither the timing nor the length of a guess tells how close it came. Keys are
//! never logged; [`prefix`] gives the most a log line may show.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

const SECRET_PREFIX: &str = "sb_secret_";
const PUBLISHABLE_PREFIX: &str = "sb_publishable_";

/// What a credential looks like, by its prefix alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiKeyKind {
    Secret,
    Publishable,
    /// Anything else: a JWT, or junk the JWT check will refuse.
    NotAnApiKey,
}

pub(crate) fn kind(credential: &str) -> ApiKeyKind {
    if credential.starts_with(SECRET_PREFIX) {
        ApiKeyKind::Secret
    } else if credential.starts_with(PUBLISHABLE_PREFIX) {
        ApiKeyKind::Publishable
    } else {
        ApiKeyKind::NotAnApiKey
    }
}

/// The prefix and four characters: enough to tell two keys apart in a log, useless to an attacker.
pub(crate) fn prefix(key: &str) -> String {
    let shown: String = key.chars().take(SECRET_PREFIX.len() + 4).collect();
    format!("{shown}...")
}

/// The project's secret API keys (several while one is being rotated).
pub(crate) struct SecretKeys {
    digests: Vec<[u8; 32]>,
}

impl SecretKeys {
    pub(crate) fn new(keys: &[String]) -> Self {
        SecretKeys {
            digests: keys.iter().map(|k| digest(k)).collect(),
        }
    }

    /// True when `presented` is exactly one of the keys.
    pub(crate) fn contains(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let mut found = Choice::from(0);
        for key in &self.digests {
            found |= key.ct_eq(&presented);
        }
        found.into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_keys_match() {
        let keys = SecretKeys::new(&["sb_secret_one".into(), "sb_secret_two".into()]);
        assert!(keys.contains("sb_secret_one"));
        assert!(keys.contains("sb_secret_two"));
        assert!(!keys.contains("sb_secret_on"));
        assert!(!keys.contains("sb_secret_one "));
        assert!(!keys.contains("sb_secret_three"));
        assert!(!SecretKeys::new(&[]).contains("sb_secret_one"));
    }

    #[test]
    fn kinds_and_prefixes() {
        assert_eq!(kind("sb_secret_x"), ApiKeyKind::Secret);
        assert_eq!(kind("sb_publishable_x"), ApiKeyKind::Publishable);
        assert_eq!(kind("eyJ.x.y"), ApiKeyKind::NotAnApiKey);
        assert_eq!(prefix("sb_secret_abcdefghijkl"), "sb_secret_abcd...");
    }
}
