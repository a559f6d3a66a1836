//! The shutdown signal every long-running task watches (in the style of mini-redis's
//! `shutdown.rs`): one `watch` channel, set to `true` once by [`crate::server::Relay::shutdown`].
//!
//! Owns: nothing but the waiting. Must not touch: any other module (it is a leaf).

use tokio::sync::watch;

/// Resolves once `rx` says stop (or its sender is gone). Unlike `watch::Receiver::wait_for`, it
/// holds no borrow of the value, so the future stays `Send`.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
