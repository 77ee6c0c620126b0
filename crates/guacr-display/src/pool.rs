//! The bounded encoding worker pool and a small one-shot hand-off awaited
//! from async code.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

/// A fixed-size pool of encoding threads (rayon). Work handed to it never runs
/// on the caller's (async runtime) thread.
pub struct EncodePool {
    pool: Option<rayon::ThreadPool>,
    threads: usize,
}

impl std::fmt::Debug for EncodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodePool")
            .field("threads", &self.threads)
            .finish()
    }
}

/// Threads of the shared pool: the CPUs, at most this many.
pub const SHARED_POOL_MAX_THREADS: usize = 4;

impl EncodePool {
    /// A pool of `threads` threads (at least 1). If the threads cannot be
    /// started, work runs on the calling thread instead.
    pub fn new(threads: usize) -> Arc<EncodePool> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("guacr-encode-{i}"))
            .panic_handler(|_| tracing::error!("panic in a display encoding job"))
            .build();
        match pool {
            Ok(pool) => Arc::new(EncodePool {
                pool: Some(pool),
                threads,
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start encoding threads; encoding inline");
                Arc::new(EncodePool {
                    pool: None,
                    threads: 1,
                })
            }
        }
    }

    /// The process-wide pool shared by every display (one thread per CPU, at
    /// most [`SHARED_POOL_MAX_THREADS`]).
    pub fn shared() -> Arc<EncodePool> {
        static SHARED: OnceLock<Arc<EncodePool>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let n = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .min(SHARED_POOL_MAX_THREADS);
                EncodePool::new(n)
            })
            .clone()
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on the pool and waits for it (blocking the caller).
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Starts `f` on the pool; the returned [`Job`] yields its result.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Job<T> {
        let slot = Arc::new(Slot {
            state: Mutex::new((None, None)),
        });
        let tx = slot.clone();
        let job = move || {
            let v = f();
            let waker = {
                let mut st = tx.state.lock().unwrap_or_else(|e| e.into_inner());
                st.0 = Some(v);
                st.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        };
        match &self.pool {
            Some(p) => p.spawn(job),
            None => job(),
        }
        Job { slot }
    }
}

type SlotState<T> = (Option<T>, Option<Waker>);

struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

/// The pending result of [`EncodePool::spawn`].
pub(crate) struct Job<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Future for Job<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_and_spawn() {
        let pool = EncodePool::new(2);
        assert_eq!(pool.threads(), 2);
        let name = pool.run(|| std::thread::current().name().map(str::to_owned));
        assert!(name.is_some_and(|n| n.starts_with("guacr-encode-")));
        let job = pool.spawn(|| std::thread::current().name().map(str::to_owned));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let name = rt.block_on(job);
        assert!(name.is_some_and(|n| n.starts_with("guacr-encode-")));
    }
}
