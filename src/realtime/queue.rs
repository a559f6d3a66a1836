//! One connection's bounded event queue: the hub pushes, the connection's task drains.
//!
//! Why not `tokio::sync::mpsc`: an idle connection is what the relay holds most of (19,000 of
//! them on one process), and an mpsc channel costs about 400 bytes each before the first event
//! (cache-padded channel state, a first block of 32 slots), plus a `Notify` for the lag signal.
//! This queue is one small allocation (a mutex, an empty `VecDeque`, a waker slot and the
//! reason it closed): the slots are allocated only while events wait, and given back once the
//! connection has drained a burst. It also carries the two ways a connection is told to stop
//! (its queue overflowed, or the relay shuts down), so the task waits on one thing, not three
//! (docs/performance.md, "Issue 12, idle memory and relay CPU").
//!
//! Must not touch: sockets, the hub's maps (the hub owns the decision; this only carries it).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Why a queue stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The queue was full: the client is too slow (closed with 4008; it resumes from its cursor).
    Lagged,
    /// The relay is shutting down (closed with 1001).
    Shutdown,
}

/// What a wait on the queue yields.
#[derive(Debug)]
pub enum Recv<T> {
    Event(T),
    Closed(Closed),
}

/// A bounded queue with one consumer. Once closed it delivers nothing more: the events still
/// waiting are dropped at once (the client resumes from its cursor), so a lagging client's
/// backlog is freed when the decision is taken, not when its task gets round to it.
pub struct Queue<T> {
    /// A std mutex: held only to push or pop, never across an await.
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    items: VecDeque<T>,
    /// The consumer's task, while it waits on an empty queue.
    waker: Option<Waker>,
    capacity: u32,
    closed: Option<Closed>,
}

/// A drained queue keeps at most this many slots: a burst (an announcement to every staff
/// socket) does not stay allocated on the connections that received it.
const KEEP_SLOTS: usize = 8;

/// Why a push did not queue the event.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The queue is at capacity (the event is not queued; the caller decides what that means).
    Full,
    /// The queue was closed before.
    Closed,
}

impl<T> Queue<T> {
    pub fn new(capacity: usize) -> Queue<T> {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                waker: None,
                capacity: u32::try_from(capacity.max(1)).unwrap_or(u32::MAX),
                closed: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Every update is a single push, pop or assignment: a panic cannot leave it half done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event and wakes the consumer.
    pub fn push(&self, item: T) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.closed.is_some() {
            return Err(PushError::Closed);
        }
        if inner.items.len() >= inner.capacity as usize {
            return Err(PushError::Full);
        }
        inner.items.push_back(item);
        let waker = inner.waker.take();
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Closes the queue for `why` (the first reason wins), drops what waits in it and wakes the
    /// consumer.
    pub fn close(&self, why: Closed) {
        let mut inner = self.lock();
        if inner.closed.is_none() {
            inner.closed = Some(why);
        }
        let items = std::mem::take(&mut inner.items);
        let waker = inner.waker.take();
        drop(inner);
        drop(items);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next event, or why the queue closed; a closed queue says so even while events wait.
    /// With `deliver` false only the closing is reported: events stay queued (a connection that
    /// holds live events back must still hear that it lagged or the relay shuts down).
    pub fn poll_recv(&self, cx: &mut Context<'_>, deliver: bool) -> Poll<Recv<T>> {
        let mut inner = self.lock();
        if let Some(why) = inner.closed {
            return Poll::Ready(Recv::Closed(why));
        }
        if deliver {
            if let Some(item) = inner.items.pop_front() {
                shrink_if_drained(&mut inner.items);
                return Poll::Ready(Recv::Event(item));
            }
        }
        match &mut inner.waker {
            Some(w) => w.clone_from(cx.waker()),
            slot @ None => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next event (when `deliver`), or for the queue to close.
    #[cfg(test)]
    pub async fn recv(&self, deliver: bool) -> Recv<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx, deliver)).await
    }

    /// The next event if one is waiting and the queue is open.
    pub fn try_recv(&self) -> Option<T> {
        let mut inner = self.lock();
        if inner.closed.is_some() {
            return None;
        }
        let item = inner.items.pop_front();
        shrink_if_drained(&mut inner.items);
        item
    }

    /// Why the queue closed, if it did.
    #[cfg(test)]
    pub fn closed(&self) -> Option<Closed> {
        self.lock().closed
    }
}

fn shrink_if_drained<T>(items: &mut VecDeque<T>) {
    if items.is_empty() && items.capacity() > KEEP_SLOTS {
        *items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_and_in_order() {
        let q = Queue::new(2);
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        assert_eq!(q.push(3), Err(PushError::Full));
        assert_eq!(q.try_recv(), Some(1));
        assert_eq!(q.try_recv(), Some(2));
        assert_eq!(q.try_recv(), None);
    }

    #[test]
    fn closing_drops_the_backlog_and_refuses_more() {
        let q = Queue::new(4);
        q.push(1).ok();
        q.close(Closed::Lagged);
        q.close(Closed::Shutdown);
        assert_eq!(q.closed(), Some(Closed::Lagged));
        assert_eq!(q.try_recv(), None);
        assert_eq!(q.push(2), Err(PushError::Closed));
    }

    #[test]
    fn a_drained_burst_gives_its_slots_back() {
        let q = Queue::new(1000);
        for i in 0..500 {
            q.push(i).ok();
        }
        while q.try_recv().is_some() {}
        assert!(q.lock().items.capacity() <= KEEP_SLOTS);
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_push_and_by_close() {
        let q = std::sync::Arc::new(Queue::new(4));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.recv(true).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(7).ok();
        let got = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert!(matches!(got, Recv::Event(7)));
        let q2 = q.clone();
        // Held back (not delivering): an event does not end the wait, the closing does.
        q.push(8).ok();
        let waiter = tokio::spawn(async move { q2.recv(false).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        q.close(Closed::Shutdown);
        let got = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert!(matches!(got, Recv::Closed(Closed::Shutdown)));
    }
}
