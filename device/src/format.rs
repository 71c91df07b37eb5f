//! Constants of the packed model format (device/FORMAT.md is the full description) and the CRC32.
//!
//! Everything is little-endian u32 words; f32 values are stored as their IEEE-754 bits.

/// `b"BNAS"` read as a little-endian u32: the first word of every model file.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BNAS");
/// The only format version this crate reads and writes.
pub const VERSION: u32 = 2;
/// Bytes before the payload: magic, version, payload length in bytes, CRC32 of the payload.
pub const HEADER_BYTES: usize = 16;
/// Words of fixed metadata at the start of the payload.
pub const META_WORDS: usize = 8;
/// Words per entry of the tensor table: c, h, w, parent, channel offset, arena offset.
pub const TENSOR_WORDS: usize = 6;
/// `parent` value of a root tensor (one that owns its arena region).
pub const NO_PARENT: u32 = u32::MAX;
/// Largest kernel size (k x k) a conv may have; bounds the padded-tap mask to 64 bits.
pub const MAX_KERNEL: usize = 7;
/// Bits per packed word: binary activations and weights are packed along channels, LSB first.
pub const BITS: usize = 32;

/// Bit 0 of the metadata flags word: the model carries a per-channel u8 input affine.
pub const FLAG_INPUT_AFFINE: u32 = 1;
/// Bit 0 of a conv node's flags: ReLU follows the conv.
pub const CONV_RELU: u32 = 1;
/// Bit 1 of a conv node's flags: a per-output-channel bias follows the weights.
pub const CONV_BIAS: u32 = 2;

/// Node kinds, the first word of each node record.
pub mod kind {
    pub const AFFINE: u32 = 1;
    pub const CONV: u32 = 2;
    pub const BIN_CONV: u32 = 3;
    pub const MAX_POOL: u32 = 4;
    pub const AVG_POOL: u32 = 5;
    pub const ADD: u32 = 6;
    pub const ZERO: u32 = 7;
    pub const GLOBAL_AVG_POOL: u32 = 8;
    pub const LINEAR: u32 = 9;
}

/// Packed words per pixel (or per tap) for `c` channels: channels are padded to a multiple of 32.
pub const fn words_for(c: usize) -> usize {
    c.div_ceil(BITS)
}

// A const fn cannot use iterators; `i < 256` bounds every index.
#[allow(clippy::indexing_slicing)]
const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32/ISO-HDLC (the zlib / PNG CRC: reflected polynomial 0xEDB88320, init and xorout all ones).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in bytes {
        let entry = CRC_TABLE.get(((crc ^ u32::from(b)) & 0xFF) as usize).copied().unwrap_or(0);
        crc = entry ^ (crc >> 8);
    }
    !crc
}

/// Output size of a conv or pool along one axis, or `None` when the window does not fit.
pub fn conv_out(n: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = n.checked_add(pad.checked_mul(2)?)?;
    if stride == 0 || padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
