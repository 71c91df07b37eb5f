//! Every way parsing or inference can fail. No path in this crate panics; each failure is one of these.

use core::fmt;

/// A malformed model file, a wrong buffer size, or an inconsistent graph.
///
/// Offsets are byte offsets into the model file (header included), so a truncated or corrupted file
/// names where it went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The file ends before `needed` bytes could be read at `offset`.
    Truncated { offset: usize, needed: usize, len: usize },
    /// The model bytes do not start on a 4-byte boundary (wrap them in an aligned type; see FORMAT.md).
    Misaligned,
    /// The first 4 bytes are not `b"BNAS"`.
    BadMagic { found: u32 },
    /// A format version this build does not read.
    BadVersion { found: u32 },
    /// The CRC32 stored in the header does not match the payload.
    BadCrc { stored: u32, computed: u32 },
    /// A field holds a value that cannot be right (`what` says which rule it broke).
    Malformed { offset: usize, what: &'static str },
    /// The arena given to `infer` is smaller than `model.arena_words()`.
    ArenaTooSmall { needed_bytes: usize, got_bytes: usize },
    /// The input has the wrong number of elements (`c * h * w` of the model's input).
    InputSize { expected: usize, got: usize },
    /// The logits buffer has the wrong number of elements (`model.classes()`).
    LogitsSize { expected: usize, got: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { offset, needed, len } => {
                write!(f, "model file truncated: needs {needed} bytes at offset {offset}, file has {len}")
            }
            Error::Misaligned => write!(f, "model bytes are not 4-byte aligned"),
            Error::BadMagic { found } => write!(f, "not a bnas model: magic at offset 0 is {found:#010x}"),
            Error::BadVersion { found } => write!(f, "unsupported bnas model version {found} at offset 4"),
            Error::BadCrc { stored, computed } => {
                write!(
                    f,
                    "model payload corrupted: CRC32 at offset 12 is {stored:#010x}, payload gives {computed:#010x}"
                )
            }
            Error::Malformed { offset, what } => write!(f, "malformed model at offset {offset}: {what}"),
            Error::ArenaTooSmall { needed_bytes, got_bytes } => {
                write!(f, "arena too small: model needs {needed_bytes} bytes, got {got_bytes}")
            }
            Error::InputSize { expected, got } => write!(f, "input has {got} elements, model expects {expected}"),
            Error::LogitsSize { expected, got } => {
                write!(f, "logits buffer has {got} elements, model has {expected} classes")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
