//! Progress bars over `indicatif`: one bar per epoch with loss, accuracy, images/s and ETA (then
//! over the epoch's batch-norm re-estimation and evaluation, [`Progress::phase`]), and
//! a bar over the items of one stage of a long run ([`Counter`]: each runtime of `verify`, the
//! firmware's images, `bnas scale`'s sizes). Hidden when stdout is not a terminal or
//! `BNAS_NO_PROGRESS` is set; one line per epoch is printed either way.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set (to anything but "" or "0") to hide progress bars.
pub const NO_PROGRESS_ENV: &str = "BNAS_NO_PROGRESS";

/// Whether bars are drawn: stdout is a terminal and `BNAS_NO_PROGRESS` is unset.
pub fn progress_enabled() -> bool {
    let disabled = std::env::var(NO_PROGRESS_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    !disabled && std::io::stdout().is_terminal()
}

/// Figures shown in the bar's message slot; `None` fields are left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Mean loss so far this epoch.
    pub loss: Option<f64>,
    /// Accuracy in [0, 1].
    pub accuracy: Option<f64>,
    /// Training throughput, images per second.
    pub images_per_s: Option<f64>,
}

impl StepStats {
    /// "loss 0.5321  acc 81.20%  4210 img/s".
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = self.loss {
            parts.push(format!("loss {l:.4}"));
        }
        if let Some(a) = self.accuracy {
            parts.push(format!("acc {:.2}%", 100.0 * a));
        }
        if let Some(r) = self.images_per_s {
            parts.push(format!("{r:.0} img/s"));
        }
        parts.join("  ")
    }
}

/// A progress display for a run of `epochs` epochs, a bar over each epoch's steps.
pub struct Progress {
    bar: ProgressBar,
    /// Drawn (from the first epoch's start on, so that no empty bar shows before it).
    visible: bool,
    label: String,
    epochs: usize,
    epoch: usize,
    epoch_start: Instant,
}

impl Progress {
    /// A display for `label` (e.g. "search", "train") over `epochs` epochs; drawn only when
    /// [`progress_enabled`].
    pub fn new(label: &str, epochs: usize) -> Progress {
        Progress::with_visibility(label, epochs, progress_enabled())
    }

    /// As [`Progress::new`] with the visibility decided by the caller.
    pub fn with_visibility(label: &str, epochs: usize, visible: bool) -> Progress {
        let bar = ProgressBar::hidden();
        let style =
            ProgressStyle::with_template("{prefix:>16.bold} [{bar:30.cyan/blue}] {pos:>5}/{len:<5} {msg}  eta {eta}")
                .expect("valid progress template")
                .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar, visible, label: label.to_string(), epochs, epoch: 0, epoch_start: Instant::now() }
    }

    pub fn is_visible(&self) -> bool {
        self.visible
    }

    /// Starts epoch `epoch` (0-based) of `steps` steps, resumed at step `start`.
    pub fn start_epoch(&mut self, epoch: usize, steps: u64, start: u64) {
        self.epoch = epoch;
        self.epoch_start = Instant::now();
        // The labels first: each setter may draw the bar.
        self.bar.set_message("");
        self.bar.set_prefix(format!("{} {}/{}", self.label, epoch + 1, self.epochs));
        self.bar.set_length(steps);
        self.bar.reset();
        self.bar.set_position(start);
        if self.visible && self.bar.is_hidden() {
            self.bar.set_draw_target(ProgressDrawTarget::stdout());
        }
    }

    /// Moves the bar to step `pos` of the epoch and shows `stats`.
    pub fn step(&self, pos: u64, stats: &StepStats) {
        self.bar.set_position(pos);
        self.bar.set_message(stats.message());
    }

    /// Turns the epoch's bar, once its steps are done, into a bar over the `len` items of one
    /// more stage of the epoch (`name`: "bn stats", "test"), moved on by [`Progress::advance`].
    pub fn phase(&self, name: &str, len: usize) {
        // The labels first: each setter may draw the bar.
        self.bar.set_message("");
        self.bar.set_prefix(format!("{} {}/{} {name}", self.label, self.epoch + 1, self.epochs));
        self.bar.set_length(len as u64);
        self.bar.reset();
    }

    /// `n` more items of the current [`Progress::phase`] done.
    pub fn advance(&self, n: usize) {
        self.bar.inc(n as u64);
    }

    /// Prints a line above the bar (plainly when hidden).
    pub fn println(&self, line: &str) {
        if self.is_visible() {
            self.bar.println(line);
        } else {
            println!("{line}");
        }
    }

    /// Ends the epoch with one line: `train epoch 3/50  <summary>  (12.3 s)`.
    pub fn end_epoch(&self, summary: &str) {
        let line = epoch_line(&self.label, self.epoch, self.epochs, summary, self.epoch_start.elapsed().as_secs_f64());
        self.println(&line);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A bar over the `total` items (`unit`: "images", say) of one stage, e.g. one runtime of
/// `verify`, with an ETA; drawn only when [`progress_enabled`], and removed when dropped.
/// [`Counter::inc`] may be called from any thread.
pub struct Counter {
    bar: ProgressBar,
}

impl Counter {
    pub fn new(label: &str, total: usize, unit: &str) -> Counter {
        let bar = if progress_enabled() {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout())
        } else {
            ProgressBar::hidden()
        };
        let template = format!("{{prefix:>16.bold}} [{{bar:30.cyan/blue}}] {{pos:>5}}/{{len:<5}} {unit}  eta {{eta}}");
        let style = ProgressStyle::with_template(&template).expect("valid progress template").progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Counter { bar }
    }

    /// `n` more items done.
    pub fn inc(&self, n: usize) {
        self.bar.inc(n as u64);
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The per-epoch log line.
pub fn epoch_line(label: &str, epoch: usize, epochs: usize, summary: &str, seconds: f64) -> String {
    format!("{label} epoch {}/{epochs}  {summary}  ({seconds:.1} s)", epoch + 1)
}
