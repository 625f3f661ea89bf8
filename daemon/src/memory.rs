//! Giving memory back to the system: the allocator (mimalloc) purges what was freed only
//! when it next allocates, so a till that goes idle after a burst (start-up's PIN hashing, a
//! rush of sales, a master-data page) would keep its peak resident. [`release`] purges now;
//! [`spawn_releaser`] does it every [`RELEASE_EVERY`]; [`purge_at_once`] (a till process)
//! has every thread purge its pages as they empty. [`page_out_code`] hands back the pages of
//! the binary that start-up alone ran (a till process, once, via
//! [`page_out_code_after_start`]).

use std::sync::atomic::{AtomicBool, Ordering};
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

/// Whether the releaser pages out the binary's code once start-up is over (a till process).
static PAGE_OUT_CODE: AtomicBool = AtomicBool::new(false);

/// Has [`spawn_releaser`] call [`page_out_code`] once, [`RELEASE_EVERY`] after it starts:
/// a till process. The simulator's and the tests' processes run many tills and keep their
/// code mapped.
pub fn page_out_code_after_start() {
    PAGE_OUT_CODE.store(true, Ordering::Relaxed);
}

/// Asks the kernel to reclaim this process's pages of its own binary's read-only mappings
/// (code, read-only data), and returns the bytes of those mappings.
///
/// Start-up runs code a till never runs again: migrations, the catalog's parse, the vision
/// model's load and optimisation, the dynamic loader's relocations. Those pages stay mapped
/// (RSS) and cached until memory runs short. `MADV_PAGEOUT` reclaims them now: they are clean
/// copies of the file, so nothing is lost, and a page still in use is read back on its next
/// touch (once, from the page cache or the disk). Pages this process wrote to (a debugger's
/// breakpoints) are anonymous and, without swap, stay. Linux 5.4 or later; older kernels
/// refuse the advice (`EINVAL`).
pub fn page_out_code() -> std::io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let exe = exe.to_string_lossy();
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut bytes = 0;
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(path)) = (
            fields.next(),
            fields.next(),
            fields.nth(3).map(str::trim_start),
        ) else {
            continue;
        };
        if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let len = end.saturating_sub(start);
        #[allow(unsafe_code)]
        // SAFETY: `madvise` reads no memory of ours: it takes an address range, which the
        // kernel checks (a range not mapped is refused). `MADV_PAGEOUT` changes no contents:
        // a reclaimed clean file page reads back the same, and dirty ones are skipped.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        bytes += len;
    }
    Ok(bytes)
}

/// Purges once now and then every [`RELEASE_EVERY`] on the runtime's worker threads, for as
/// long as the runtime runs; pages out start-up's code at the second purge when
/// [`page_out_code_after_start`] asked for it.
pub fn spawn_releaser() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(RELEASE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0_u64.. {
            tick.tick().await;
            release();
            if n == 1 && PAGE_OUT_CODE.load(Ordering::Relaxed) {
                match page_out_code() {
                    Ok(bytes) => tracing::info!(mapped = bytes, "start-up's code paged out"),
                    Err(e) => tracing::info!(error = %e, "start-up's code stays mapped"),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident kB of this process's mappings of its own binary (`/proc/self/smaps`).
    fn binary_resident_kb() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy().into_owned();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut ours = false;
        let mut kb = 0;
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                if ours {
                    kb += rss.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
                }
            } else if line.contains('-') && line.split_whitespace().count() >= 5 {
                ours = line.ends_with(exe.as_str());
            }
        }
        kb
    }

    #[test]
    fn paging_out_code_hands_back_the_binary_s_resident_pages_and_keeps_running() {
        // Touch some code and read-only data first.
        let text = format!("{:?}", (1..100).collect::<Vec<u32>>());
        let before = binary_resident_kb();
        let mapped = page_out_code().expect("MADV_PAGEOUT");
        let after = binary_resident_kb();
        assert!(mapped > 0, "no mapping of the binary was found");
        assert!(before > 0);
        // The code this test runs after the advice comes back, a few pages of it.
        assert!(
            after * 2 < before,
            "resident pages of the binary: {before} kB before, {after} kB after"
        );
        // The code still runs, and the data it reads is intact.
        assert_eq!(text, format!("{:?}", (1..100).collect::<Vec<u32>>()));
    }
}
