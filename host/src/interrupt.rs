//! Ctrl-C during `bnas train`, `bnas search` or `bnas demo`'s search and training: the first
//! SIGINT asks the run to stop after its current step and save a checkpoint there, which
//! `--resume` continues exactly; it also restores the default action, so a second Ctrl-C ends
//! the process at once (the last checkpoint stays intact: they are written atomically).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
    // SAFETY: signal() is async-signal-safe (POSIX); SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// While held, Ctrl-C sets [`requested`] instead of ending the process; dropping it restores
/// the disposition SIGINT had before.
pub struct Catch {
    previous: libc::sighandler_t,
}

/// Catches SIGINT until the returned guard is dropped, unless the process ignores SIGINT (a
/// job started with `&` by a non-interactive shell), which it then goes on ignoring.
pub fn catch() -> Catch {
    REQUESTED.store(false, Ordering::SeqCst);
    let handler = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installing a handler that only stores to an atomic and calls signal().
    let previous = unsafe { libc::signal(libc::SIGINT, handler) };
    if previous == libc::SIG_IGN {
        // SAFETY: puts back the disposition the process had.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    }
    Catch { previous }
}

impl Drop for Catch {
    fn drop(&mut self) {
        if self.previous != libc::SIG_ERR {
            // SAFETY: restores the disposition `signal` returned when the guard was made.
            unsafe { libc::signal(libc::SIGINT, self.previous) };
        }
    }
}

/// Whether Ctrl-C was pressed since [`catch`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// What a run stopped by Ctrl-C prints: where it stopped (`epoch` 0-based, `step` steps of the
/// epoch done) and where its checkpoint is.
pub fn stopped_line(epoch: usize, epochs: usize, step: usize, steps: usize, out: &std::path::Path) -> String {
    format!("stopped at epoch {}/{epochs}, step {step}/{steps}; checkpoint saved in {}", epoch + 1, out.display())
}

/// "1 epoch", "3 epochs".
pub fn epochs_text(n: usize) -> String {
    format!("{n} epoch{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real SIGINT, raised in this thread while caught, sets the flag and leaves the default
    /// action for a second one; the guard then puts back what was there before. (The only test
    /// that touches SIGINT; the library's training runs never catch it.)
    #[test]
    fn the_first_ctrl_c_is_noted_and_the_second_is_left_to_the_default() {
        // SAFETY (every call here): dispositions are SIG_DFL, SIG_IGN or `on_sigint`, and
        // raise() delivers to this thread. The default first, as in a terminal: a job started
        // with `&` ignores SIGINT, and `catch` leaves that alone.
        let outer = unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        drop(catch());
        let found = unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        assert_eq!(found, libc::SIG_DFL, "a dropped guard restores the disposition it found");
        let guard = catch();
        assert!(!requested());
        assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
        assert!(requested(), "the handler ran");
        let now = unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        assert_eq!(now, libc::SIG_DFL, "a second Ctrl-C takes the default action");
        drop(guard);
        unsafe { libc::signal(libc::SIGINT, outer) };
    }
}
