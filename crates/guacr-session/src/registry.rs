use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Session;

/// Live sessions by connection id.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    removed: std::sync::atomic::AtomicU64,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        // A poisoned map is still a valid map: sessions are inserted/removed atomically.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, session: Arc<Session>) {
        self.lock().insert(session.id().to_owned(), session);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let removed = self.lock().remove(id);
        if removed.is_some() {
            self.removed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        removed
    }

    /// Sessions removed since the registry was created.
    pub fn removed_total(&self) -> u64 {
        self.removed.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Live sessions of one protocol.
    pub fn count_protocol(&self, protocol: &str) -> usize {
        self.lock()
            .values()
            .filter(|s| s.protocol() == protocol)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }
}
