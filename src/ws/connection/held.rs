//! Small per-connection sets: the sessions a socket may see and its position in each.
//!
//! Why not `HashMap`/`HashSet`: nearly every connection holds one session, and an idle
//! connection is what the relay holds most of. A hash map allocates room for three entries plus
//! a control block on the first insert (about 130 bytes for a `Uuid -> i64`); a sorted vector
//! grown one slot at a time allocates 24 (docs/performance.md, "Issue 12, idle memory and relay
//! CPU"). Lookups are a binary search, so a staff socket subscribed to many sessions stays fast.
//!
//! Must not touch: anything else (a leaf of `connection`).

use uuid::Uuid;

/// Grows one slot at a time up to this length (the usual one or two sessions), doubling beyond.
const EXACT_UP_TO: usize = 4;

fn grow<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() && v.len() < EXACT_UP_TO {
        v.reserve_exact(1);
    }
}

/// Per subscribed session: the number of the last message this client was sent.
#[derive(Debug, Default)]
pub(super) struct Positions(Vec<(Uuid, i64)>);

impl Positions {
    fn find(&self, session_id: &Uuid) -> Result<usize, usize> {
        self.0.binary_search_by(|(s, _)| s.cmp(session_id))
    }

    pub(super) fn get_mut(&mut self, session_id: &Uuid) -> Option<&mut i64> {
        let i = self.find(session_id).ok()?;
        Some(&mut self.0[i].1)
    }

    pub(super) fn insert(&mut self, session_id: Uuid, seq: i64) {
        match self.find(&session_id) {
            Ok(i) => self.0[i].1 = seq,
            Err(i) => {
                grow(&mut self.0);
                self.0.insert(i, (session_id, seq));
            }
        }
    }

    pub(super) fn remove(&mut self, session_id: &Uuid) {
        if let Ok(i) = self.find(session_id) {
            self.0.remove(i);
        }
    }
}

/// Sessions this socket was found to be allowed to see.
#[derive(Debug, Default)]
pub(super) struct Allowed(Vec<Uuid>);

impl Allowed {
    pub(super) fn contains(&self, session_id: &Uuid) -> bool {
        self.0.binary_search(session_id).is_ok()
    }

    pub(super) fn insert(&mut self, session_id: Uuid) {
        if let Err(i) = self.0.binary_search(&session_id) {
            grow(&mut self.0);
            self.0.insert(i, session_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_allowed_behave_as_map_and_set() {
        let mut p = Positions::default();
        let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
        for (n, id) in ids.iter().enumerate() {
            p.insert(*id, n as i64);
        }
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(p.get_mut(id).copied(), Some(n as i64));
        }
        p.insert(ids[3], 99);
        assert_eq!(p.get_mut(&ids[3]).copied(), Some(99));
        p.remove(&ids[3]);
        assert_eq!(p.get_mut(&ids[3]), None);
        let mut a = Allowed::default();
        a.insert(ids[0]);
        a.insert(ids[0]);
        assert!(a.contains(&ids[0]));
        assert!(!a.contains(&ids[1]));
        assert_eq!(a.0.len(), 1);
        assert_eq!(a.0.capacity(), 1, "one session, one slot");
    }
}
