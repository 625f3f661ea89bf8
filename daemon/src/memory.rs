//! Giving freed memory back to the system: the allocator (mimalloc) purges what was freed only
//! when it next allocates, so a till that goes idle after a burst (start-up's PIN hashing, a
//! rush of sales, a master-data page) would keep its peak resident. [`release`] purges now;
//! [`spawn_releaser`] does it every [`RELEASE_EVERY`]; [`purge_at_once`] (a till process)
//! has every thread purge its pages as they empty.

use std::time::Duration;

/// How often the releaser purges.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// Returns freed memory to the system now: this thread's empty pages and every arena's
/// pending purges. A no-op without the `mimalloc` feature.
pub fn release() {
    #[cfg(feature = "mimalloc")]
    #[allow(unsafe_code)]
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, v2: the 16th option; the Rust
/// bindings name no constant for it).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has freed pages purged as they empty, on every thread, instead of after a delay that only
/// that thread's next allocation or [`release`] ends. [`release`] reaches only the thread it
/// runs on: a till's idle worker threads kept what they freed (15 MB of a big store's
/// till at rest). A till allocates little per sale, so the purges cost it little. A no-op
/// without the `mimalloc` feature.
pub fn purge_at_once() {
    #[cfg(feature = "mimalloc")]
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` takes no pointers; options may be set at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Purges once now and then every [`RELEASE_EVERY`] on the runtime's worker threads, for as
/// long as the runtime runs.
pub fn spawn_releaser() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(RELEASE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            release();
        }
    })
}
